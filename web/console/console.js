// The operator console: every screen is built on the admin API and the public reads alone
// (README "Operating a campaign"), with the key in this tab's session storage. Plain modules,
// no build step: views are functions that fill #view and give back what stops their timers.

const KEY = "podium.adminKey";
const view = document.getElementById("view");
// The refusals review lists (Refusal::ALL in the engine).
const REASONS = ["too_fast", "too_slow", "score_too_high", "score_rate_too_high", "campaign_closed"];

// ---- small helpers ----

/** An element with attributes (`on*` functions become listeners) and children (text is text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmt = new Intl.NumberFormat();
const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–");
function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
/** An RFC 3339 time as a datetime-local input's value (the browser's zone). */
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}
const fromLocalInput = (v) => (v ? new Date(v).toISOString() : null);
const enc = encodeURIComponent;

let toastTimer;
function toast(text, kind = "good") {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 4000);
}

/** Asks before an action; `extra` is a form part whose values come back with the answer. */
function confirmAction({ title, text, ok = "Confirm", danger = false, extra = null }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const holder = document.getElementById("confirm-extra");
  holder.replaceChildren(...(extra ? [extra] : []));
  const okButton = document.getElementById("confirm-ok");
  okButton.textContent = ok;
  okButton.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    (holder.querySelector("input, textarea") ?? okButton).focus();
  });
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    Object.assign(this, { status, code, retryAfter });
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection.");
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch {}
  if (!res.ok) {
    const err = json?.error ?? {};
    const e = new ApiError(res.status, err.code ?? "unknown", err.message ?? `HTTP ${res.status}`, res.headers.get("retry-after"));
    if ((res.status === 401 || res.status === 403) && path.startsWith("/admin/") && sessionStorage.getItem(KEY)) {
      signOut("Your key is no longer accepted. Sign in again.");
    }
    throw e;
  }
  return json ?? text;
}

/** Words for an error an action got, for its toast or its form. */
function explain(e) {
  if (!(e instanceof ApiError)) return String(e?.message ?? e);
  const words = {
    conflict: "Someone changed it meanwhile, or the name is taken. Reload and try again.",
    not_found: "Not found: it may have been removed.",
    unavailable: "The store is out of reach right now; nothing changed. Try again in a moment.",
    rate_limited: "Too many attempts. Wait a moment.",
    unknown_campaign: "There is no such campaign.",
  };
  return words[e.code] ?? e.message;
}

/** Shows each `field: message` error beside its field in `form`; true when one matched. */
function showFieldError(form, e) {
  form.querySelectorAll(".field.invalid").forEach((f) => f.classList.remove("invalid"));
  form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
  const general = form.querySelector(".form-error");
  const m = /^(?:malformed message: )?([a-z_.]+): (.*)$/.exec(e?.message ?? "");
  const field = m && form.querySelector(`[data-field="${m[1]}"]`);
  if (e?.code === "bad_message" && field) {
    field.classList.add("invalid");
    field.querySelector(".field-error").textContent = m[2];
    field.querySelector("input, select, textarea")?.focus();
    return true;
  }
  if (general) general.textContent = explain(e);
  return false;
}

/** A table of `rows` under `head` (a title, or [title, class] for a numeric column or one a
 * phone hides), or `empty` in words when there are no rows. */
function table(head, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  const th = (t) => (Array.isArray(t) ? h("th", { class: t[1] }, t[0]) : h("th", {}, t));
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, head.map(th))), h("tbody", {}, rows)));
}

function field(name, label, input, hint) {
  input.id ||= `f-${name.replace(/\./g, "-")}`;
  return h("div", { class: "field", "data-field": name },
    h("label", { for: input.id }, label), input,
    hint ? h("p", { class: "hint" }, hint) : null,
    h("p", { class: "field-error", role: "alert" }));
}

// ---- sign in and out ----

function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  stopView();
  document.getElementById("topbar").hidden = true;
  view.replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("key-error").textContent = message;
  document.getElementById("key").focus();
}

document.getElementById("sign-in-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("key");
  const error = document.getElementById("key-error");
  const key = input.value.trim();
  if (!key) { error.textContent = "Enter your admin key."; return; }
  sessionStorage.setItem(KEY, key);
  try {
    await api("GET", "/admin/instances");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    error.textContent =
      e.status === 401 || e.status === 403 ? "That key was not accepted." :
      e.status === 404 ? "This server has no admin API: set ADMIN_API_KEYS (or run it in dev mode)." :
      e.status === 429 ? `Too many failed attempts. Try again in ${e.retryAfter ?? "a few"} seconds.` :
      explain(e);
    input.select();
    return;
  }
  input.value = "";
  error.textContent = "";
  start();
});
document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));

function start() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("topbar").hidden = false;
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  else route();
}

// ---- routing ----

let stop = [];
function stopView() { stop.forEach((f) => f()); stop = []; }
/** Runs `f` now and every `ms` while the view is shown; a failing round waits for the next. */
function every(ms, f) {
  let alive = true;
  const tick = async () => { if (!alive) return; try { await f(); } catch (e) { if (e?.status !== 401) console.warn(e); } };
  tick();
  const id = setInterval(tick, ms);
  stop.push(() => { alive = false; clearInterval(id); });
}

