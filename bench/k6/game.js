// What one k6 virtual user does, as a player of podium does it: a dev token over HTTP, then
// one socket: auth, join the campaign's board, start_game, a short game, submit, result.
// Shared by storm.js and wave.js, which only shape the arrivals.
import http from "k6/http";
import ws from "k6/ws";
import { check } from "k6";
import { Counter, Trend } from "k6/metrics";

export const submitAck = new Trend("submit_ack", true);
export const accepted = new Counter("results_accepted");

const BASE = __ENV.PODIUM_URL || "http://127.0.0.1:8080";
const WS_URL = BASE.replace(/^http/, "ws") + "/ws";
const CAMPAIGN = __ENV.CAMPAIGN || "bench";
const GAME_MS = Number(__ENV.GAME_MS || 2000);

export function play() {
  const user = `k6-${__VU}-${__ITER}-${Date.now() % 1e9}`;
  const res = http.post(`${BASE}/dev/token`, JSON.stringify({ user }), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "dev_token" },
  });
  if (!check(res, { "token issued": (r) => r.status === 200 })) return;
  const token = res.json("token");
  let submittedAt = 0;
  let result = null;
  const opened = ws.connect(WS_URL, { tags: { name: "ws" } }, (socket) => {
    socket.on("open", () => socket.send(JSON.stringify({ type: "auth", token })));
    socket.on("message", (raw) => {
      const msg = JSON.parse(raw);
      if (msg.type === "welcome") {
        socket.send(JSON.stringify({ type: "join", room: `${CAMPAIGN}/global` }));
        socket.send(JSON.stringify({ type: "start_game", campaign: CAMPAIGN }));
      } else if (msg.type === "game_started") {
        socket.setTimeout(() => {
          submittedAt = Date.now();
          const score = 1 + Math.floor(Math.random() * 1000);
          socket.send(JSON.stringify({ type: "submit", session: msg.session, score }));
        }, GAME_MS);
      } else if (msg.type === "result") {
        submitAck.add(Date.now() - submittedAt);
        result = msg;
        socket.close();
      } else if (msg.type === "error") {
        result = msg;
        socket.close();
      }
    });
    socket.setTimeout(() => socket.close(), GAME_MS + 30000);
  });
  check(opened, { "socket upgraded": (r) => r && r.status === 101 });
  const ok = check(result, { "result accepted": (r) => r !== null && r.status === "accepted" });
  if (ok) accepted.add(1);
}

// Failed checks under 1 %, submit acknowledgements p99 under 50 ms (the storm target).
export const thresholds = {
  checks: ["rate>0.99"],
  submit_ack: ["p(99)<50"],
};
