// The load-test report's wave: players arrive over 90 s up to USERS in play at once, each
// playing game after game until the end.
//   k6 run -e USERS=1000 bench/k6/wave.js       (or bench/run.sh k6-wave)
import { play, thresholds } from "./game.js";

const USERS = Number(__ENV.USERS || 1000);
export const options = {
  scenarios: {
    wave: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [{ target: USERS, duration: "90s" }, { target: USERS, duration: "10s" }],
      gracefulRampDown: "5s",
    },
  },
  thresholds,
};

export default play;
