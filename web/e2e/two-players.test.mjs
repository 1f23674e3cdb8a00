// Two players in real headless Chromium: both play, one scores higher, and the other's live
// leaderboard shows both in the right order. Keeps a screenshot in artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const root = new URL("../../", import.meta.url).pathname;
const binary = process.env.PODIUM_BIN ?? `${root}target/debug/podium`;
const artifacts = `${root}artifacts`;
let server;
let base;
let browser;

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// Starts podium on `port` (memory engine, dev mode: guest tokens are served; a fixed secret, so
// tokens outlive a restart as in production) and waits for it.
async function startServer(port) {
  server = spawn(binary, [], { env: { ...process.env, PODIUM_LISTEN: `127.0.0.1:${port}`, PODIUM_ENGINE: "memory", JWT_SECRET: "e2e-secret-0123456789abcdef", RUST_LOG: "warn" }, stdio: "inherit" });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("podium did not start");
}

async function stopServer() {
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await exited;
}

let port;

before(async () => {
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer(port);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function play(page, taps) {
  await page.getByRole("button", { name: "Start a game" }).click();
  await page.waitForSelector("#tap:not([disabled])");
  for (let i = 0; i < taps; i++) await page.click("#tap", { delay: 10 });
  await page.waitForFunction(() => /accepted/.test(document.querySelector("#message").textContent), null, { timeout: 15000 });
}

test("the second player's board shows both players in order, live", async () => {
  const tag = Date.now().toString(36);
  const [alice, bob] = [`alice-${tag}`, `bob-${tag}`];
  const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
  const pageA = await (await browser.newContext(phone)).newPage();
  const pageB = await (await browser.newContext(phone)).newPage();
  const errors = [];
  for (const page of [pageA, pageB]) page.on("pageerror", (e) => errors.push(e.message));

  await pageA.goto(`${base}/?name=${alice}&duration=3`);
  await pageB.goto(`${base}/?name=${bob}&duration=3`);
  for (const [page, name] of [[pageA, alice], [pageB, bob]]) {
    await page.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, name);
  }

  await play(pageB, 5);
  await play(pageA, 12);

  // Bob's page learns of Alice's higher score from the room's diff, without reloading.
  await pageB.waitForFunction(
    ([a, b]) => {
      const names = [...document.querySelectorAll("#board li .name")].map((e) => e.textContent);
      return names.indexOf(a) === 0 && names.indexOf(b) === 1;
    },
    [alice, bob],
    { timeout: 10000 },
  );
  const rows = await pageB.$$eval("#board li", (lis) => lis.map((li) => ({ text: li.textContent, me: li.classList.contains("me") })));
  assert.match(rows[0].text, /alice.*12/);
  assert.match(rows[1].text, /bob.*5/);
  assert.equal(rows[1].me, true, "the player's own row is highlighted");
  assert.equal(await pageB.textContent("#rank"), "#2");
  assert.deepEqual(errors, []);

  // Let the row animations finish before the picture.
  await pageB.waitForFunction(() => document.getAnimations().length === 0, null, { timeout: 5000 });
  mkdirSync(artifacts, { recursive: true });
  await pageB.screenshot({ path: `${artifacts}/e2e-two-players.png`, fullPage: true });
});

test("a page reconnects with backoff after the server goes away and resyncs its board", async () => {
  const tag = Date.now().toString(36);
  const [carol, dave] = [`carol-${tag}`, `dave-${tag}`];
  const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  await page.goto(`${base}/?name=${carol}&duration=3`);
  await page.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, carol);

  await stopServer();
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "offline", null, { timeout: 10000 });
  await startServer(port);
  await page.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, carol, { timeout: 20000 });

  // The fresh server's board reaches the reconnected page: a new player's score shows up live.
  const other = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  await other.goto(`${base}/?name=${dave}&duration=3`);
  await other.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, dave);
  await play(other, 4);
  await page.waitForFunction((n) => [...document.querySelectorAll("#board li .name")].some((e) => e.textContent === n), dave, { timeout: 10000 });
});