const routes = [
  [/^#\/overview$/, overview, "overview"],
  [/^#\/campaigns$/, campaigns, "campaigns"],
  [/^#\/campaigns\/new$/, newCampaign, "campaigns"],
  [/^#\/campaigns\/([^/]+)$/, campaign, "campaigns"],
  [/^#\/review$/, review, "review"],
  [/^#\/players$/, players, "players"],
  [/^#\/players\/([^/]+)$/, player, "players"],
  [/^#\/sessions\/([^/]+)$/, session, "review"],
  [/^#\/announce$/, announce, "announce"],
  [/^#\/audit$/, audit, "audit"],
];

function route() {
  if (!sessionStorage.getItem(KEY)) return signOut();
  stopView();
  const hash = location.hash.split("?")[0];
  const found = routes.find(([re]) => re.test(hash)) ?? routes[0];
  const [re, render, section] = found;
  const args = (re.exec(hash) ?? []).slice(1).map(decodeURIComponent);
  document.querySelectorAll(".topbar nav a").forEach((a) => {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  view.replaceChildren();
  render(...args);
  document.getElementById("main").focus({ preventScroll: true });
}
window.addEventListener("hashchange", route);

/** The query part of the address after `#/section?`. */
const hashQuery = () => new URLSearchParams(location.hash.split("?")[1] ?? "");

// ---- overview ----

const ISSUE_WORDS = {
  connections: (i) => `Sockets are at ${Math.round(i.value * 100)} % of this instance's cap.`,
  error_rate: (i) => `${(i.value * 100).toFixed(1)} % of messages failed on the server in the last minute.`,
  response_time: (i) => `Answers take ${Math.round(i.value)} ms on average.`,
  redis_down: () => "Redis is out of reach: results go straight to PostgreSQL; boards are rebuilt when it returns.",
  postgres_down: (i) => `PostgreSQL is out of reach: ${num(i.value?.backlog)} results wait in Redis and will be written when it returns.`,
  persist_lag: (i) => `Results reach PostgreSQL ${Math.round((i.value?.lag_ms ?? 0) / 1000)} s late (${num(i.value?.backlog)} waiting).`,
  shutting_down: () => "This instance is shutting down.",
};

function bars(minutes) {
  const w = 600, hgt = 120, n = minutes.length || 1, gap = 2;
  const max = Math.max(1, ...minutes.map((m) => m.accepted + m.refused));
  const bw = w / n - gap;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "bars");
  svg.setAttribute("role", "img");
  const total = minutes.reduce((s, m) => [s[0] + m.accepted, s[1] + m.refused], [0, 0]);
  svg.setAttribute("aria-label", `Last ${n} minutes: ${total[0]} results accepted, ${total[1]} refused`);
  minutes.forEach((m, i) => {
    const x = i * (w / n);
    const ah = (m.accepted / max) * (hgt - 4);
    const rh = (m.refused / max) * (hgt - 4);
    for (const [cls, y, ht] of [["accepted", hgt - ah, ah], ["refused", hgt - ah - rh, rh]]) {
      if (ht <= 0) continue;
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      Object.entries({ x, y, width: Math.max(1, bw), height: ht, class: cls }).forEach(([k, v]) => r.setAttribute(k, v));
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${new Date(m.minute).toLocaleTimeString(undefined, { timeStyle: "short" })}: ${m.accepted} accepted, ${m.refused} refused`;
      r.append(title);
      svg.append(r);
    }
  });
  return svg;
}

/** Every instance's minutes added up, by minute. */
function sumMinutes(instances) {
  const by = new Map();
  for (const i of instances) for (const m of i.submits ?? []) {
    const s = by.get(m.minute) ?? { minute: m.minute, accepted: 0, refused: 0 };
    s.accepted += m.accepted;
    s.refused += m.refused;
    by.set(m.minute, s);
  }
  return [...by.values()].sort((a, b) => a.minute.localeCompare(b.minute)).slice(-30);
}

function overview() {
  const stats = h("div", { class: "grid stats" });
  const health = h("section", { class: "card" }, h("h2", {}, "Health"), h("p", { class: "muted" }, "Loading…"));
  const chart = h("section", { class: "card" }, h("h2", {}, "Results per minute"));
  const instancesCard = h("section", { class: "card" }, h("h2", {}, "Instances"));
  view.append(h("h1", { class: "section" }, "Overview", h("span", { class: "muted small", id: "refreshed" })), stats,
    h("div", { class: "grid two mt" }, health, chart), h("div", { class: "mt" }, instancesCard));
  every(3000, async () => {
    const [hres, inst] = await Promise.all([
      fetch("/health").then((r) => r.json()).catch(() => null),
      api("GET", "/admin/instances"),
    ]);
    const instances = inst.instances;
    const minutes = sumMinutes(instances);
    const last = minutes.at(-1) ?? { accepted: 0, refused: 0 };
    const players = instances.reduce((s, i) => s + i.users, 0);
    const sockets = instances.reduce((s, i) => s + i.connections, 0);
    stats.replaceChildren(
      ...[["Players online", players], ["Sockets", sockets], ["Instances", instances.length],
        ["Accepted this minute", last.accepted], ["Refused this minute", last.refused],
        ["Persist backlog", hres?.metrics?.persistBacklog ?? 0]]
        .map(([label, v]) => h("div", { class: "stat" }, h("span", { class: "label" }, label), h("strong", {}, num(v)))));
    const status = hres?.status ?? "unreachable";
    const cls = { healthy: "good", warning: "warn" }[status] ?? "bad";
    health.replaceChildren(h("h2", {}, "Health ", h("span", { class: `badge ${cls}` }, status)),
      hres?.issues?.length
        ? h("ul", { class: "issues" }, hres.issues.map((i) => h("li", {}, (ISSUE_WORDS[i.check] ?? (() => `${i.check}: ${JSON.stringify(i.value)}`))(i))))
        : h("p", { class: "muted" }, status === "healthy" ? "Everything is within its thresholds." : "No answer from /health."),
      h("p", { class: "muted small" }, `This instance answered ${num(hres?.metrics?.messagesPerMinute)} messages in the last minute, in ${(hres?.metrics?.averageResponseTime ?? 0).toFixed(1)} ms on average.`));
    const quiet = minutes.every((m) => m.accepted + m.refused === 0);
    chart.replaceChildren(h("h2", {}, "Results per minute ", h("span", { class: "muted small" }, "last 30 minutes, every instance")),
      quiet ? h("p", { class: "empty" }, "No result was submitted in the last 30 minutes.") : bars(minutes),
      h("div", { class: "legend" }, h("span", {}, h("span", { class: "dot accepted" }), "accepted"),
        h("span", {}, h("span", { class: "dot refused" }), "refused")));
    instancesCard.replaceChildren(h("h2", {}, "Instances"), table(
      ["Instance", ["Address", "hide-phone"], ["Sockets", "num"], ["Players", "num"], ["Rooms", "num hide-phone"], ["Version", "hide-phone"], "Heartbeat"],
      instances.map((i) => h("tr", {}, h("td", {}, i.id), h("td", { class: "hide-phone" }, i.address), h("td", { class: "num" }, num(i.connections)),
        h("td", { class: "num" }, num(i.users)), h("td", { class: "num hide-phone" }, num(i.rooms)), h("td", { class: "hide-phone" }, i.version), h("td", {}, ago(i.last_heartbeat)))),
      "No instance has sent a heartbeat yet."));
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  });
}

// ---- campaigns ----

function campaignBadge(c) {
  if (c.closed_at) return h("span", { class: "badge bad" }, "closed");
  if (c.open) return h("span", { class: "badge good" }, "open");
  return h("span", { class: "badge warn" }, c.ends_at && new Date(c.ends_at) < new Date() ? "ended" : "not started");
}

async function campaigns() {
  const list = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  view.append(h("h1", { class: "section" }, "Campaigns", h("a", { href: "#/campaigns/new", class: "primary button-link" }, "New campaign")), list);
  try {
    const { campaigns } = await api("GET", "/admin/campaigns");
    list.replaceChildren(table(["Campaign", "State", ["Starts", "hide-phone"], ["Ends", "hide-phone"], ["Regions", "hide-phone"]],
      campaigns.map((c) => h("tr", { class: "clickable", onclick: () => (location.hash = `#/campaigns/${enc(c.name)}`) },
        h("td", {}, h("a", { href: `#/campaigns/${enc(c.name)}` }, c.title), h("div", { class: "muted small" }, c.name)),
        h("td", {}, campaignBadge(c)), h("td", { class: "hide-phone" }, when(c.starts_at)), h("td", { class: "hide-phone" }, when(c.ends_at)),
        h("td", { class: "hide-phone" }, c.regions.join(", ") || "–"))),
      "No campaigns yet. Create the first one."));
  } catch (e) {
    list.replaceChildren(h("p", { class: "field-error" }, explain(e)));
  }
}

/** The create/edit form: the body a POST or PATCH takes, errors shown beside each field. */
function campaignForm(c, onSubmit) {
  const r = c?.rules ?? { min_duration_ms: 2000, max_duration_ms: 60000, max_score: 5000, max_score_per_second: 50, max_games_per_hour: 0 };
  const numInput = (name, value) => h("input", { name, type: "number", min: 0, step: 1, value, inputmode: "numeric" });
  const form = h("form", { class: "fields", novalidate: true },
    c ? null : field("name", "Name (in the address)", h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_-]{1,64}", maxlength: 64, autocomplete: "off" }), "Letters, digits, - and _. Players open /?campaign=NAME."),
    field("title", "Title", h("input", { name: "title", value: c?.title ?? "", maxlength: 120 })),
    field("starts_at", "Starts", h("input", { name: "starts_at", type: "datetime-local", value: toLocalInput(c?.starts_at) }), "Empty: open now."),
    field("ends_at", "Ends", h("input", { name: "ends_at", type: "datetime-local", value: toLocalInput(c?.ends_at) }), "Empty: no end."),
    field("regions", "Regions", h("input", { name: "regions", value: (c?.regions ?? []).join(", "), placeholder: "eu, us" }), "A board per region, besides global and daily."),
    h("fieldset", { class: "full" }, h("legend", {}, "Rules"), h("div", { class: "fields" },
      field("rules.min_duration_ms", "Shortest game (ms)", numInput("min_duration_ms", r.min_duration_ms)),
      field("rules.max_duration_ms", "Longest game (ms)", numInput("max_duration_ms", r.max_duration_ms)),
      field("rules.max_score", "Highest score", numInput("max_score", r.max_score)),
      field("rules.max_score_per_second", "Most points per second", numInput("max_score_per_second", r.max_score_per_second)),
      field("rules.max_games_per_hour", "Games per player per hour", numInput("max_games_per_hour", r.max_games_per_hour), "0: no limit."))),
    h("p", { class: "form-error field-error full", role: "alert" }),
    h("div", { class: "actions full" }, h("button", { type: "submit", class: "primary" }, c ? "Save changes" : "Create campaign")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (n) => form.elements[n]?.value ?? "";
    const whole = (n) => (v(n).trim() === "" ? NaN : Number(v(n)));
    const body = {
      title: v("title"),
      starts_at: fromLocalInput(v("starts_at")),
      ends_at: fromLocalInput(v("ends_at")),
      regions: v("regions").split(",").map((s) => s.trim()).filter(Boolean),
      rules: Object.fromEntries(["min_duration_ms", "max_duration_ms", "max_score", "max_score_per_second", "max_games_per_hour"].map((k) => [k, whole(k)])),
    };
    for (const [k, n] of Object.entries(body.rules)) {
      if (!Number.isInteger(n) || n < 0) {
        showFieldError(form, { code: "bad_message", message: `rules.${k}: expected a whole number` });
        return;
      }
    }
    if (!c) body.name = v("name").trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await onSubmit(body);
      showFieldError(form, null);
    } catch (e) {
      showFieldError(form, e);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function newCampaign() {
  view.append(h("h1", { class: "section" }, h("a", { href: "#/campaigns" }, "Campaigns"), h("span", { class: "muted" }, "/"), "New campaign"),
    h("section", { class: "card" }, campaignForm(null, async (body) => {
      const c = await api("POST", "/admin/campaigns", body);
      toast(`Campaign “${c.title}” created: players can open /?campaign=${c.name}`);
      location.hash = `#/campaigns/${enc(c.name)}`;
    })));
}

async function campaign(name) {
  let c;
  try {
    c = await api("GET", `/admin/campaigns/${enc(name)}`);
  } catch (e) {
    view.append(h("h1", { class: "section" }, name), h("p", { class: "field-error" }, explain(e)));
    return;
  }
  const heading = h("h1", { class: "section" }, h("a", { href: "#/campaigns" }, "Campaigns"), h("span", { class: "muted" }, "/"), c.title, campaignBadge(c));
  const play = h("a", { href: `/?campaign=${enc(c.name)}`, target: "_blank", rel: "noopener" }, "Open the game page");
  const boards = ["global", "daily", ...c.regions.map((r) => `region:${r}`)];
  const boardPick = h("select", { id: "board-pick", "aria-label": "Board" }, boards.map((b) => h("option", { value: b }, b)));
  const list = h("ol", { class: "board wide", "aria-live": "polite", id: "live-board" });
  const empty = h("p", { class: "empty" });
  const total = h("span", { class: "muted" });
  const pager = h("div", { class: "actions" });
  let offset = 0;
  const PAGE = 100;

  const closeBtn = h("button", { class: "danger", type: "button", disabled: Boolean(c.closed_at), onclick: async () => {
    if (!(await confirmAction({ title: `Close ${c.title}?`, text: "New games are refused from now on; games already started may still be submitted until their longest duration ends. This cannot be undone here.", ok: "Close campaign", danger: true }))) return;
    try { c = await api("POST", `/admin/campaigns/${enc(c.name)}/close`); toast("Campaign closed."); route(); } catch (e) { toast(explain(e), "bad"); }
  } }, c.closed_at ? "Closed" : "Close campaign");

  const resetBtn = h("button", { class: "danger", type: "button", onclick: async () => {
    const board = boardPick.value;
    const archive = h("input", { id: "archive-name", maxlength: 64, placeholder: new Date().toISOString().slice(0, 10) });
    const ok = await confirmAction({ title: `Reset the ${board} board?`, text: `It starts empty for every player now. Its ${num(lastTotal)} players' standings are kept as a named archive (public at /api/campaigns/${c.name}/boards/${board}/archives); results stay in the database.`, ok: "Reset board", danger: true,
      extra: field("archive", "Archive name", archive, "Empty: the time of the reset.") });
    if (!ok) return;
    try {
      const body = archive.value.trim() ? { archive: archive.value.trim() } : {};
      const done = await api("POST", `/admin/campaigns/${enc(c.name)}/boards/${enc(board)}/reset`, body);
      toast(`Board reset: ${num(done.archived_players)} players archived as “${done.archive}”.`);
      refresh();
    } catch (e) { toast(explain(e), "bad"); }
  } }, "Reset board…");

  const rebuildBtn = h("button", { class: "ghost", type: "button", onclick: async () => {
    if (!(await confirmAction({ title: "Rebuild the boards from the database?", text: "Every board of the campaign is raised to what PostgreSQL holds (what `podium rebuild` does). Players keep their places; nothing is lost.", ok: "Rebuild" }))) return;
    try { const r = await api("POST", `/admin/campaigns/${enc(c.name)}/rebuild`); toast(`Rebuilt: ${num(r.rows_changed)} rows changed.`); refresh(); } catch (e) { toast(explain(e), "bad"); }
  } }, "Rebuild");

  const exportBtn = h("button", { class: "ghost", type: "button", onclick: async () => {
    try {
      const res = await fetch(`/admin/campaigns/${enc(c.name)}/results.csv`, { headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
      if (!res.ok) throw new ApiError(res.status, "export", `The export failed (HTTP ${res.status}).`);
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: `${c.name}-results.csv` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast("Export downloaded.");
    } catch (e) { toast(explain(e), "bad"); }
  } }, "Export results (CSV)");

  let lastTotal = 0;
  let previous = new Map();
  async function refresh() {
    const page = await api("GET", `/api/campaigns/${enc(c.name)}/boards/${enc(boardPick.value)}?limit=${PAGE}&offset=${offset}`);
    lastTotal = page.total;
    total.textContent = page.total ? `${num(page.total)} players` : "";
    const seen = new Map();
    empty.textContent = page.rows.length ? "" : offset ? "No rows on this page." : "No scores yet. They appear here as players submit.";
    list.replaceChildren(...page.rows.map((row) => {
      const before = previous.get(row.user);
      seen.set(row.user, row.rank);
      const cls = before === undefined ? (previous.size ? "new" : "") : row.rank < before ? "up" : "";
      return h("li", { class: cls },
        h("span", { class: "rank" }, `#${row.rank}`),
        h("a", { class: "name", href: `#/players/${enc(row.user)}` }, row.user),
        h("span", { class: "points" }, num(row.score)),
        h("button", { class: "ghost small-btn row-actions", type: "button", "aria-label": `Remove ${row.user}'s score`, onclick: () => removeScore(row.user) }, "Remove"));
    }));
    previous = seen;
    pager.replaceChildren(
      h("button", { class: "ghost small-btn", type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); previous = new Map(); refresh(); } }, "Previous 100"),
      h("span", { class: "muted small" }, page.total ? `ranks ${num(offset + 1)}–${num(Math.min(offset + PAGE, page.total))} of ${num(page.total)}` : ""),
      h("button", { class: "ghost small-btn", type: "button", disabled: offset + PAGE >= page.total, onclick: () => { offset += PAGE; previous = new Map(); refresh(); } }, "Next 100"));
  }
  async function removeScore(user) {
    if (!(await confirmAction({ title: `Remove ${user}'s scores?`, text: `${user} leaves every board of ${c.title} for good. Their results stay in the database, marked removed; a rebuild does not bring them back.`, ok: "Remove scores", danger: true }))) return;
    try { const r = await api("DELETE", `/admin/campaigns/${enc(c.name)}/boards/scores/${enc(user)}`); toast(`${user} removed from ${r.boards} boards.`); refresh(); } catch (e) { toast(explain(e), "bad"); }
  }
  boardPick.addEventListener("change", () => { offset = 0; previous = new Map(); refresh(); });

  view.append(heading,
    h("div", { class: "grid two" },
      h("section", { class: "card" }, h("h2", {}, "Live board ", total), h("div", { class: "actions mb" }, boardPick, play), list, empty, h("div", { class: "mt-s" }, pager)),
      h("div", { class: "grid start" },
        h("section", { class: "card" }, h("h2", {}, "Board actions"), h("div", { class: "actions" }, resetBtn, rebuildBtn, exportBtn)),
        h("section", { class: "card" }, h("h2", {}, "Settings ", h("span", { class: "muted small" }, `version ${c.version}, changed ${when(c.updated_at)}`)),
          campaignForm(c, async (body) => {
            c = await api("PATCH", `/admin/campaigns/${enc(c.name)}`, body);
            toast("Saved. Every instance applies it within a second; games under way keep their rules.");
          }), h("div", { class: "actions mt-s" }, closeBtn)))));
  every(1500, refresh);
}

// ---- review ----

const RULE_WORDS = {
  min_duration_ms: (f) => [`${num(f.duration_ms)} ms played`, `at least ${num(f.limit)} ms`],
  max_duration_ms: (f) => [`${num(f.duration_ms)} ms played`, `at most ${num(f.limit)} ms`],
  max_score: (f) => [`${num(f.score)} points`, `at most ${num(f.limit)}`],
  max_score_per_second: (f) => [`${f.points_per_second} points/s`, `at most ${num(f.limit)}/s`],
  max_games_per_hour: (f) => [`game over the hourly limit`, `at most ${num(f.limit)} an hour`],
};

function numbers(f) {
  const words = RULE_WORDS[f.rule];
  const [seen, rule] = words ? words(f) : [`${num(f.score)} points in ${num(f.duration_ms)} ms`, f.rule ?? f.reason];
  return h("div", { class: "vs" }, h("span", { class: "badge bad phone-only" }, f.reason?.replaceAll("_", " ") ?? "refused"), h("span", { class: "over" }, seen), h("span", { class: "rule" }, `rule: ${rule}`),
    h("span", { class: "muted small" }, `${num(f.score)} pts · ${num(f.duration_ms)} ms · ${f.points_per_second}/s`));
}

async function banPlayer(user, after) {
  const reason = h("input", { id: "ban-reason", maxlength: 200, required: true, value: "cheating" });
  const until = h("input", { id: "ban-until", type: "datetime-local" });
  const extra = h("div", {}, field("reason", "Reason (kept in the audit log)", reason), field("until", "Until", until, "Empty: for good, until lifted."));
  if (!(await confirmAction({ title: `Ban ${user}?`, text: `Their sockets close on every instance, they cannot sign in or submit, and they leave every board until the ban is lifted.`, ok: "Ban player", danger: true, extra }))) return;
  try {
    await api("POST", `/admin/users/${enc(user)}/ban`, { reason: reason.value.trim(), until: fromLocalInput(until.value) });
    toast(`${user} is banned.`);
    after?.();
  } catch (e) { toast(explain(e), "bad"); }
}

async function review() {
  const q = hashQuery();
  let cps = [];
  try { cps = (await api("GET", "/admin/campaigns")).campaigns; } catch {}
  const form = h("form", { class: "filters", role: "search" },
    field("campaign", "Campaign", h("select", { name: "campaign" }, h("option", { value: "" }, "All"), cps.map((c) => h("option", { value: c.name, selected: q.get("campaign") === c.name }, c.title)))),
    field("reason", "Reason", h("select", { name: "reason" }, h("option", { value: "" }, "All"), REASONS.map((r) => h("option", { value: r, selected: q.get("reason") === r }, r.replaceAll("_", " "))))),
    field("user", "Player", h("input", { name: "user", value: q.get("user") ?? "", autocomplete: "off" })),
    field("state", "State", h("select", { name: "state" }, [["open", "To review"], ["dismissed", "Dismissed"], ["all", "All"]].map(([v, t]) => h("option", { value: v, selected: (q.get("state") ?? "open") === v }, t)))),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Filter")));
  const rows = h("tbody");
  const more = h("div", { class: "actions mt-s" });
  const status = h("p", { class: "muted small" });
  view.append(h("h1", { class: "section" }, "Review", h("span", { class: "muted small" }, "refused attempts, newest first")),
    h("section", { class: "card" }, form, status, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Player"), h("th", { class: "hide-phone" }, "Reason"), h("th", {}, "Numbers vs rule"), h("th", { class: "hide-phone" }, "When"), h("th", {}, ""))), rows)), more));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const n of ["campaign", "reason", "user", "state"]) if (form.elements[n].value) p.set(n, form.elements[n].value.trim());
    location.hash = `#/review?${p}`;
  });
  const load = async (cursor) => {
    const p = new URLSearchParams(q);
    p.set("limit", "50");
    if (cursor) p.set("cursor", cursor);
    let page;
    try { page = await api("GET", `/admin/flagged?${p}`); } catch (e) { status.textContent = explain(e); return; }
    if (!cursor && !page.flagged.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "Nothing to review. Refused attempts appear here with their numbers.")));
    rows.append(...page.flagged.map((f) => {
      const tr = h("tr", { "data-session": f.session },
        h("td", {}, h("a", { href: `#/players/${enc(f.user)}` }, f.user), h("div", { class: "muted small" }, f.campaign)),
        h("td", { class: "hide-phone" }, h("span", { class: "badge bad" }, f.reason?.replaceAll("_", " ") ?? "refused")),
        h("td", {}, numbers(f), h("a", { class: "small", href: `#/sessions/${enc(f.session)}` }, "evidence")),
        h("td", { class: "hide-phone" }, when(f.flagged_at)),
        h("td", {}, f.dismissed_at ? h("span", { class: "muted small" }, `dismissed by ${f.dismissed_by}`) : h("div", { class: "actions" },
          h("button", { class: "danger small-btn", type: "button", onclick: () => banPlayer(f.user, () => tr.classList.add("done")) }, "Ban"),
          h("button", { class: "ghost small-btn", type: "button", onclick: async () => {
            try { await api("POST", `/admin/flagged/${enc(f.session)}/dismiss`); tr.remove(); toast("Dismissed."); } catch (e) { toast(explain(e), "bad"); }
          } }, "Dismiss"))));
      return tr;
    }));
    more.replaceChildren(...(page.next_cursor ? [h("button", { class: "ghost", type: "button", onclick: () => load(page.next_cursor) }, "Load 50 more")] : []));
  };
  load();
}

// ---- a session as evidence ----

/** A plausibility flag in words: what was measured beside the threshold it crossed. */
const FLAG_WORDS = {
  too_regular: (f) => [`taps vary by ${f.value.toFixed(2)} (coefficient of variation)`, `a hand varies by at least ${f.limit}`, `over ${num(f.events)} intervals`],
  inhuman_rate: (f) => [`${f.value.toFixed(1)} taps/s for 2 s`, `a person: at most ${f.limit}/s`, `${num(f.events)} taps in those 2 s`],
  clock_skew: (f) => [`stamped up to ${num(f.value)} ms ahead of the server`, `tolerance ${num(f.limit)} ms`, `${num(f.events)} taps dropped`],
  late_input: (f) => [`sent up to ${num(f.value)} ms after they happened`, `at most ${num(f.limit)} ms`, `${num(f.events)} taps dropped`],
  score_mismatch: (f) => [`claimed ${num(f.value)}`, `the server counted ${num(f.limit)}`, `${num(f.events)} counted taps`],
};

/**
 * The input over time: each event at its `t_ms` (counted above the line, dropped below, in
 * red), each frame's arrival on the server's clock as a mark under the axis, and a line
 * from every event to the arrival of the frame that carried it: a long line is a late event.
 */
function inputStrip(input) {
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const end = Math.max(1, ...input.events.map((e) => e.t_ms), ...input.frames.map((f) => f.arrived_ms));
  const [w, h2] = [1000, 120];
  const x = (ms) => 10 + (Math.max(0, ms) / end) * (w - 20);
  const svg = el("svg", { viewBox: `0 0 ${w} ${h2}`, class: "strip", role: "img", "aria-label": `${input.events.length} events in ${input.frames.length} frames over ${Math.round(end / 100) / 10} s` });
  svg.append(el("line", { x1: 10, x2: w - 10, y1: 70, y2: 70, class: "axis" }));
  for (const e of input.events) {
    const f = input.frames[e.frame];
    if (f) svg.append(el("line", { x1: x(e.t_ms), y1: e.counted ? 40 : 60, x2: x(f.arrived_ms), y2: 86, class: e.counted ? "link" : "link dropped" }));
  }
  for (const e of input.events) {
    const mark = el("rect", { x: x(e.t_ms) - 1.5, y: e.counted ? 22 : 52, width: 3, height: e.counted ? 18 : 14, class: e.counted ? "ev" : "ev dropped" });
    const title = el("title", {});
    title.textContent = `${e.kind ?? "unknown kind"} at ${e.t_ms} ms${e.counted ? "" : `, dropped: ${e.dropped?.replaceAll("_", " ")}`}`;
    mark.append(title);
    svg.append(mark);
  }
  for (const f of input.frames) svg.append(el("path", { d: `M${x(f.arrived_ms)} 86 l-5 9 h10 z`, class: "arrival" }));
  for (let s = 0; s <= end / 1000; s += Math.max(1, Math.ceil(end / 10000))) {
    const t = el("text", { x: x(s * 1000), y: 112, class: "tick" });
    t.textContent = `${s}s`;
    svg.append(t);
  }
  return svg;
}

async function session(id) {
  const heading = (...rest) => h("h1", { class: "section" }, h("a", { href: "#/review" }, "Review"), h("span", { class: "muted" }, "/"), ...rest);
  let s;
  try { s = await api("GET", `/admin/sessions/${enc(id)}`); } catch (e) {
    view.append(heading(id), h("p", { class: e.status === 404 ? "empty" : "field-error" }, e.status === 404 ? "No decided session has this id (or this engine no longer keeps it)." : explain(e)));
    return;
  }
  const counted = s.scoring === "counted";
  const played = s.started_at && s.ended_at ? new Date(s.ended_at) - new Date(s.started_at) : null;
  const flags = s.flags.map((f) => {
    const [seen, limit, over] = (FLAG_WORDS[f.kind] ?? ((g) => [`${g.value}`, `${g.limit}`, ""]))(f);
    return h("li", {}, h("span", { class: "badge bad" }, f.kind.replaceAll("_", " ")), h("div", { class: "vs" }, h("span", { class: "over" }, seen), h("span", { class: "rule" }, `${limit} (${f.rule})`), h("span", { class: "muted small" }, over)));
  });
  const dropped = Object.entries(s.dropped);
  view.append(heading(`session ${id.slice(0, 8)}…`, s.status === "accepted" ? h("span", { class: "badge good" }, "accepted") : h("span", { class: "badge bad" }, s.reason?.replaceAll("_", " ") ?? "rejected"), h("span", { class: "badge" }, s.scoring)),
    h("div", { class: "grid two" },
      h("section", { class: "card" }, h("h2", {}, "Game"), h("dl", { class: "kv" },
        h("dt", {}, "Player"), h("dd", {}, h("a", { href: `#/players/${enc(s.user)}` }, s.user)),
        h("dt", {}, "Campaign"), h("dd", {}, h("a", { href: `#/campaigns/${enc(s.campaign)}` }, s.campaign)),
        h("dt", {}, "Started"), h("dd", {}, when(s.started_at)),
        h("dt", {}, "Decided"), h("dd", {}, `${when(s.ended_at)}${played === null ? "" : ` · ${(played / 1000).toFixed(1)} s played`}`),
        h("dt", {}, counted ? "Counted" : "Score"), h("dd", { class: "num-big" }, num(s.score)),
        ...(counted ? [h("dt", {}, "Claimed"), h("dd", { class: s.claimed > s.score ? "over" : "" }, num(s.claimed))] : []),
        h("dt", {}, "Session"), h("dd", { class: "muted small" }, s.session_id))),
      h("section", { class: "card" }, h("h2", {}, "Flags"), flags.length ? h("ul", { class: "flags" }, flags) : h("p", { class: "muted" }, counted ? "None: nothing in this game looked implausible." : "Claimed scores carry no evidence to flag."),
        dropped.length ? h("div", { class: "mt-s" }, h("h2", {}, "Dropped events"), table(["Reason", "Events"], dropped.map(([r, n]) => h("tr", {}, h("td", {}, r.replaceAll("_", " ")), h("td", { class: "num" }, num(n)))), "")) : null)),
    s.input ? h("section", { class: "card mt" }, h("h2", {}, "Input"),
      h("p", { class: "muted small" }, `${num(s.input.events.length)} events in ${num(s.input.frames.length)} frame${s.input.frames.length === 1 ? "" : "s"}. Above the line: counted; below, in red: dropped. Triangles: when each frame reached the server; each event is joined to its frame's arrival.`),
      s.input.unreadable ? h("p", { class: "field-error" }, "The stored input log could not be read.") : h("div", { class: "strip-wrap" }, inputStrip(s.input))) : null);
}

// ---- players ----

async function players() {
  const search = h("form", { class: "filters", role: "search" }, field("user", "Player", h("input", { name: "user", autocomplete: "off", placeholder: "a player's id" })),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Open")));
  search.addEventListener("submit", (ev) => { ev.preventDefault(); const u = search.elements.user.value.trim(); if (u) location.hash = `#/players/${enc(u)}`; });
  const bans = h("section", { class: "card" }, h("h2", {}, "Bans in force"));
  view.append(h("h1", { class: "section" }, "Players"), h("section", { class: "card" }, search), h("div", { class: "mt" }, bans));
  try {
    const { bans: list } = await api("GET", "/admin/bans");
    bans.append(table(["Player", "Reason", "Until", ["By", "hide-phone"]],
      list.map((b) => h("tr", {}, h("td", {}, h("a", { href: `#/players/${enc(b.user)}` }, b.user)), h("td", {}, b.reason), h("td", {}, b.until ? when(b.until) : "for good"), h("td", { class: "hide-phone" }, b.by))),
      "Nobody is banned."));
  } catch (e) { bans.append(h("p", { class: "field-error" }, explain(e))); }
}

async function player(user) {
  let p;
  try { p = await api("GET", `/admin/users/${enc(user)}`); } catch (e) {
    view.append(h("h1", { class: "section" }, h("a", { href: "#/players" }, "Players"), h("span", { class: "muted" }, "/"), user),
      h("p", { class: e.status === 404 ? "empty" : "field-error" }, e.status === 404 ? "podium knows nothing of this player: no socket, score, result, flag or ban." : explain(e)));
    return;
  }
  const again = () => route();
  const banCard = h("section", { class: "card" }, h("h2", {}, "Ban"), p.ban
    ? h("div", {}, h("dl", { class: "kv" }, h("dt", {}, "Reason"), h("dd", {}, p.ban.reason), h("dt", {}, "Until"), h("dd", {}, p.ban.until ? when(p.ban.until) : "for good"), h("dt", {}, "By"), h("dd", {}, `${p.ban.by}, ${when(p.ban.at)}`)),
      h("div", { class: "actions mt-s" }, h("button", { class: "primary", type: "button", onclick: async () => {
        if (!(await confirmAction({ title: `Lift ${user}'s ban?`, text: "Their bests go back on the boards and they may play again.", ok: "Lift ban" }))) return;
        try { await api("DELETE", `/admin/users/${enc(user)}/ban`); toast("Ban lifted."); again(); } catch (e) { toast(explain(e), "bad"); }
      } }, "Lift ban")))
    : h("div", { class: "actions" }, h("span", { class: "muted" }, "Not banned."), h("button", { class: "danger", type: "button", onclick: () => banPlayer(user, again) }, "Ban…"),
      h("button", { class: "ghost", type: "button", onclick: async () => {
        if (!(await confirmAction({ title: `Kick ${user}?`, text: "Their sockets close on every instance (4000); they may reconnect at once.", ok: "Kick" }))) return;
        try { const r = await api("POST", `/admin/users/${enc(user)}/kick`, { reason: "kicked from the console" }); toast(r.every_instance ? "Kicked everywhere." : "Kicked here; other instances could not be told."); setTimeout(again, 300); } catch (e) { toast(explain(e), "bad"); }
      } }, "Kick")));
  view.append(h("h1", { class: "section" }, h("a", { href: "#/players" }, "Players"), h("span", { class: "muted" }, "/"), p.user, p.ban ? h("span", { class: "badge bad" }, "banned") : null, p.sockets.length ? h("span", { class: "badge good" }, `online · ${p.sockets.length}`) : h("span", { class: "badge" }, "offline")),
    h("div", { class: "grid two" },
      banCard,
      h("section", { class: "card" }, h("h2", {}, "Boards"), table(["Campaign", "Board", "Best", "Rank"], p.boards.map((b) => h("tr", {}, h("td", {}, h("a", { href: `#/campaigns/${enc(b.campaign)}` }, b.campaign)), h("td", {}, b.board), h("td", { class: "num" }, num(b.best)), h("td", { class: "num" }, `#${num(b.rank)}`))), "Not on any board.")),
      h("section", { class: "card" }, h("h2", {}, "Sockets"), table(["Instance", "Address", "Since"], p.sockets.map((s) => h("tr", {}, h("td", {}, s.instance), h("td", {}, s.ip), h("td", {}, ago(s.since)))), "No socket open.")),
      h("section", { class: "card" }, h("h2", {}, "Recent results"), table(["Campaign", "Score", "Region", "Accepted"], p.results.map((r) => h("tr", {}, h("td", {}, r.campaign), h("td", { class: "num" }, h("a", { href: `#/sessions/${enc(r.session)}`, title: "the session's evidence" }, num(r.score))), h("td", {}, r.region ?? "–"), h("td", {}, when(r.accepted_at)))), "No accepted result."))),
    h("section", { class: "card mt" }, h("h2", {}, "Refused attempts"), table(["Campaign", ["Reason", "hide-phone"], "Numbers vs rule", ["When", "hide-phone"], ""], p.flags.map((f) => h("tr", {}, h("td", {}, f.campaign), h("td", { class: "hide-phone" }, f.reason), h("td", {}, numbers(f)), h("td", { class: "hide-phone" }, when(f.flagged_at)), h("td", { class: "muted small" }, f.dismissed_at ? "dismissed" : ""))), "No refused attempt.")));
}

// ---- announce and audit ----

async function announce() {
  let cps = [];
  try { cps = (await api("GET", "/admin/campaigns")).campaigns; } catch {}
  const text = h("textarea", { name: "text", maxlength: 500, required: true, placeholder: "Finals at 20:00!" });
  const form = h("form", { class: "fields", novalidate: true },
    h("div", { class: "full" }, field("text", "Message", text, "Up to 500 characters, shown at once in the game.")),
    field("campaign", "To", h("select", { name: "campaign" }, h("option", { value: "" }, "Every connected player"), cps.map((c) => h("option", { value: c.name }, `Players of ${c.title}`)))),
    h("p", { class: "form-error field-error full", role: "alert" }),
    h("div", { class: "actions full" }, h("button", { class: "primary", type: "submit" }, "Send")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { text: text.value };
    if (form.elements.campaign.value) body.campaign = form.elements.campaign.value;
    try {
      const r = await api("POST", "/admin/announce", body);
      showFieldError(form, null);
      toast(r.every_instance ? "Sent to every instance." : "Sent to this instance's players only: the others could not be told.", r.every_instance ? "good" : "bad");
      text.value = "";
    } catch (e) { showFieldError(form, e); }
  });
  view.append(h("h1", { class: "section" }, "Announce"), h("section", { class: "card" }, form));
}

function audit() {
  const rows = h("tbody");
  const more = h("div", { class: "actions mt-s" });
  view.append(h("h1", { class: "section" }, "Audit log", h("span", { class: "muted small" }, "every admin action, newest first")),
    h("section", { class: "card" }, h("div", { class: "table-wrap" }, h("table", { id: "audit-table" }, h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Who"), h("th", {}, "Action"), h("th", {}, "Target"), h("th", { class: "hide-phone" }, "Details"))), rows)), more));
  const load = async (cursor) => {
    let page;
    try { page = await api("GET", `/admin/audit?limit=50${cursor ? `&cursor=${cursor}` : ""}`); } catch (e) { more.replaceChildren(h("p", { class: "field-error" }, explain(e))); return; }
    if (!cursor && !page.entries.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No admin action yet.")));
    rows.append(...page.entries.map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.actor), h("td", {}, e.action.replaceAll("_", " ")), h("td", {}, e.target),
      h("td", { class: "hide-phone muted small" }, e.body === null ? "" : JSON.stringify(e.body)))));
    more.replaceChildren(...(page.next_cursor ? [h("button", { class: "ghost", type: "button", onclick: () => load(page.next_cursor) }, "Load 50 more")] : []));
  };
  load();
}

// ---- start ----

if (sessionStorage.getItem(KEY)) start();
else signOut();
