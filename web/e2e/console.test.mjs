// The operator console in real headless Chromium, end to end on a real podium: sign in, create a
// campaign, a scripted player plays it over WebSocket, the result shows on the live board, a
// too-fast submit shows under review, the operator bans that player from there, their socket
// closes with 4403 and the board drops them, and the audit log lists each action; and a counted
// game's evidence page, on a laptop and a phone. Keeps
// screenshots in artifacts/ (docs/img/ holds chosen ones).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { ADMIN_KEY, artifacts, freePort, launch, startServer } from "./harness.mjs";

let server;
let base;
let browser;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = await startServer(port);
  browser = await launch();
  mkdirSync(artifacts, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

/** A picture of `page` without the passing toast. */
async function picture(page, file) {
  await page.evaluate(() => (document.getElementById("toast").hidden = true));
  await page.screenshot({ path: `${artifacts}/${file}` });
}

/** A scripted player in its own page: a dev token, a socket, and helpers on `window`. */
async function scriptedPlayer(name) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/ready`);
  await page.evaluate(async (user) => {
    const { token } = await (await fetch("/dev/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user }) })).json();
    const ws = new WebSocket(`ws://${location.host}/ws`);
    const inbox = [];
    const waiting = [];
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      const i = waiting.findIndex((w) => w.type === msg.type);
      if (i >= 0) waiting.splice(i, 1)[0].resolve(msg);
      else inbox.push(msg);
    };
    window.closeCode = null;
    ws.onclose = (ev) => (window.closeCode = ev.code);
    window.next = (type) => {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
      return new Promise((resolve) => waiting.push({ type, resolve }));
    };
    await new Promise((r) => (ws.onopen = r));
    window.send = (m) => ws.send(JSON.stringify(m));
    window.send({ type: "auth", token });
    await window.next("welcome");
    window.play = async (campaign, score, ms) => {
      window.send({ type: "start_game", campaign });
      const { session } = await window.next("game_started");
      await new Promise((r) => setTimeout(r, ms));
      window.send({ type: "submit", session, score });
      return window.next("result");
    };
  }, name);
  return page;
}

test("an operator runs a campaign from the console", async () => {
  const tag = Date.now().toString(36);
  const name = `fest${tag}`;
  const [honest, cheater] = [`ada-${tag}`, `mallory-${tag}`];
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 860 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // The 401 and 400 the test provokes (a bad key, a refused rule) are logged by the browser.
  page.on("console", (m) => { if (m.type() === "error" && !/status of 40[01] /.test(m.text())) errors.push(m.text()); });

  // Sign in: a bad key says so, the right one opens the overview.
  await page.goto(`${base}/console`);
  await page.fill("#key", "not-the-key-0123456789abcdef");
  await page.press("#key", "Enter");
  await page.waitForFunction(() => document.querySelector("#key-error").textContent.includes("not accepted"));
  await page.fill("#key", ADMIN_KEY);
  await page.press("#key", "Enter");
  await page.waitForSelector(".stat");
  assert.equal(await page.evaluate(() => location.search), "", "the key never goes in the address");

  // Create a campaign; a rule the server refuses is explained beside its field.
  await page.click("nav >> text=Campaigns");
  await page.click("a:has-text('New campaign')");
  await page.fill("input[name=name]", name);
  await page.fill("input[name=title]", "Spring Fest");
  await page.fill("input[name=min_duration_ms]", "9000");
  await page.fill("input[name=max_duration_ms]", "5000");
  await page.click("button:has-text('Create campaign')");
  await page.waitForFunction(() => document.querySelector('[data-field="rules.min_duration_ms"] .field-error').textContent.includes("less than max_duration_ms"));
  await page.fill("input[name=min_duration_ms]", "300");
  await page.fill("input[name=max_duration_ms]", "60000");
  await page.fill("input[name=max_score]", "1000");
  await page.fill("input[name=max_score_per_second]", "5000");
  await page.click("button:has-text('Create campaign')");
  await page.waitForFunction(() => /Spring Fest/.test(document.querySelector("h1.section")?.textContent) && document.querySelector("#live-board"));

  // Two scripted players play it; their results reach the live board.
  const ada = await scriptedPlayer(honest);
  const mal = await scriptedPlayer(cheater);
  assert.equal((await ada.evaluate((c) => window.play(c, 120, 400), name)).status, "accepted");
  assert.equal((await mal.evaluate((c) => window.play(c, 900, 400), name)).status, "accepted");
  await page.waitForFunction((n) => [...document.querySelectorAll("#live-board .name")].map((e) => e.textContent).join() === n, `${cheater},${honest}`, { timeout: 10000 });
  await page.waitForFunction(() => document.getAnimations().length === 0, null, { timeout: 5000 });
  await picture(page, "console-board.png");

  // A too-fast submit shows under review, its numbers beside the rule it broke.
  const refused = await mal.evaluate((c) => window.play(c, 500, 0), name);
  assert.equal(refused.reason, "too_fast");
  await page.click("nav >> text=Review");
  await page.waitForFunction((u) => [...document.querySelectorAll("tbody tr")].some((tr) => tr.textContent.includes(u) && tr.textContent.includes("too fast")), cheater, { timeout: 10000 });
  const row = page.locator("tbody tr", { hasText: cheater });
  assert.match(await row.textContent(), /at least 300 ms/);
  await picture(page, "console-review.png");

  // Ban from the review row: the player's socket closes with 4403 and the board drops them.
  await row.getByRole("button", { name: "Ban" }).click();
  await page.fill("#ban-reason", "taps faster than a human");
  await page.click("#confirm-ok");
  await page.waitForSelector(".toast:has-text('is banned')");
  await mal.waitForFunction(() => window.closeCode !== null, null, { timeout: 5000 }).catch(() => {});
  assert.equal(await mal.evaluate(() => window.closeCode), 4403, "the banned player's socket closes with 4403");
  await page.goto(`${base}/console#/campaigns/${name}`);
  await page.waitForFunction((n) => {
    const names = [...document.querySelectorAll("#live-board .name")].map((e) => e.textContent);
    return names.length === 1 && names[0] === n;
  }, honest, { timeout: 10000 });

  // The player page says so; the audit log lists each action.
  await page.goto(`${base}/console#/players/${cheater}`);
  await page.waitForSelector("h1 .badge:has-text('banned')");
  await page.goto(`${base}/console#/audit`);
  await page.waitForFunction(() => document.querySelectorAll("#audit-table tbody tr").length >= 2);
  const audit = await page.textContent("#audit-table tbody");
  assert.match(audit, new RegExp(`ban.*${cheater}`));
  assert.match(audit, new RegExp(`campaign create.*${name}`));

  await page.goto(`${base}/console#/overview`);
  await page.waitForFunction(() => document.querySelector(".bars"));
  await picture(page, "console-overview.png");
  assert.deepEqual(errors, []);
});

