// Tap Rush: the demo promo game for podium. One WebSocket, the protocol of docs/PROTOCOL.md:
// auth, join a room, start a game, stream its taps (a counted campaign: the server counts
// them), submit, and apply the room's diffs live.

const params = new URLSearchParams(location.search);
const CAMPAIGN = params.get("campaign") ?? "tap-rush";
const ROOM = `${CAMPAIGN}/${params.get("board") ?? "global"}`;
const DURATION_S = Math.max(3, Math.min(60, Number(params.get("duration") ?? 20)));
const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

// A readable message for every error and rejection code the server sends.
const MESSAGES = {
  bad_message: "The game sent something the server did not understand. Reload the page.",
  unauthorized: "Your session has expired. Sign in again.",
  too_many_connections_for_user: "You are already playing in too many tabs. Close one and retry.",
  too_many_connections_for_ip: "Too many players on your network right now. Try again soon.",
  server_at_capacity: "The game is very busy right now. Retrying…",
  rate_limited: "Easy there! Too many actions at once.",
  unknown_room: "That leaderboard does not exist.",
  too_many_rooms: "Too many leaderboards open at once.",
  unknown_campaign: "This game is not running right now.",
  campaign_closed: "This campaign is not open right now.",
  bad_session: "That game could not be verified. Start a new one.",
  wrong_socket: "The connection dropped during that game, so it could not be counted. Start a new one.",
  already_submitted: "This game was already submitted.",
  too_fast: "That game ended too quickly to count.",
  too_slow: "That game took too long and expired.",
  score_too_high: "That score is above what this game allows.",
  score_rate_too_high: "That score is too high for the time played.",
  not_found: "Guest play is not available on this server.",
  shutting_down: "The server is restarting. Reconnecting…",
  internal: "Something went wrong on our side. Try again.",
  unavailable: "The server is catching up. Sending your score again…",
  busy: "The server is busy. Sending your score again in a moment…",
  payload_too_large: "That request was too large.",
  request_timeout: "The connection is too slow. Try again.",
  method_not_allowed: "The game asked the server something it does not answer. Reload the page.",
  banned: "This account may not play this campaign.",
  too_many_games: "That is enough games for this hour. Come back later!",
  kicked: "You were disconnected by the organiser. Reconnecting…",
};
const explain = (code) => MESSAGES[code] ?? `Unexpected error (${code}).`;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), login: $("login"), form: $("login-form"), name: $("name"),
  game: $("game"), score: $("score"), timer: $("timer"), rank: $("rank"),
  start: $("start"), tap: $("tap"), message: $("message"),
  board: $("board"), empty: $("board-empty"), roomLabel: $("room-label"), durationLabel: $("duration-label"),
  countdown: $("countdown"), burst: $("burst"),
};

const state = {
  user: null, token: null, ws: null, attempts: 0, nextId: 1,
  seq: null, top: [], resyncing: false,
  session: null, taps: 0, playing: false,
  // A counted game: its taps as [ms since game_started, "tap"], sent every `flushMs` as
  // numbered `input` frames.
  counted: false, startedAt: 0, inputSeq: 0, pending: [], flushMs: 250, flushTimer: null,
  // The player's best here as the server last said, to tell a new personal best.
  best: null,
  // Submits of the current game answered `unavailable` or `busy` (nothing decided): sent again.
  resubmits: 0,
};

// How many times, and how far apart, a submit answered `unavailable` or `busy` is sent again
// (`busy` waits longer: the server asked to be left alone for a few seconds).
const RESUBMITS = 10;
const RESUBMIT_DELAY_MS = { unavailable: 1000, busy: 3000 };

function say(text, tone = "") {
  ui.message.textContent = text;
  ui.message.className = `message ${tone}`;
}

function setStatus(text, kind) {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

// ---- connection: auth, join, reconnect with backoff, resync ----

function send(msg) {
  if (state.ws?.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify({ ...msg, id: state.nextId++ }));
  return true;
}

function connect() {
  setStatus(state.attempts ? `Reconnecting (try ${state.attempts})…` : "Connecting…", "connecting");
  const ws = new WebSocket(WS_URL);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: state.token }));
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.seq = null;
    if (state.playing) endGame(false);
    if (event.code === 4401) {
      setStatus("Signed out", "error");
      say(explain("unauthorized"), "bad");
      return signOut();
    }
    if (event.code === 4403) {
      setStatus("Offline", "error");
      return say(explain("banned"), "bad");
    }
    if (event.code === 4000) say(explain("kicked"));
    if (event.code === 4429 && event.reason === "too_many_connections_for_user") {
      setStatus("Offline", "error");
      return say(explain("too_many_connections_for_user"), "bad");
    }
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to 15 s.
    const delay = Math.min(15000, 500 * 2 ** state.attempts) * (0.5 + Math.random() / 2);
    state.attempts += 1;
    setStatus(`Offline, retrying in ${Math.round(delay / 100) / 10}s`, "offline");
    setTimeout(connect, delay);
  };
}

