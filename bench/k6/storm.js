// The load-test report's storm: USERS players arrive within 8 s, each plays one game.
//   k6 run -e USERS=1000 bench/k6/storm.js      (or bench/run.sh k6-storm)
import { play, thresholds } from "./game.js";

const USERS = Number(__ENV.USERS || 1000);
export const options = {
  scenarios: {
    storm: {
      executor: "ramping-arrival-rate",
      startRate: 0,
      timeUnit: "1s",
      preAllocatedVUs: Math.min(USERS, 2000),
      maxVUs: USERS,
      // USERS arrivals spread over 8 s: a straight ramp to 2 x USERS / 8 a second.
      stages: [{ target: Math.ceil(USERS / 4), duration: "8s" }],
    },
  },
  thresholds,
};

export default play;
