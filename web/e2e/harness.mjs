// What the browser tests share: a podium on a free port (memory engine, dev mode, a fixed JWT
// secret so tokens outlive a restart as in production, and an admin key), and headless Chromium.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

export const root = new URL("../../", import.meta.url).pathname;
export const artifacts = `${root}artifacts`;
const binary = process.env.PODIUM_BIN ?? `${root}target/debug/podium`;
export const ADMIN_KEY = "e2e-admin-key-0123456789abcdef";

export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Starts podium on `port` and waits until it is ready; answers the child process. */
export async function startServer(port, env = {}) {
  const server = spawn(binary, [], {
    env: { ...process.env, PODIUM_LISTEN: `127.0.0.1:${port}`, PODIUM_ENGINE: "memory", JWT_SECRET: "e2e-secret-0123456789abcdef", ADMIN_API_KEYS: `e2e:${ADMIN_KEY}`, RUST_LOG: "warn", ...env },
    stdio: "inherit",
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return server;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("podium did not start");
}

export async function stopServer(server) {
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await exited;
}

export const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
