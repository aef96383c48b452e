// The seed's JavaScript usage example, run unchanged (seed-example.mjs) against the real
// service: it finds "my-model" missing, starts its download, and its WebSocket, connected
// to the service the client was given, reports the progress and the model's arrival
// through the seed's handlers. Model of this file: my-model (throttled at the hub).

import "./without-global-websocket.js";

import assert from "node:assert/strict";
import test from "node:test";

import { BASE_URL, captureConsole, needsService, until } from "./support.js";

test("the seed's usage example runs unchanged against the service", { skip: needsService }, async () => {
  const printed = captureConsole();
  let example = null;
  try {
    example = await import("./seed-example.mjs");
    await until(
      () => printed.lines.some((line) => /^Model my-model status changed: \w+ -> AVAILABLE$/.test(line)),
      {
        what: "the example printing my-model's arrival",
      },
    );
  } finally {
    example?.ws.close();
    printed.restore();
  }
  const lines = printed.lines;
  assert.equal(lines[0], "Model available: false", lines.join("\n"));
  assert.ok(lines.includes("Download started: true"), lines.join("\n"));
  assert.ok(!lines.some((line) => line.startsWith("Error:")), lines.join("\n"));
  const percents = lines
    .map((line) => /^Download progress for my-model: ([\d.]+)%$/.exec(line)?.[1])
    .filter((percent) => percent !== undefined)
    .map(Number);
  assert.ok(
    percents.some((p) => p > 0 && p < 100),
    lines.join("\n"),
  );
  assert.equal(percents.at(-1), 100);
  assert.equal(example.ws.url, `${BASE_URL.replace(/^http/, "ws").replace(/\/api\/v1$/, "")}/ws`);
  assert.equal(example.ws.state, "closed");
});
