// What the node tests share: where the services are (tests/clients/test_js_sdk.py serves
// them and sets these variables), and waiting for a state without fixed sleeps.

import net from "node:net";

import { EnhancedModelAvailabilityClient } from "../src/index.js";

export const BASE_URL = process.env.MODELDEPOT_BASE_URL ?? null;
/** The ids of the service's catalogue. */
export const CATALOG = (process.env.MODELDEPOT_TEST_MODELS ?? "").split(",").filter(Boolean);
export const AUTH_BASE_URL = process.env.MODELDEPOT_AUTH_BASE_URL ?? null;
export const KEYS = {
  admin: process.env.MODELDEPOT_ADMIN_KEY ?? null,
  read: process.env.MODELDEPOT_READ_KEY ?? null,
  limited: process.env.MODELDEPOT_LIMITED_KEY ?? null,
};

/** For `test(name, {skip: needsService}, ...)`: false, or why the test cannot run. */
export const needsService =
  BASE_URL && CATALOG.length > 0
    ? false
    : "MODELDEPOT_BASE_URL or MODELDEPOT_TEST_MODELS is not set: run `pytest tests/clients/test_js_sdk.py`";
export const needsSecuredService =
  AUTH_BASE_URL && KEYS.admin && KEYS.read && KEYS.limited
    ? false
    : "MODELDEPOT_AUTH_BASE_URL and the MODELDEPOT_*_KEY variables are not set";

/** A bound for a stuck test, never a measurement. */
export const WAIT_MS = 20_000;

/**
 * Call `probe` until it returns something truthy, and return that; fail after `withinMs`.
 *
 * @template T
 * @param {() => Promise<T> | T} probe
 * @param {{withinMs?: number, what?: string}} [options]
 * @returns {Promise<T>}
 */
export async function until(probe, { withinMs = WAIT_MS, what = "the condition" } = {}) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} never held within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The download's progress once it has ended (COMPLETED, FAILED or CANCELLED). */
export function downloadEnded(client, modelId) {
  return until(
    async () => {
      const progress = await client.getDownloadProgress(modelId);
      return ["COMPLETED", "FAILED", "CANCELLED"].includes(progress.status) && progress;
    },
    { what: `the download of ${modelId} ending` },
  );
}

/** The next value an EventStream gives its `type` listeners. */
export function once(stream, type) {
  return new Promise((resolve) => {
    const off = stream.on(type, (value) => {
      off();
      resolve(value);
    });
  });
}

/** The next event the iterator yields that `predicate` accepts. */
export async function nextMatching(iterator, predicate, what = "a matching event") {
  const timeout = new Promise((_, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} never came within ${WAIT_MS} ms`)), WAIT_MS);
    timer.unref();
  });
  const search = (async () => {
    for (;;) {
      const { done, value } = await iterator.next();
      if (done) throw new Error(`the stream ended before ${what}`);
      if (predicate(value)) return value;
    }
  })();
  return Promise.race([search, timeout]);
}

/**
 * A TCP proxy to `target` (host:port) that the test can cut: every connection through it
 * is destroyed on `cut()`, as a dropped network or a restarting service would.
 */
export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted += 1;
    const upstream = net.connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Collect what `console.log`, `warn` and `error` print until `restore()`. */
export function captureConsole() {
  const lines = [];
  const originals = { log: console.log, warn: console.warn, error: console.error };
  for (const name of Object.keys(originals)) {
    console[name] = (...args) =>
      lines.push(args.map((a) => (typeof a === "string" ? a : String(a))).join(" "));
  }
  return {
    lines,
    restore() {
      Object.assign(console, originals);
    },
  };
}

/** A client without the seed's console output for progress and availability changes. */
export class QuietClient extends EnhancedModelAvailabilityClient {
  onDownloadProgress() {}
  onAvailabilityChange() {}
}
