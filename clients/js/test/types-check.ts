// Type-checked (`tsc --noEmit -p clients/js`), never run: uses of the SDK as an app writes
// them, which must compile against src/index.d.ts, and misuses that must not
// (`@ts-expect-error` fails the check if they ever do). Only declarations here: node's test
// runner may load this file, and nothing in it calls the service.

import {
  DownloadInProgressError,
  EnhancedModelAvailabilityClient,
  type EventMessage,
  ModelDepotError,
  RateLimitedError,
} from "modeldepot";

export async function statusAndDownloads(client: EnhancedModelAvailabilityClient): Promise<string> {
  const one = await client.getModelStatus("my-model", { refresh: true });
  const available: boolean = one.is_available;
  const page = await client.getModelStatus(null, { limit: 5, sort: "size_mb", order: "desc" });
  const total: number = page.summary.total_models + page.pagination.total;
  if (!available) {
    try {
      const started = await client.startDownload("my-model", 5, "high", { bandwidthLimitMbps: 50 });
      return started.download_id ?? `${total}`;
    } catch (error) {
      if (error instanceof DownloadInProgressError) return error.downloadId ?? error.code;
      if (error instanceof RateLimitedError) return `retry in ${error.retryAfter ?? 1} s`;
      throw error;
    }
  }
  const progress = await client.getDownloadProgress("my-model");
  await client.manageDownload("my-model", "set_priority", { priority: "critical" });
  // @ts-expect-error: not an action of the API
  await client.manageDownload("my-model", "restart");
  return progress.status;
}

export async function theRest(client: EnhancedModelAvailabilityClient): Promise<number> {
  const health = await client.getModelHealth("my-model");
  const check = await client.checkHealth("my-model", "full", true);
  const record = await client.getHealthCheck(check.check_id);
  const repair = await client.repairModel("my-model", "integrity_fix");
  const suggestions = await client.getSuggestions("my-model", {
    quality: "high",
    model_type: "text-to-video",
  });
  const queued = await client.queueRequest(
    "my-model",
    { prompt: "a red fox", parameters: { resolution: "1280x704" } },
    { priority: "high", maxWaitTimeMinutes: 30 },
  );
  const claimed = await client.claimQueueEntry(queued.queue_id, "gpu-0");
  const listed = await client.listQueue({ modelId: "my-model", status: "READY", limit: 10 });
  await client.reportUsage({
    event_id: "e-1",
    model_id: "my-model",
    type: "generation_completed",
    duration_seconds: 3,
  });
  const analytics = await client.getUsageAnalytics("my-model", {
    startDate: "2026-01-01",
    endDate: "2026-01-31",
  });
  const storage = await client.getStorage({ sort: "size_gb" });
  const cleanup = await client.cleanup({ cleanupType: "manual", modelsToRemove: ["old"], dryRun: true });
  const config = await client.updateConfig({ downloads: { max_concurrent_downloads: 5 } });
  const key = await client.createApiKey("dashboard", "read");
  // @ts-expect-error: roles are read, user and admin
  await client.createApiKey("x", "root");
  return [
    health.system_health.healthy_models,
    record.issues.length,
    repair.actions_taken.length,
    suggestions.suggestions[0]?.compatibility_score ?? 0,
    claimed.request.prompt.length,
    listed.pagination.total,
    analytics.summary.total_generations,
    storage.storage_summary.usage_percent,
    cleanup.space_freed_gb,
    config.updated_settings.length,
    key.key.length,
  ].reduce((a, b) => a + b, 0);
}

export function liveEvents(client: EnhancedModelAvailabilityClient): () => void {
  const stream = client.connectWebSocket({ modelIds: ["my-model"], types: ["model_download_progress"] });
  stream.on("reconnecting", ({ attempt, delayMs }) => console.log(attempt, delayMs));
  stream.on("error", (error) => console.error(error instanceof ModelDepotError ? error.code : error));
  void stream.subscribe({ types: ["model_availability_change", "queue_entry_change"] });
  // @ts-expect-error: not an event type of the service
  void stream.subscribe({ types: ["model_deleted"] });
  return () => stream.close();
}

export async function iterate(client: EnhancedModelAvailabilityClient): Promise<string> {
  for await (const event of client.events({ modelIds: ["my-model"] })) {
    if (event.type === "model_download_progress" && event.status === "COMPLETED") return event.download_id;
    if (event.type === "model_availability_change") return event.new_status;
  }
  return "closed";
}

export class App extends EnhancedModelAvailabilityClient {
  override onDownloadProgress(data: Extract<EventMessage, { type: "model_download_progress" }>): void {
    console.log(data.progress_percent, data.eta_seconds ?? "unknown");
  }
}

export function options(): EnhancedModelAvailabilityClient {
  return new EnhancedModelAvailabilityClient("https://depot.example/api/v1", "mdk_x", {
    fetch: globalThis.fetch,
    WebSocket: globalThis.WebSocket,
    timeoutMs: 10_000,
    requestRetries: 3,
    maxRetryWaitMs: 60_000,
    reconnect: { initialDelayMs: 250, maxDelayMs: 10_000 },
  });
}
