// How long to wait before the next attempt: exponential, capped and jittered. Shared by the
// HTTP retries (429/503 without Retry-After) and the WebSocket's reconnects.

/**
 * The delay before retry number `attempt` (0 for the first retry): `initialMs * 2^attempt`
 * capped at `maxMs`, then jittered to between half and all of it ("equal jitter"), so
 * clients dropped together by a restarting service do not come back together, and none
 * retries at once.
 *
 * @param {number} attempt
 * @param {{initialMs: number, maxMs: number}} bounds
 * @param {() => number} [random] a number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, { initialMs, maxMs }, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * Seconds from a Retry-After header: delay-seconds or an HTTP date; null when absent or
 * unreadable.
 *
 * @param {string | null} value
 * @param {number} [now] milliseconds since the epoch
 * @returns {number | null}
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value.trim() === "") return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