function handle(msg) {
  switch (msg.type) {
    case "welcome":
      state.attempts = 0;
      setStatus(`Online as ${msg.user}`, "online");
      send({ type: "join", room: ROOM });
      break;
    case "snapshot":
      state.seq = msg.seq;
      state.resyncing = false;
      render(msg.top);
      if (msg.me) {
        ui.rank.textContent = `#${msg.me.rank}`;
        state.best = msg.me.score;
      }
      break;
    case "diff":
      if (msg.room !== ROOM || state.resyncing) break;
      if (state.seq === null || msg.seq !== state.seq + 1) {
        // Missed a diff: ask for the whole list again.
        state.resyncing = true;
        send({ type: "snapshot", room: ROOM });
        break;
      }
      state.seq = msg.seq;
      render(applyDiff(state.top, msg), msg);
      break;
    case "game_started":
      state.session = msg.session;
      state.counted = msg.scoring === "counted";
      state.startedAt = performance.now();
      state.inputSeq = 0;
      state.pending = [];
      state.flushMs = msg.input_flush_ms ?? 250;
      beginGame();
      break;
    case "result":
      showResult(msg);
      break;
    case "announce":
      // An organiser's message: shown where results are, as the game's own voice.
      say(msg.text, "announce");
      break;
    case "error":
      say(explain(msg.code), "bad");
      // An `input` refused for its session is the game's own problem, not the page's.
      if (["campaign_closed", "too_many_games", "banned"].includes(msg.code)) resetGame();
      else if (msg.code === "bad_session" && !state.playing) resetGame();
      break;
  }
}

// ---- the leaderboard: apply diffs exactly as docs/PROTOCOL.md says, animate moves ----

function applyDiff(top, diff) {
  const out = new Set([...diff.removed, ...diff.changed.map((c) => c.user)]);
  const kept = top.filter((e) => !out.has(e.user));
  const changed = [...diff.changed].sort((a, b) => a.rank - b.rank);
  const list = [];
  while (kept.length || changed.length) {
    const rank = list.length + 1;
    const row = changed[0]?.rank === rank ? changed.shift() : kept.shift() ?? changed.shift();
    list.push({ rank, user: row.user, score: row.score });
  }
  return list;
}

function render(top, diff = null) {
  const before = new Map([...ui.board.children].map((li) => [li.dataset.user, li.getBoundingClientRect().top]));
  const rows = new Map([...ui.board.children].map((li) => [li.dataset.user, li]));
  const moved = new Map((diff?.changed ?? []).map((c) => [c.user, c]));
  ui.board.replaceChildren(...top.map((entry) => {
    const li = rows.get(entry.user) ?? document.createElement("li");
    li.dataset.user = entry.user;
    li.className = entry.user === state.user ? "me" : "";
    li.innerHTML = "";
    for (const [cls, text] of [["rank", `#${entry.rank}`], ["name", entry.user], ["points", entry.score.toLocaleString()]]) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    const change = moved.get(entry.user);
    if (change) li.classList.add(change.from === null ? "new" : change.from > entry.rank ? "up" : "moved");
    if (entry.user === state.user) ui.rank.textContent = `#${entry.rank}`;
    return li;
  }));
  // FLIP: rows slide from where they were to where they are.
  for (const li of ui.board.children) {
    const was = before.get(li.dataset.user);
    if (was === undefined) continue;
    const dy = was - li.getBoundingClientRect().top;
    if (dy) li.animate([{ transform: `translateY(${dy}px)` }, { transform: "none" }], { duration: 450, easing: "ease-out" });
  }
  state.top = top;
  ui.empty.hidden = top.length > 0;
}

// ---- the game: the server's clock decides; the page only counts taps ----

/** Sends the taps not sent yet, at most 128 a frame, as the protocol allows. */
function flushInputs() {
  while (state.counted && state.session && state.pending.length) {
    send({ type: "input", session: state.session, seq: state.inputSeq++, events: state.pending.splice(0, 128) });
  }
}

function stopFlushing() {
  clearInterval(state.flushTimer);
  state.flushTimer = null;
}

function resetGame() {
  stopFlushing();
  state.playing = false;
  state.session = null;
  ui.start.disabled = false;
  ui.tap.disabled = true;
  ui.timer.textContent = DURATION_S.toFixed(1);
}

