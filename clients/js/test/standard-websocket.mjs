// The event stream on the platform's own WebSocket (browsers, Node 22+) instead of `ws`:
// no header, the key offered as a subprotocol, the same reconnects. Run apart from the
// *.test.js files, where the platform has one: Node 20 needs --experimental-websocket
// (tests/clients/test_js_sdk.py adds it). Model of this file: std-model.

import assert from "node:assert/strict";
import test from "node:test";

import { EnhancedModelAvailabilityClient } from "../src/index.js";
import {
  AUTH_BASE_URL,
  BASE_URL,
  KEYS,
  needsSecuredService,
  needsService,
  nextMatching,
  once,
  QuietClient,
  startProxy,
} from "./support.js";

const noGlobal = typeof globalThis.WebSocket === "function" ? false : "this platform has no global WebSocket";

test(
  "a standard WebSocket reconnects, subscribes again and sees a download end",
  { skip: noGlobal || needsService },
  async () => {
    const proxy = await startProxy(BASE_URL);
    const client = new QuietClient(`${proxy.url}/api/v1`, null, {
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    const stream = client.connectWebSocket({ modelIds: ["std-model"] });
    const events = stream.events();
    try {
      await once(stream, "subscribed");
      const again = once(stream, "subscribed");
      proxy.cut();
      assert.deepEqual((await again).model_ids, ["std-model"]); // sent by the stream itself
      assert.equal(proxy.accepted, 2);

      await new EnhancedModelAvailabilityClient(BASE_URL).startDownload("std-model");
      const done = await nextMatching(
        events,
        (e) => e.type === "model_download_progress" && e.status === "COMPLETED",
      );
      assert.equal(done.model_id, "std-model");
    } finally {
      stream.close();
      await proxy.close();
    }
  },
);

test(
  "a standard WebSocket offers the key as a subprotocol",
  { skip: noGlobal || needsSecuredService },
  async () => {
    const stream = new EnhancedModelAvailabilityClient(AUTH_BASE_URL, KEYS.read).connectWebSocket();
    try {
      const reply = await stream.subscribe({ types: ["model_availability_change"] });
      assert.deepEqual(reply.types, ["model_availability_change"]);
    } finally {
      stream.close();
    }
    // Without a key the handshake is refused; a browser cannot tell why, so it retries.
    const refused = new EnhancedModelAvailabilityClient(AUTH_BASE_URL, null, {
      reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 },
    }).connectWebSocket();
    const closed = await once(refused, "close");
    refused.close();
    assert.equal(closed.willReconnect, true);
    assert.equal(refused.state, "closed");
  },
);
