// The waits between attempts (pure functions: no service needed).

import assert from "node:assert/strict";
import test from "node:test";

import { backoffDelay, parseRetryAfter } from "../src/reconnect.js";

const bounds = { initialMs: 500, maxMs: 30_000 };

test("the delay doubles from initialMs and stops at maxMs", () => {
  const ceiling = (attempt) => backoffDelay(attempt, bounds, () => 0.999999);
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => Math.round(ceiling(n))),
    [500, 1000, 2000, 4000],
  );
  assert.equal(Math.round(ceiling(6)), 30_000);
  assert.equal(Math.round(ceiling(1000)), 30_000); // no overflow to Infinity or NaN
});

test("the delay is jittered between half and all of its step", () => {
  assert.equal(
    backoffDelay(2, bounds, () => 0),
    1000,
  );
  assert.equal(
    backoffDelay(2, bounds, () => 0.5),
    1500,
  );
  const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(3, bounds)));
  assert.ok(seen.size > 1);
  assert.ok([...seen].every((ms) => ms >= 2000 && ms <= 4000));
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("7"), 7);
  assert.equal(parseRetryAfter(" 0 "), 0);
  const now = Date.parse("2026-01-01T12:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 12:00:30 GMT", now), 30);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 11:00:00 GMT", now), 0); // in the past
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
});
