// Every HTTP method of the client against the real service, in the order an app meets
// them. Models of this file: tiny-model, ready-model, slow-model (throttled at the hub).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import test from "node:test";

import {
  EnhancedModelAvailabilityClient,
  ModelNotInstalledError,
  QueueEntryNotReadyError,
  RevisionUnavailableError,
} from "../src/index.js";
import { BASE_URL, CATALOG, downloadEnded, needsService, until } from "./support.js";

const client = new EnhancedModelAvailabilityClient(BASE_URL ?? undefined);
const skip = needsService;

test("status of every model, a page of them, and of one", { skip }, async () => {
  const all = await client.getModelStatus();
  assert.deepEqual(Object.keys(all.models), [...CATALOG].sort());
  assert.equal(all.summary.total_models, CATALOG.length);
  assert.equal(all.pagination.total, CATALOG.length);

  const page = await client.getModelStatus(null, { limit: 2, sort: "model_id", order: "desc" });
  assert.deepEqual(Object.keys(page.models), ["ws-model", "tiny-model"]);
  assert.equal(page.pagination.has_next, true);

  const one = await client.getModelStatus("tiny-model", { refresh: true });
  assert.equal(one.model_id, "tiny-model");
  assert.equal(one.is_available, false);
  assert.equal(one.file_count, 2);
});

test("a download to COMPLETED, then health checks, repair and revisions", { skip }, async () => {
  const started = await client.startDownload("tiny-model");
  assert.equal(started.success, true);
  assert.match(started.download_id, /^dl_/);

  const ended = await downloadEnded(client, "tiny-model");
  assert.equal(ended.status, "COMPLETED");
  assert.equal(ended.download_id, started.download_id);
  assert.equal((await client.getModelStatus("tiny-model")).is_available, true);

  const check = await client.checkHealth("tiny-model", "full", true);
  assert.match(check.check_id, /^check_/);
  const done = await until(async () => {
    const record = await client.getHealthCheck(check.check_id);
    return record.status === "completed" && record;
  });
  assert.equal(done.overall_health, "healthy");
  assert.equal(done.check_type, "full");

  const health = await client.getModelHealth("tiny-model");
  assert.equal(health.models["tiny-model"].overall_health, "healthy");
  const everyone = await client.getModelHealth(null, { limit: 100 });
  assert.equal(Object.keys(everyone.models).length, CATALOG.length);
  assert.ok(everyone.system_health.healthy_models >= 1);

  const repair = await client.repairModel("tiny-model", "integrity_fix");
  assert.equal(repair.success, true);
  assert.equal((await client.getRepair(repair.repair_id)).model_id, "tiny-model");

  const revisions = await client.getRevisions("tiny-model");
  assert.equal(revisions.current_version, ended.commit);
  const update = await client.updateModel("tiny-model");
  assert.equal(update.to_version, ended.commit); // already the newest: nothing to fetch
  await assert.rejects(client.rollbackModel("tiny-model"), RevisionUnavailableError);
  await assert.rejects(client.rollbackModel("slow-model"), ModelNotInstalledError);
});

test("pause, resume, re-prioritise, queue behind and cancel a download", { skip }, async () => {
  const started = await client.startDownload("slow-model", 5, "low", { bandwidthLimitMbps: 0.5 });
  assert.equal(started.success, true);
  assert.equal((await client.getDownloadProgress("slow-model")).max_retries, 5);

  assert.equal((await client.pauseDownload("slow-model")).new_status, "PAUSED");
  assert.equal((await client.getDownloadProgress("slow-model")).status, "PAUSED");
  assert.notEqual((await client.resumeDownload("slow-model")).new_status, "PAUSED");
  await client.manageDownload("slow-model", "set_priority", { priority: "high" });
  await client.manageDownload("slow-model", "update", { bandwidthLimitMbps: 0 });
  const progress = await client.getDownloadProgress("slow-model");
  assert.equal(progress.priority, "high");
  assert.equal(progress.bandwidth_limit_mbps, 0);

  const active = await client.getActiveDownloads({ sort: "model_id" });
  const mine = active.active_downloads.find((d) => d.model_id === "slow-model");
  assert.equal(mine.download_id, started.download_id);
  assert.ok(active.total_active >= 1);

  const queued = await client.queueRequest(
    "slow-model",
    { prompt: "a red fox", parameters: { resolution: "1280x704" } },
    { priority: "high", maxWaitTimeMinutes: 30 },
  );
  assert.equal(queued.status, "WAITING");
  assert.equal(queued.position, 1);
  assert.equal(queued.download_started, false);
  const entry = await client.getQueueEntry(queued.queue_id);
  assert.deepEqual(entry.request, { prompt: "a red fox", parameters: { resolution: "1280x704" } });
  const listed = await client.listQueue({ modelId: "slow-model", status: "WAITING" });
  assert.deepEqual(
    listed.data.map((e) => e.queue_id),
    [queued.queue_id],
  );
  await assert.rejects(client.claimQueueEntry(queued.queue_id), QueueEntryNotReadyError);
  assert.equal((await client.cancelQueueEntry(queued.queue_id)).status, "CANCELLED");

  assert.equal((await client.cancelDownload("slow-model")).new_status, "CANCELLED");
  assert.equal((await client.getDownloadProgress("slow-model")).status, "CANCELLED");
});