test("the console is usable on a phone and keeps nothing after sign out", async () => {
  const page = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })).newPage();
  await page.goto(`${base}/console`);
  await page.fill("#key", ADMIN_KEY);
  await page.press("#key", "Enter");
  await page.waitForSelector(".stat");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the overview fits the phone's width (${overflow} px over)`);
  await page.click("nav >> text=Campaigns");
  await page.waitForSelector("table");
  await page.screenshot({ path: `${artifacts}/console-phone-campaigns.png`, fullPage: true });
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in:not([hidden])");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

test("a counted game's evidence: its flags beside their thresholds and its input over time", async () => {
  const tag = Date.now().toString(36);
  const player = await scriptedPlayer(`late-${tag}`);
  // A plausible 4 s of taps, all sent in one frame at the end: only the last 3 s count.
  const result = await player.evaluate(async () => {
    window.send({ type: "start_game", campaign: "tap-rush" });
    const { session } = await window.next("game_started");
    await new Promise((r) => setTimeout(r, 4000));
    const events = [];
    for (let t = 0, i = 0; t < 4000; t += 90 + ((i * 37) % 70), i++) events.push([t, "tap"]);
    window.send({ type: "input", session, seq: 0, events });
    window.send({ type: "submit", session, score: events.length });
    return window.next("result");
  });
  assert.equal(result.status, "accepted");
  assert.ok(result.score < result.claimed, `counted ${result.score} of ${result.claimed}`);
  for (const [file, viewport] of [["console-session.png", { width: 1366, height: 860 }], ["console-phone-session.png", { width: 390, height: 844 }]]) {
    const page = await (await browser.newContext({ viewport, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 })).newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/console`);
    await page.fill("#key", ADMIN_KEY);
    await page.press("#key", "Enter");
    await page.waitForSelector(".stat");
    await page.goto(`${base}/console#/sessions/${result.session_id}`);
    await page.waitForSelector(".strip");
    const flags = await page.$$eval(".flags .badge", (els) => els.map((e) => e.textContent));
    assert.deepEqual(flags, ["late input", "score mismatch"]);
    const taps = await page.$$eval(".strip .ev", (els) => els.length);
    assert.equal(taps, result.claimed, "every tap on the strip");
    assert.equal(await page.$$eval(".strip .ev.dropped", (els) => els.length), result.claimed - result.score);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page fits the width (${overflow} px over)`);
    await page.screenshot({ path: `${artifacts}/${file}`, fullPage: true });
    assert.deepEqual(errors, []);
  }
  await player.close();
});