function beginGame() {
  state.taps = 0;
  state.playing = true;
  ui.score.textContent = "0";
  ui.start.disabled = true;
  ui.tap.disabled = false;
  say("Go! Tap tap tap!");
  if (state.counted) state.flushTimer = setInterval(flushInputs, state.flushMs);
  const ends = performance.now() + DURATION_S * 1000;
  const tick = () => {
    if (!state.playing) return;
    const left = Math.max(0, ends - performance.now());
    ui.timer.textContent = (left / 1000).toFixed(1);
    if (left === 0) return endGame(true);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function endGame(submit) {
  state.playing = false;
  ui.tap.disabled = true;
  flushInputs();
  stopFlushing();
  if (submit && state.session) {
    say("Submitting your score…");
    if (!send({ type: "submit", session: state.session, score: state.taps })) say("Offline: your game could not be sent.", "bad");
  } else {
    resetGame();
  }
}

function showResult(result) {
  // Nothing was decided: the same score for the same session is sent again shortly.
  const delay = RESUBMIT_DELAY_MS[result.reason];
  if (delay && state.session && state.resubmits < RESUBMITS) {
    state.resubmits += 1;
    say(explain(result.reason));
    const session = state.session;
    setTimeout(() => {
      if (state.session === session) send({ type: "submit", session, score: state.taps });
    }, delay);
    return;
  }
  state.resubmits = 0;
  if (result.status === "accepted") {
    // The rank box shows the live rank; the message says where this score put the player.
    const best = result.best ?? result.score;
    const newBest = state.best === null || result.score > state.best;
    state.best = Math.max(best, state.best ?? 0);
    const place = result.rank ? ` ${placeInWords(result.rank)}` : "";
    // A counted game: the score is the taps the server saw arrive in time.
    const counted = result.claimed === undefined ? ""
      : result.claimed === result.score ? " The server counted every tap."
      : ` The server counted ${result.score} of your ${result.claimed} taps.`;
    say(newBest && state.best === result.score
      ? `Score ${result.score} accepted: a new personal best!${place}${counted}`
      : `Score ${result.score} accepted. Your best is ${best}.${place}${counted}`, "good");
    if (result.rank) ui.rank.textContent = `#${result.rank}`;
    burst(newBest ? 28 : 14);
  } else {
    say(explain(result.reason), "bad");
  }
  resetGame();
}

/** "You are 1st: top of the board!", "You are 3rd." */
function placeInWords(rank) {
  const tens = rank % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" })[rank % 10] ?? "th";
  return rank === 1 ? "You are 1st: top of the board!" : `You are ${rank.toLocaleString()}${suffix}.`;
}

/** A burst of `n` dots from the button: the game's applause for an accepted score. */
function burst(n) {
  const colours = ["var(--accent)", "var(--accent-2)", "var(--good)", "#8ab4ff"];
  ui.burst.replaceChildren(...Array.from({ length: n }, (_, i) => {
    const dot = document.createElement("i");
    const angle = (i / n) * Math.PI * 2;
    const reach = 90 + Math.random() * 70;
    dot.style.setProperty("--x", `${Math.cos(angle) * reach}px`);
    dot.style.setProperty("--y", `${Math.sin(angle) * reach}px`);
    dot.style.setProperty("--c", colours[i % colours.length]);
    dot.addEventListener("animationend", () => dot.remove());
    return dot;
  }));
}

/** 3, 2, 1, then `done`: the clock starts only when the server starts the game, after it. */
function countdown(done) {
  let n = 3;
  ui.countdown.hidden = false;
  const step = () => {
    if (n === 0) {
      ui.countdown.hidden = true;
      return done();
    }
    ui.countdown.textContent = String(n);
    ui.countdown.classList.remove("tick");
    void ui.countdown.offsetWidth; // restart the animation
    ui.countdown.classList.add("tick");
    n -= 1;
    setTimeout(step, 800);
  };
  step();
}

ui.tap.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (!state.playing) return;
  state.taps += 1;
  if (state.counted) state.pending.push([Math.round(performance.now() - state.startedAt), "tap"]);
  ui.score.textContent = String(state.taps);
});
ui.start.addEventListener("click", () => {
  say("Get ready…");
  ui.start.disabled = true;
  ui.burst.replaceChildren();
  countdown(() => {
    if (!send({ type: "start_game", campaign: CAMPAIGN })) {
      ui.start.disabled = false;
      say("Offline: wait for the connection to come back.", "bad");
    }
  });
});

// ---- sign in: a token from the page address, or a guest token from the server ----

function signOut() {
  sessionStorage.removeItem("podium.token");
  ui.login.hidden = false;
  ui.game.hidden = true;
}

async function signIn(name) {
  const response = await fetch("/dev/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user: name }) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(explain(body.error?.code ?? "internal"));
  return body;
}

function start(token, user) {
  state.token = token;
  state.user = user;
  sessionStorage.setItem("podium.token", JSON.stringify({ token, user }));
  ui.login.hidden = true;
  ui.game.hidden = false;
  connect();
}

function userOf(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  } catch {
    return null;
  }
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (!name) return;
  try {
    const { token, user } = await signIn(name);
    start(token, user);
  } catch (error) {
    say(error.message, "bad");
    ui.game.hidden = false;
  }
});

ui.roomLabel.textContent = ROOM;
ui.durationLabel.textContent = String(DURATION_S);
ui.timer.textContent = DURATION_S.toFixed(1);

const fromAddress = params.get("token");
const saved = JSON.parse(sessionStorage.getItem("podium.token") ?? "null");
if (fromAddress) start(fromAddress, userOf(fromAddress));
else if (saved) start(saved.token, saved.user);
else if (params.get("name")) {
  ui.name.value = params.get("name");
  ui.form.requestSubmit();
}
