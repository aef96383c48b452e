// Typed errors from the service's envelope, and the retries on 429 and 503. The service
// answers the 404, 409 and 422 itself; the 429 and 503 that must come at a chosen moment
// are injected at the transport seam (the `fetch` option), in front of the real service.
// Model of this file: busy-model (throttled at the hub).

import assert from "node:assert/strict";
import net from "node:net";
import test from "node:test";

import {
  ConflictError,
  DownloadInProgressError,
  DownloadNotFoundError,
  EnhancedModelAvailabilityClient,
  ModelDepotError,
  ModelNotFoundError,
  NotFoundError,
  RateLimitedError,
  ServiceUnavailableError,
  ServiceUnreachableError,
  ValidationError,
} from "../src/index.js";
import { BASE_URL, needsService } from "./support.js";

const client = new EnhancedModelAvailabilityClient(BASE_URL ?? undefined);
const skip = needsService;

function envelope(status, code, headers = {}) {
  const body = JSON.stringify({
    error: { code, message: `injected ${code}`, details: { why: "test" }, request_id: "req_test" },
  });
  return new Response(body, { status, headers: { "content-type": "application/json", ...headers } });
}

/** The real fetch behind `failures` answers made up front: each call takes the next one. */
function faultyFetch(failures) {
  const calls = [];
  const fetchImpl = (url, init) => {
    calls.push({ url, method: init.method, at: performance.now() });
    const failure = failures.shift();
    return failure ? Promise.resolve(failure()) : fetch(url, init);
  };
  return { fetchImpl, calls };
}

test("an unknown model is a ModelNotFoundError carrying the envelope", { skip }, async () => {
  const error = await client.getModelStatus("no-such-model").catch((e) => e);
  assert.ok(error instanceof ModelNotFoundError);
  assert.ok(error instanceof NotFoundError);
  assert.ok(error instanceof ModelDepotError);
  assert.equal(error.name, "ModelNotFoundError");
  assert.equal(error.status, 404);
  assert.equal(error.code, "MODEL_NOT_FOUND");
  assert.deepEqual(error.details, { model_id: "no-such-model" });
  assert.match(error.requestId, /^req_/);
  assert.match(error.message, /no-such-model/);
});

test("a second start is a DownloadInProgressError naming the running download", { skip }, async () => {
  await assert.rejects(client.getDownloadProgress("busy-model"), DownloadNotFoundError);
  const first = await client.startDownload("busy-model");
  try {
    const error = await client.startDownload("busy-model").catch((e) => e);
    assert.ok(error instanceof DownloadInProgressError);
    assert.ok(error instanceof ConflictError);
    assert.equal(error.status, 409);
    assert.equal(error.code, "DOWNLOAD_IN_PROGRESS");
    assert.equal(error.downloadId, first.download_id);
    assert.equal(error.details.download_id, first.download_id);
  } finally {
    await client.cancelDownload("busy-model");
  }
});

test("invalid input is a ValidationError (422) with the offending field", { skip }, async () => {
  const priority = await client.startDownload("busy-model", 3, "urgent").catch((e) => e);
  assert.ok(priority instanceof ValidationError);
  assert.equal(priority.status, 422);
  assert.equal(priority.code, "VALIDATION_ERROR");
  assert.ok(
    priority.details.errors.some((e) => e.field === "body.priority"),
    JSON.stringify(priority.details),
  );

  const retries = await client.startDownload("busy-model", "3").catch((e) => e); // strict: no "3" for 3
  assert.ok(retries instanceof ValidationError);
  assert.ok(retries.details.errors.some((e) => e.field === "body.max_retries"));

  const badId = await client.getModelStatus("not an id!").catch((e) => e);
  assert.ok(badId instanceof ValidationError);
  assert.equal(badId.code, "INVALID_MODEL_ID");
});

test("no service at the address is a ServiceUnreachableError", async () => {
  const closed = net.createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve)); // nothing listens there now
  const nowhere = new EnhancedModelAvailabilityClient(`http://127.0.0.1:${port}/api/v1`);
  const error = await nowhere.getModelStatus().catch((e) => e);
  assert.ok(error instanceof ServiceUnreachableError);
  assert.equal(error.code, "SERVICE_UNREACHABLE");
  assert.equal(error.status, null);
  assert.match(error.message, /ECONNREFUSED/);
});

