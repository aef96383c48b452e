// modeldepot's JavaScript SDK: the seed's `EnhancedModelAvailabilityClient`, for the whole
// Enhanced Model Availability API, in browsers and Node 20+, without a build step.
//
// Every method returns the service's JSON as it is (snake_case fields, as the API
// documents them) and throws a `ModelDepotError` subclass built from the error envelope
// (errors.js). Arguments the SDK names are camelCase; documents the service keeps as given
// (a generation request, suggestion requirements, a configuration change, usage events) are
// passed as the API spells them.

import { errorFromResponse, ModelDepotError, ServiceUnreachableError } from "./errors.js";
import { EventStream } from "./events.js";
import { backoffDelay, parseRetryAfter, sleep } from "./reconnect.js";

export * from "./errors.js";
export { EventStream } from "./events.js";

const RETRYABLE = new Set([429, 503]);

function query(values) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined && value !== null) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function paging({ page, limit, sort, order } = {}) {
  return { page, limit, sort, order };
}

/** Leave out what was not given: the service applies its defaults (and refuses nulls in places). */
function defined(body) {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

const segment = encodeURIComponent;

export class EnhancedModelAvailabilityClient {
  /**
   * @param {string} [baseUrl] the API's base URL, `/api/v1` included
   * @param {string | null} [apiKey] sent as `Authorization: Bearer <key>`
   * @param {object} [options] see index.d.ts (`ClientOptions`)
   */
  constructor(baseUrl = "http://localhost:8000/api/v1", apiKey = null, options = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.headers = { "Content-Type": "application/json" };
    if (apiKey) {
      this.headers["Authorization"] = `Bearer ${apiKey}`;
    }
    this.options = {
      fetch: options.fetch ?? null,
      WebSocket: options.WebSocket ?? null,
      timeoutMs: options.timeoutMs ?? 30_000,
      requestRetries: options.requestRetries ?? 2,
      maxRetryWaitMs: options.maxRetryWaitMs ?? 30_000,
      reconnect: options.reconnect ?? {},
    };
  }

  // --- status ---------------------------------------------------------------------------

  /** Status of one model, or a page of every model's with a summary of them all. */
  async getModelStatus(modelId = null, options = {}) {
    if (modelId) {
      return this.#get(`/models/status/detailed/${segment(modelId)}${query({ refresh: options.refresh })}`);
    }
    return this.#get(`/models/status/detailed${query(paging(options))}`);
  }

  // --- downloads ------------------------------------------------------------------------

  /** Start a download (409 DownloadInProgressError, with `downloadId`, if one runs). */
  async startDownload(modelId, maxRetries = 3, priority = "normal", options = {}) {
    return this.manageDownload(modelId, "start", {
      maxRetries,
      priority,
      bandwidthLimitMbps: options.bandwidthLimitMbps,
    });
  }

  /** Any action of `POST /models/download/manage`: start, pause, resume, cancel,
   * set_priority (with `priority`) or update (priority, bandwidth limit, retries). */
  async manageDownload(modelId, action, options = {}) {
    return this.#send("POST", "/models/download/manage", {
      model_id: modelId,
      action,
      max_retries: options.maxRetries,
      priority: options.priority,
      bandwidth_limit_mbps: options.bandwidthLimitMbps,
    });
  }

  async pauseDownload(modelId) {
    return this.manageDownload(modelId, "pause");
  }

  async resumeDownload(modelId) {
    return this.manageDownload(modelId, "resume");
  }

  async cancelDownload(modelId) {
    return this.manageDownload(modelId, "cancel");
  }

  /** Progress of the model's newest download (DownloadNotFoundError if it never had one). */
  async getDownloadProgress(modelId) {
    return this.#get(`/models/download/progress/${segment(modelId)}`);
  }

  /** Running downloads first, then the queue in the order it will run; a page of them. */
  async getActiveDownloads(options = {}) {
    return this.#get(`/models/download/active${query(paging(options))}`);
  }

  // --- health ---------------------------------------------------------------------------

  /** Health of one model, or a page of every model's with the system's. */
  async getModelHealth(modelId = null, options = {}) {
    if (modelId) return this.#get(`/models/health/${segment(modelId)}`);
    return this.#get(`/models/health${query(paging(options))}`);
  }

  /** Start a health check ("integrity", "full" or "performance") in the background. */
  async checkHealth(modelId, checkType = "integrity", forceCheck = false) {
    return this.#send("POST", `/models/health/${segment(modelId)}/check`, {
      check_type: checkType,
      force_check: forceCheck,
    });
  }

  /** A health check by the `check_id` that `checkHealth` answered. */
  async getHealthCheck(checkId) {
    return this.#get(`/models/health/checks/${segment(checkId)}`);
  }

  /** Repair a model: "auto", "redownload" or "integrity_fix". */
  async repairModel(modelId, repairType = "auto", forceRepair = false) {
    return this.#send("POST", `/models/health/${segment(modelId)}/repair`, {
      repair_type: repairType,
      force_repair: forceRepair,
    });
  }

  /** A repair by the `repair_id` that `repairModel` answered. */
  async getRepair(repairId) {
    return this.#get(`/models/health/repairs/${segment(repairId)}`);
  }

  // --- revisions ------------------------------------------------------------------------

  /** The model's current, kept, removed and untracked revisions, and the hub's newest. */
  async getRevisions(modelId, options = {}) {
    return this.#get(
      `/models/revisions/${segment(modelId)}${query({ refresh: options.refresh, ...paging(options) })}`,
    );
  }

  /** Download the newest commit beside the installed one; switch when it verified. */
  async updateModel(modelId, options = {}) {
    return this.#send("POST", `/models/revisions/${segment(modelId)}/update`, {
      priority: options.priority,
      bandwidth_limit_mbps: options.bandwidthLimitMbps,
      max_retries: options.maxRetries,
    });
  }

  /** Switch back to a kept revision (default: the newest previous one). */
  async rollbackModel(modelId, commit = null) {
    return this.#send("POST", `/models/revisions/${segment(modelId)}/rollback`, {
      commit: commit ?? undefined,
    });
  }

  // --- fallback and the wait queue ------------------------------------------------------

  /** Models that can stand in for `requestedModel`, best first, and what to do. */
  async getSuggestions(requestedModel, requirements = {}, userPreferences = {}) {
    return this.#send("POST", "/models/fallback/suggest", {
      requested_model: requestedModel,
      requirements,
      user_preferences: userPreferences,
    });
  }

  /** The seed's Python name (`get_model_suggestions`) for `getSuggestions`. */
  async getModelSuggestions(requestedModel, requirements = {}, userPreferences = {}) {
    return this.getSuggestions(requestedModel, requirements, userPreferences);
  }

  /** Hold a generation request (`{prompt, parameters}`) until its model is available. */
  async queueRequest(modelId, request, options = {}) {
    return this.#send("POST", "/models/fallback/queue", {
      model_id: modelId,
      request,
      priority: options.priority,
      max_wait_time_minutes: options.maxWaitTimeMinutes,
      callback: options.callback,
    });
  }

  async getQueueEntry(queueId) {
    return this.#get(`/models/fallback/queue/${segment(queueId)}`);
  }

  /** Wait-queue entries, a page at a time, optionally of one model or status. */
  async listQueue(options = {}) {
    return this.#get(
      `/models/fallback/queue${query({ model_id: options.modelId, status: options.status, ...paging(options) })}`,
    );
  }

  /** Take a READY entry to run it: one caller gets it, any other QueueEntryNotReadyError. */
  async claimQueueEntry(queueId, worker = null) {
    return this.#send("POST", `/models/fallback/queue/${segment(queueId)}/claim`, {
      worker: worker ?? undefined,
    });
  }

  /** Withdraw a WAITING or READY entry. */
  async cancelQueueEntry(queueId) {
    return this.#send("DELETE", `/models/fallback/queue/${segment(queueId)}`);
  }

  // --- usage and analytics --------------------------------------------------------------

  /** Report usage events (one or a batch of up to 1000), each with its own `event_id`. */
  async reportUsage(events) {
    return this.#send("POST", "/models/usage", { events: Array.isArray(events) ? events : [events] });
  }

  /** Usage of every model or one, over a period ("day", "week", "month", "year") or
   * `{startDate, endDate}` (UTC days, YYYY-MM-DD, both included). */
  async getUsageAnalytics(modelId = null, period = "week") {
    const range =
      typeof period === "string" || period == null
        ? { period }
        : { start_date: period.startDate, end_date: period.endDate };
    const path = modelId ? `/models/analytics/${segment(modelId)}` : "/models/analytics";
    return this.#get(`${path}${query(range)}`);
  }

  async getPerformanceAnalytics() {
    return this.#get("/models/analytics/performance");
  }

  // --- storage and cleanup --------------------------------------------------------------

  async getStorage(options = {}) {
    return this.#get(`/models/storage${query(paging(options))}`);
  }

  /** Models worth removing, from real usage (never a protected one). */
  async getCleanupRecommendations(options = {}) {
    return this.#get(
      `/models/analytics/cleanup${query({
        storage_threshold_gb: options.storageThresholdGb,
        min_unused_days: options.minUnusedDays,
      })}`,
    );
  }

  /** Remove unused models ("auto") or the ones named ("manual"); `dryRun` changes nothing. */
  async cleanup(options = {}) {
    return this.#send("POST", "/models/cleanup", {
      cleanup_type: options.cleanupType ?? "auto",
      models_to_remove: options.modelsToRemove,
      min_unused_days: options.minUnusedDays,
      preserve_frequently_used: options.preserveFrequentlyUsed,
      dry_run: options.dryRun,
    });
  }

  /** A cleanup made earlier, by its `cleanup_id`. */
  async getCleanup(cleanupId) {
    return this.#get(`/models/cleanup/${segment(cleanupId)}`);
  }

  async listPins() {
    return this.#get("/models/pins");
  }

  /** Pin a model: never a cleanup candidate. */
  async pinModel(modelId, reason = null) {
    return this.#send("PUT", `/models/pins/${segment(modelId)}`, { reason: reason ?? undefined });
  }

  async unpinModel(modelId) {
    await this.#send("DELETE", `/models/pins/${segment(modelId)}`);
  }

  // --- configuration, keys, the service -------------------------------------------------

  async getConfig() {
    return this.#get("/config/current");
  }

  /** Change part of the configuration, e.g. `{downloads: {max_concurrent_downloads: 5}}`. */
  async updateConfig(changes) {
    return this.#send("PUT", "/config/update", changes);
  }

  async listApiKeys(options = {}) {
    return this.#get(`/auth/keys${query(paging(options))}`);
  }

  /** A new key ("read", "user" or "admin"); the answer holds the key, shown this once. */
  async createApiKey(name, role) {
    return this.#send("POST", "/auth/keys", { name, role });
  }

  async revokeApiKey(name) {
    return this.#send("DELETE", `/auth/keys/${segment(name)}`);
  }

  async getAuditLog(options = {}) {
    return this.#get(`/audit${query(paging(options))}`);
  }

  /** `/healthz` of the service (beside the API, not under `/api/v1`). */
  async getServiceHealth() {
    return this.#request("GET", new URL("healthz", this.#serviceRoot()).href);
  }

  // --- live events ----------------------------------------------------------------------

  /** The service's WebSocket URL: `ws(s)://<host of baseUrl>/ws` (beside `/api/v1`). */
  get webSocketUrl() {
    const url = new URL("ws", this.#serviceRoot());
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  /**
   * Open the live event stream; every event goes to `handleWebSocketMessage` (and so to
   * `onDownloadProgress`, `onHealthAlert`, ...). It reconnects by itself until `close()`.
   *
   * @param {{modelIds?: string[] | null, types?: string[] | null} | null} [subscription]
   * @returns {EventStream}
   */
  connectWebSocket(subscription = null) {
    return this.#stream(subscription, (data) => this.handleWebSocketMessage(data));
  }

  /**
   * The events as an async iterator, on a connection of its own (closed when the loop
   * ends): `for await (const event of client.events({modelIds: ["x"]})) ...`.
   */
  events(subscription = null) {
    const stream = this.#stream(subscription, null);
    const iterator = stream.events();
    return {
      stream,
      next: () => iterator.next(),
      return: () => {
        stream.close();
        return iterator.return();
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  handleWebSocketMessage(data) {
    switch (data.type) {
      case "model_download_progress":
        this.onDownloadProgress(data);
        break;
      case "model_health_alert":
        this.onHealthAlert(data);
        break;
      case "model_availability_change":
        this.onAvailabilityChange(data);
        break;
      case "fallback_suggestion":
        this.onFallbackSuggestion(data);
        break;
      case "queue_entry_change":
        this.onQueueEntryChange(data);
        break;
      default:
        this.onUnknownMessage(data);
    }
  }

  // The seed's handlers and their console output; override them (or use `events()`).
  onDownloadProgress(data) {
    console.log(`Download progress for ${data.model_id}: ${data.progress_percent}%`);
  }

  onHealthAlert(data) {
    console.warn(`Health alert for ${data.model_id}: ${data.message}`);
  }

  onAvailabilityChange(data) {
    console.log(`Model ${data.model_id} status changed: ${data.old_status} -> ${data.new_status}`);
  }

  onFallbackSuggestion(_data) {}

  onQueueEntryChange(_data) {}

  /** A message type this SDK does not know (from a newer service). */
  onUnknownMessage(_data) {}

  // --- plumbing -------------------------------------------------------------------------

  #serviceRoot() {
    const base = new URL(this.baseUrl, globalThis.location?.href);
    base.pathname = `${base.pathname.replace(/\/+$/, "").replace(/\/api\/v1$/, "")}/`;
    base.search = base.hash = "";
    return base;
  }

  #stream(subscription, dispatch) {
    return new EventStream({
      url: this.webSocketUrl,
      apiKey: this.apiKey,
      subscription,
      WebSocket: this.options.WebSocket,
      reconnect: this.options.reconnect,
      dispatch,
    });
  }

  #get(path) {
    return this.#request("GET", `${this.baseUrl}${path}`);
  }

  #send(method, path, body) {
    return this.#request(method, `${this.baseUrl}${path}`, body === undefined ? undefined : defined(body));
  }

  /**
   * One call, retried on 429 and 503 up to `requestRetries` times: after Retry-After when
   * the service says it (giving up at once when that is over `maxRetryWaitMs`), else
   * after a jittered exponential delay. Both answers mean the request was not carried out.
   */
  async #request(method, url, body) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.#fetch(method, url, body);
      if (response.ok) {
        return response.status === 204 ? null : this.#json(response, url);
      }
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      const error = errorFromResponse(
        response.status,
        await this.#json(response, url).catch(() => null),
        retryAfter,
      );
      const waitMs =
        retryAfter === null
          ? backoffDelay(attempt, { initialMs: 500, maxMs: this.options.maxRetryWaitMs })
          : retryAfter * 1000;
      if (
        !RETRYABLE.has(response.status) ||
        attempt >= this.options.requestRetries ||
        waitMs > this.options.maxRetryWaitMs
      ) {
        throw error;
      }
      await sleep(waitMs);
    }
  }

  async #fetch(method, url, body) {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    try {
      return await fetchImpl(url, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const why =
        error?.name === "TimeoutError"
          ? `no answer within ${this.options.timeoutMs} ms`
          : (error?.cause?.message ?? error?.message);
      throw new ServiceUnreachableError(`${method} ${url}: ${why}`, {
        code: "SERVICE_UNREACHABLE",
        cause: error,
      });
    }
  }

  async #json(response, url) {
    try {
      return await response.json();
    } catch (error) {
      throw new ModelDepotError(`${url} answered ${response.status} without JSON`, {
        code: "PROTOCOL_ERROR",
        status: response.status,
        cause: error,
      });
    }
  }
}
