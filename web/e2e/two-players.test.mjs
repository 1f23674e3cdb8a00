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

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // The memory engine in dev mode, so guest tokens are served.
  server = spawn(binary, [], { env: { ...process.env, PODIUM_LISTEN: `127.0.0.1:${port}`, PODIUM_ENGINE: "memory", RUST_LOG: "warn" }, stdio: "inherit" });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/ready`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
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