test("a service that never answers is a ServiceUnreachableError after timeoutMs", async () => {
  const sockets = [];
  const silent = net.createServer((socket) => sockets.push(socket)); // never answers
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const stuck = new EnhancedModelAvailabilityClient(
      `http://127.0.0.1:${silent.address().port}/api/v1`,
      null,
      {
        timeoutMs: 200,
      },
    );
    const error = await stuck.getConfig().catch((e) => e);
    assert.ok(error instanceof ServiceUnreachableError);
    assert.match(error.message, /no answer within 200 ms/);
    assert.equal(error.cause.name, "TimeoutError");
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test("a 429 is retried after its Retry-After, then the real answer comes", { skip }, async () => {
  const { fetchImpl, calls } = faultyFetch([() => envelope(429, "RATE_LIMITED", { "retry-after": "1" })]);
  const patient = new EnhancedModelAvailabilityClient(BASE_URL, null, { fetch: fetchImpl });
  const status = await patient.getModelStatus("busy-model");
  assert.equal(status.model_id, "busy-model");
  assert.equal(calls.length, 2);
  assert.ok(calls[1].at - calls[0].at >= 950, `retried after ${calls[1].at - calls[0].at} ms`);
});

test("a 503 without Retry-After is retried after a short backoff", { skip }, async () => {
  const { fetchImpl, calls } = faultyFetch([() => envelope(503, "UPSTREAM_UNAVAILABLE")]);
  const patient = new EnhancedModelAvailabilityClient(BASE_URL, null, { fetch: fetchImpl });
  const config = await patient.getConfig();
  assert.ok(config.downloads);
  assert.equal(calls.length, 2);
  assert.ok(calls[1].at - calls[0].at >= 240); // half of the first 500 ms step, at least
});

test("retries are bounded: the last 429 is thrown, with its retryAfter", { skip }, async () => {
  const limited = () => envelope(429, "RATE_LIMITED", { "retry-after": "0" });
  const { fetchImpl, calls } = faultyFetch([limited, limited, limited, limited]);
  const patient = new EnhancedModelAvailabilityClient(BASE_URL, null, {
    fetch: fetchImpl,
    requestRetries: 2,
  });
  const error = await patient.getStorage().catch((e) => e);
  assert.ok(error instanceof RateLimitedError);
  assert.equal(error.retryAfter, 0);
  assert.equal(calls.length, 3);
});

test("a Retry-After longer than maxRetryWaitMs is thrown at once", { skip }, async () => {
  const { fetchImpl, calls } = faultyFetch([
    () => envelope(503, "UPSTREAM_RATE_LIMITED", { "retry-after": "120" }),
  ]);
  const patient = new EnhancedModelAvailabilityClient(BASE_URL, null, {
    fetch: fetchImpl,
    maxRetryWaitMs: 5_000,
  });
  const error = await patient.getModelStatus().catch((e) => e);
  assert.ok(error instanceof ServiceUnavailableError);
  assert.equal(error.retryAfter, 120);
  assert.equal(calls.length, 1);
});

test("other errors are never retried; unknown codes fall back to their status", { skip }, async () => {
  const { fetchImpl, calls } = faultyFetch([
    () => envelope(404, "SOMETHING_NEW_NOT_FOUND"),
    () => envelope(418, "TEAPOT"),
    () => new Response("<html>Bad gateway</html>", { status: 502, headers: { "content-type": "text/html" } }),
  ]);
  const patient = new EnhancedModelAvailabilityClient(BASE_URL, null, { fetch: fetchImpl });
  const newer = await patient.getModelStatus().catch((e) => e);
  assert.ok(newer instanceof NotFoundError);
  assert.equal(newer.code, "SOMETHING_NEW_NOT_FOUND");
  const teapot = await patient.getModelStatus().catch((e) => e);
  assert.equal(teapot.constructor, ModelDepotError);
  assert.equal(teapot.status, 418);
  const proxy = await patient.getModelStatus().catch((e) => e);
  assert.equal(proxy.constructor, ModelDepotError);
  assert.equal(proxy.code, "HTTP_502");
  assert.equal(proxy.status, 502);
  assert.equal(calls.length, 3);
});
