// The package as users import it: by its name, through package.json's "exports".

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "node:test";
import { promisify } from "node:util";

import * as sdk from "modeldepot";
import * as source from "../src/index.js";

test('`import ... from "modeldepot"` gives the client and the error tree', () => {
  assert.equal(sdk.EnhancedModelAvailabilityClient, source.EnhancedModelAvailabilityClient);
  const expected = [
    "BadRequestError",
    "ConflictError",
    "DownloadInProgressError",
    "DownloadNotFoundError",
    "EnhancedModelAvailabilityClient",
    "EventStream",
    "FeatureDisabledError",
    "ForbiddenError",
    "InsufficientStorageError",
    "ModelDepotError",
    "ModelNotFoundError",
    "ModelNotInstalledError",
    "NotFoundError",
    "QueueEntryNotFoundError",
    "QueueEntryNotReadyError",
    "RateLimitedError",
    "RevisionUnavailableError",
    "ServiceUnavailableError",
    "ServiceUnreachableError",
    "UnauthorizedError",
    "ValidationError",
    "errorFromResponse",
  ];
  assert.deepEqual(Object.keys(sdk).sort(), expected);
  for (const name of expected.filter((n) => n.endsWith("Error"))) {
    assert.ok(new sdk[name]("x") instanceof sdk.ModelDepotError, name);
  }
});

test("the seed's defaults: localhost:8000, no key, JSON headers", () => {
  const client = new sdk.EnhancedModelAvailabilityClient();
  assert.equal(client.baseUrl, "http://localhost:8000/api/v1");
  assert.equal(client.apiKey, null);
  assert.deepEqual(client.headers, { "Content-Type": "application/json" });
  const keyed = new sdk.EnhancedModelAvailabilityClient("http://h:1/api/v1/", "k");
  assert.equal(keyed.baseUrl, "http://h:1/api/v1");
  assert.equal(keyed.headers.Authorization, "Bearer k");
});

test("without a global WebSocket and without `ws`, the stream says what to install", async () => {
  // The SDK alone in a directory with no node_modules, on Node without a global WebSocket.
  const dir = await mkdtemp(join(tmpdir(), "modeldepot-sdk-"));
  try {
    await cp(new URL("../src", import.meta.url), join(dir, "src"), { recursive: true });
    await writeFile(join(dir, "package.json"), '{"type": "module"}');
    await writeFile(
      join(dir, "main.js"),
      `delete globalThis.WebSocket;
       const { EnhancedModelAvailabilityClient } = await import("./src/index.js");
       const stream = new EnhancedModelAvailabilityClient("http://127.0.0.1:9/api/v1").connectWebSocket();
       stream.on("error", (error) => console.log(error.code, error.message));
       await stream.ready().catch(() => console.log(stream.state));`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ["main.js"], { cwd: dir });
    assert.equal(
      stdout,
      "WEBSOCKET_UNAVAILABLE No WebSocket here: Node before 22 needs the `ws` package (npm install ws)\nclosed\n",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
