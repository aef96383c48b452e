// The live event stream against the real service: progress to COMPLETED and availability
// changes through the client's handlers and through `events()`, and a connection cut by a
// TCP proxy this test runs (the transport seam), which the stream survives with its
// subscription. Models of this file: ws-model, reconnect-model (throttled at the hub).

import "./without-global-websocket.js";

import assert from "node:assert/strict";
import test from "node:test";

import { EnhancedModelAvailabilityClient, ModelDepotError, ValidationError } from "../src/index.js";
import { BASE_URL, needsService, nextMatching, once, QuietClient, startProxy } from "./support.js";

const skip = needsService;
const client = new EnhancedModelAvailabilityClient(BASE_URL ?? undefined);
const FAST_RECONNECT = { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } };

test("the WebSocket URL is the service's, beside /api/v1", () => {
  const url = (base) => new EnhancedModelAvailabilityClient(base).webSocketUrl;
  assert.equal(url("https://depot.example/api/v1"), "wss://depot.example/ws");
  assert.equal(url("http://10.0.0.5:9000/api/v1/"), "ws://10.0.0.5:9000/ws");
  assert.equal(url("https://lab.example/depot/api/v1"), "wss://lab.example/depot/ws");
  assert.equal(url(undefined), "ws://localhost:8000/ws");
});

test("handlers see a download's progress to COMPLETED and the model become AVAILABLE", { skip }, async () => {
  const progress = [];
  const changes = [];
  let available;
  const seen = new Promise((resolve) => (available = resolve));
  class App extends EnhancedModelAvailabilityClient {
    onDownloadProgress(data) {
      progress.push(data);
    }
    onAvailabilityChange(data) {
      changes.push(data);
      if (data.new_status === "AVAILABLE") available();
    }
  }
  const app = new App(BASE_URL);
  const stream = app.connectWebSocket();
  try {
    assert.equal(stream.url, `${BASE_URL.replace("http", "ws").replace(/\/api\/v1$/, "")}/ws`);
    const confirmed = await stream.subscribe({ modelIds: ["ws-model"] });
    assert.deepEqual(confirmed, { type: "subscribed", model_ids: ["ws-model"], types: null });
    assert.equal(stream.state, "open");

    const started = await app.startDownload("ws-model");
    await seen;
    assert.ok(progress.every((p) => p.model_id === "ws-model" && p.download_id === started.download_id));
    assert.ok(progress.some((p) => p.status === "DOWNLOADING" && p.progress_percent < 100));
    const percents = progress.map((p) => p.progress_percent);
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => a - b),
    );
    const completed = progress.find((p) => p.status === "COMPLETED");
    assert.equal(completed?.progress_percent, 100);
    assert.equal(changes.at(-1).new_status, "AVAILABLE");
    assert.ok(changes.every((c) => c.model_id === "ws-model"));
  } finally {
    stream.close();
  }
  assert.equal(stream.state, "closed");
});

test("events() yields a model leaving, and ends its connection with the loop", { skip }, async () => {
  const events = client.events({ modelIds: ["ws-model"], types: ["model_availability_change"] });
  await once(events.stream, "subscribed");
  await client.cleanup({ cleanupType: "manual", modelsToRemove: ["ws-model"] });
  for await (const event of events) {
    assert.equal(event.type, "model_availability_change");
    assert.equal(event.model_id, "ws-model");
    assert.equal(event.old_status, "AVAILABLE");
    assert.equal(event.new_status, "MISSING");
    break;
  }
  assert.equal(events.stream.state, "closed");
});

test("a dropped connection comes back and gets its subscription again", { skip }, async () => {
  const proxy = await startProxy(BASE_URL);
  const viaProxy = new QuietClient(`${proxy.url}/api/v1`, null, FAST_RECONNECT);
  const stream = viaProxy.connectWebSocket({ modelIds: ["reconnect-model"] });
  const events = stream.events();
  const replies = [];
  stream.on("subscribed", (reply) => replies.push(reply));
  try {
    await once(stream, "subscribed");
    const back = once(stream, "open");
    const reconnecting = once(stream, "reconnecting");
    const resent = once(stream, "subscribed"); // sent by the stream itself, not by the test
    proxy.cut();
    assert.equal((await reconnecting).attempt, 1);
    await back;
    const again = await resent;
    assert.deepEqual(again.model_ids, ["reconnect-model"]);
    assert.equal(replies.length, 2);
    assert.equal(proxy.accepted, 2);

    await client.startDownload("reconnect-model");
    const done = await nextMatching(
      events,
      (event) => event.type === "model_download_progress" && event.status === "COMPLETED",
      "the COMPLETED progress of reconnect-model",
    );
    assert.equal(done.model_id, "reconnect-model");
  } finally {
    stream.close();
    await proxy.close();
  }
  // The subscription held on the new connection: nothing of the other files' models came.
  const rest = [];
  for await (const event of events) rest.push(event);
  assert.ok(
    rest.every((event) => event.model_id === "reconnect-model"),
    JSON.stringify(rest),
  );
});

test("close() stops the stream for good, even while it waits to reconnect", { skip }, async () => {
  const proxy = await startProxy(BASE_URL);
  const viaProxy = new EnhancedModelAvailabilityClient(`${proxy.url}/api/v1`, null, {
    reconnect: { initialDelayMs: 1, maxDelayMs: 1 },
  });
  const stream = viaProxy.connectWebSocket();
  const events = stream.events();
  try {
    await stream.ready();
    const waiting = once(stream, "reconnecting");
    proxy.cut();
    await waiting;
    stream.close();
    assert.equal(stream.state, "closed");
    assert.deepEqual(await events.next(), { done: true, value: undefined });
    await assert.rejects(stream.ready(), ModelDepotError);
    await assert.rejects(stream.subscribe({ types: ["model_health_alert"] }), ModelDepotError);

    // A whole handshake through the proxy takes far longer than the 1 ms reconnect delay:
    // had the closed stream come back, the proxy would have seen it by now.
    const other = viaProxy.connectWebSocket();
    await other.ready();
    other.close();
    assert.equal(proxy.accepted, 2);
  } finally {
    await proxy.close();
  }
});

test(
  "a subscription the service refuses rejects with a ValidationError; the stream stays",
  { skip },
  async () => {
    const stream = client.connectWebSocket();
    try {
      await stream.ready();
      const errors = [];
      stream.on("error", (error) => errors.push(error));
      const refused = await stream.subscribe({ types: ["no_such_event"] }).catch((e) => e);
      assert.ok(refused instanceof ValidationError);
      assert.match(refused.message, /unknown event type/);
      assert.equal(errors.length, 1);
      assert.equal(stream.state, "open");
      const reply = await stream.unsubscribe();
      assert.deepEqual(reply, { type: "subscribed", model_ids: null, types: null });
    } finally {
      stream.close();
    }
  },
);
