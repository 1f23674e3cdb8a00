// Two players in real headless Chromium: both play, one scores higher, and the other's live
// leaderboard shows both in the right order. Keeps a screenshot in artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { artifacts, freePort, launch, startServer, stopServer } from "./harness.mjs";

let server;
let base;
let browser;
let port;

before(async () => {
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = await startServer(port);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function play(page, taps) {
  await page.getByRole("button", { name: "Start a game" }).click();
  await page.waitForSelector("#tap:not([disabled])");
  // A person's pace: the counted campaign drops taps closer than 30 ms.
  for (let i = 0; i < taps; i++) {
    await page.click("#tap", { delay: 10 });
    await page.waitForTimeout(70);
  }
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

  await stopServer(server);
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "offline", null, { timeout: 10000 });
  server = await startServer(port);
  await page.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, carol, { timeout: 20000 });

  // The fresh server's board reaches the reconnected page: a new player's score shows up live.
  const other = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  await other.goto(`${base}/?name=${dave}&duration=3`);
  await other.waitForFunction((n) => document.querySelector("#status").textContent === `Online as ${n}`, dave);
  await play(other, 4);
  await page.waitForFunction((n) => [...document.querySelectorAll("#board li .name")].some((e) => e.textContent === n), dave, { timeout: 10000 });
});
