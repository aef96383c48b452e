// API keys and rate limits, against the second service pytest runs: keys required, and
// loopback clients limited to 20 requests a minute per key (or per address without one).

import "./without-global-websocket.js";

import assert from "node:assert/strict";
import test from "node:test";

import WebSocket from "ws";

import {
  EnhancedModelAvailabilityClient,
  ForbiddenError,
  RateLimitedError,
  UnauthorizedError,
} from "../src/index.js";
import { AUTH_BASE_URL, KEYS, needsSecuredService } from "./support.js";

const skip = needsSecuredService;
const as = (key, options) => new EnhancedModelAvailabilityClient(AUTH_BASE_URL ?? undefined, key, options);

/** A WebSocket as browsers have it: (url, protocols), no way to set a header. */
class StandardWebSocket extends WebSocket {
  static offered = [];

  constructor(url, protocols) {
    super(url, protocols);
    StandardWebSocket.offered.push(protocols);
  }
}

test("without a key every call is an UnauthorizedError", { skip }, async () => {
  const error = await as(null)
    .getModelStatus()
    .catch((e) => e);
  assert.ok(error instanceof UnauthorizedError);
  assert.equal(error.status, 401);
  assert.equal(error.code, "UNAUTHORIZED");
});

test("a read key reads, and changing the configuration is a ForbiddenError", { skip }, async () => {
  const reader = as(KEYS.read);
  assert.equal((await reader.getConfig()).downloads.max_concurrent_downloads, 3);
  const error = await reader.updateConfig({ downloads: { max_concurrent_downloads: 4 } }).catch((e) => e);
  assert.ok(error instanceof ForbiddenError);
  assert.equal(error.status, 403);
  assert.match(error.message, /needs 'admin'/);
});

test("over the limit is a RateLimitedError saying when to come back", { skip }, async () => {
  const limited = as(KEYS.limited, { requestRetries: 0 });
  let error = null;
  let answered = 0;
  // 20 a minute: the 21st call is refused (more pass only if a minute ends meanwhile).
  while (error === null && answered < 100) {
    error = await limited.getStorage().then(
      () => null,
      (e) => e,
    );
    if (error === null) answered += 1;
  }
  assert.ok(error instanceof RateLimitedError, String(error));
  assert.equal(error.status, 429);
  assert.ok(answered >= 20);
  assert.ok(error.retryAfter >= 1 && error.retryAfter <= 60, `retryAfter ${error.retryAfter}`);
});

test(
  "the WebSocket takes the key as a header from ws and as a subprotocol from browsers",
  { skip },
  async () => {
    const fromNode = as(KEYS.admin).connectWebSocket();
    try {
      const reply = await fromNode.subscribe({ types: ["model_download_progress"] });
      assert.deepEqual(reply.types, ["model_download_progress"]);
    } finally {
      fromNode.close();
    }

    const fromBrowser = as(KEYS.read, { WebSocket: StandardWebSocket }).connectWebSocket();
    try {
      await fromBrowser.ready();
      assert.deepEqual(StandardWebSocket.offered, [["modeldepot", `modeldepot.bearer.${KEYS.read}`]]);
      assert.equal((await fromBrowser.unsubscribe()).type, "subscribed");
    } finally {
      fromBrowser.close();
    }
  },
);

test("a WebSocket refused for want of a key stops for good with an UnauthorizedError", { skip }, async () => {
  const stream = as(null).connectWebSocket();
  const error = await new Promise((resolve) => stream.on("error", resolve));
  assert.ok(error instanceof UnauthorizedError);
  assert.equal(stream.state, "closed");
});

test("keys are made, used and revoked through the API; the audit log says so", { skip }, async () => {
  const admin = as(KEYS.admin);
  const made = await admin.createApiKey("made-by-sdk", "read");
  assert.equal(made.role, "read");
  assert.match(made.key, /^mdk_/);
  const fresh = as(made.key);
  assert.equal((await fresh.getServiceHealth()).status, "ok");
  assert.ok((await admin.listApiKeys()).data.some((k) => k.name === "made-by-sdk"));

  assert.equal((await admin.revokeApiKey("made-by-sdk")).success, true);
  await assert.rejects(fresh.getModelStatus(), UnauthorizedError);
  const audit = await admin.getAuditLog({ sort: "at", order: "desc", limit: 10 });
  const entry = (action) => audit.data.find((e) => e.action === action);
  assert.equal(entry("POST /api/v1/auth/keys")?.outcome, "ok", JSON.stringify(audit.data));
  assert.equal(entry("DELETE /api/v1/auth/keys/{name}")?.target, "made-by-sdk");
});