test("the wait queue hands a ready model's request to exactly one claimer", { skip }, async () => {
  await client.startDownload("ready-model");
  assert.equal((await downloadEnded(client, "ready-model")).status, "COMPLETED");

  const queued = await client.queueRequest("ready-model", { prompt: "a blue whale" });
  assert.equal(queued.status, "READY");
  const claimed = await client.claimQueueEntry(queued.queue_id, "gpu-0");
  assert.equal(claimed.status, "CLAIMED");
  assert.equal(claimed.request.prompt, "a blue whale");
  const again = await client.claimQueueEntry(queued.queue_id).catch((error) => error);
  assert.ok(again instanceof QueueEntryNotReadyError);
  assert.equal(again.status, 409);
});

test("fallback suggestions, by either name", { skip }, async () => {
  const answer = await client.getSuggestions(
    "slow-model",
    { quality: "high", speed: "medium" },
    { max_wait_time_minutes: 10 },
  );
  assert.equal(
    answer.requested_model_status,
    (await client.getModelStatus("slow-model")).availability_status,
  );
  assert.ok(answer.suggestions.every((s) => s.suggested_model !== "slow-model"));
  assert.ok(answer.suggestions.some((s) => s.suggested_model === "ready-model"));
  const same = await client.getModelSuggestions("slow-model", { quality: "high", speed: "medium" });
  assert.equal(same.fallback_strategy.strategy_type, answer.fallback_strategy.strategy_type);
});

test("usage reports feed the analytics", { skip }, async () => {
  const event = {
    event_id: `run-${randomUUID()}`,
    model_id: "tiny-model",
    type: "generation_completed",
    duration_seconds: 2.5,
    parameters: { resolution: "1280x720", steps: 30 },
  };
  assert.deepEqual({ ...(await client.reportUsage([event])) }, { success: true, accepted: 1, duplicates: 0 });
  assert.equal((await client.reportUsage(event)).duplicates, 1); // a retry counts once

  const week = await client.getUsageAnalytics("tiny-model");
  assert.equal(week.models["tiny-model"].total_uses, 1);
  assert.equal(week.range.days, 7);
  const today = new Date().toISOString().slice(0, 10);
  const day = await client.getUsageAnalytics("tiny-model", { startDate: today, endDate: today });
  assert.equal(day.range.days, 1);
  assert.equal(day.models["tiny-model"].average_generation_time, 2.5);
  const all = await client.getUsageAnalytics(null, "month");
  assert.equal(all.summary.most_used_model, "tiny-model");

  const performance = await client.getPerformanceAnalytics();
  assert.ok("tiny-model" in performance.performance_trends);
});

test("storage, pins and a cleanup that removes a model", { skip }, async () => {
  const storage = await client.getStorage({ limit: 100 });
  assert.ok(storage.models_storage.some((m) => m.model_id === "tiny-model"));

  const pin = await client.pinModel("tiny-model", "kept for the test");
  assert.equal(pin.reason, "kept for the test");
  assert.deepEqual(
    (await client.listPins()).pins.map((p) => p.model_id),
    ["tiny-model"],
  );
  const advice = await client.getCleanupRecommendations({ minUnusedDays: 0 });
  assert.ok(advice.protected.some((p) => p.model_id === "tiny-model"));
  const dry = await client.cleanup({ cleanupType: "manual", modelsToRemove: ["tiny-model"], dryRun: true });
  assert.deepEqual(dry.models_preserved, ["tiny-model"]);
  assert.deepEqual((await client.getCleanup(dry.cleanup_id)).models_preserved, ["tiny-model"]);

  assert.equal(await client.unpinModel("tiny-model"), undefined);
  assert.deepEqual((await client.listPins()).pins, []);
  const done = await client.cleanup({ cleanupType: "manual", modelsToRemove: ["tiny-model"] });
  assert.deepEqual(done.models_removed, ["tiny-model"]);
  assert.equal((await client.getModelStatus("tiny-model")).availability_status, "MISSING");
});

test("the configuration, read and changed", { skip }, async () => {
  const before = await client.getConfig();
  assert.equal(before.downloads.max_concurrent_downloads, 16);
  const changed = await client.updateConfig({ downloads: { max_concurrent_downloads: 12 } });
  assert.deepEqual(changed.updated_settings, ["downloads.max_concurrent_downloads"]);
  assert.equal((await client.getConfig()).downloads.max_concurrent_downloads, 12);
  await client.updateConfig({ downloads: { max_concurrent_downloads: 16 } });
});

test("the service's own health, beside the API", { skip }, async () => {
  const health = await client.getServiceHealth();
  const { version } = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(health.status, "ok");
  assert.equal(health.version, version); // the SDK is released with the service
  assert.equal(health.catalog_models, CATALOG.length);
});
