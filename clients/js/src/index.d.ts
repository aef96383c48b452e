// Types of modeldepot's JavaScript SDK (src/index.js).
//
// Written by hand. The API types at the end follow the service's OpenAPI document
// (`/openapi.json`) and its WebSocket events (`modeldepot.events`); the Python test
// tests/clients/test_js_sdk.py checks that every interface there has exactly the fields
// the service's schemas have.

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/** What `new WebSocket(url, protocols)` makes: the global class, `ws`'s, or another. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => { send(data: string): void; close(code?: number, reason?: string): void };

export interface ReconnectOptions {
  /** The first delay before a reconnect, doubled at each failure (500). */
  initialDelayMs?: number;
  /** The longest delay (30,000); each delay is jittered to between half and all of it. */
  maxDelayMs?: number;
}

export interface ClientOptions {
  /** The fetch to use (the global one by default). */
  fetch?: typeof fetch;
  /** The WebSocket class (default: the global one, else the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Give up on a request after this long (30,000 ms): ServiceUnreachableError. */
  timeoutMs?: number;
  /** Retries of a request answered 429 or 503 (2). */
  requestRetries?: number;
  /** The longest wait before such a retry (30,000 ms); a longer Retry-After is thrown at once. */
  maxRetryWaitMs?: number;
  /** The event stream's reconnects, or false for none. */
  reconnect?: ReconnectOptions | false;
}

export interface PageOptions<Sort extends string = string> {
  /** From 1. */
  page?: number;
  /** 1 to 100 (20). */
  limit?: number;
  sort?: Sort;
  order?: Order;
}

export interface DownloadOptions {
  priority?: Priority;
  maxRetries?: number;
  /** 10^6 bytes a second: 0 (unlimited) or 0.01 to 100,000. */
  bandwidthLimitMbps?: number;
}

export interface QueueOptions {
  priority?: Priority;
  /** Give up (EXPIRED) after this long waiting; default: as long as the download takes. */
  maxWaitTimeMinutes?: number;
  /** POSTed the entry when it turns READY, EXPIRED or FAILED. */
  callback?: Callback;
}

export interface CleanupOptions {
  /** "auto" (the default): every unused model; "manual": `modelsToRemove`. */
  cleanupType?: CleanupType;
  modelsToRemove?: string[];
  minUnusedDays?: number;
  preserveFrequentlyUsed?: boolean;
  /** Answer what would be removed, removing nothing. */
  dryRun?: boolean;
}

/** UTC days as YYYY-MM-DD, both included. */
export interface DateRange {
  startDate?: string;
  endDate?: string;
}

/** Which events a stream delivers: left out or null means all. */
export interface Subscription {
  modelIds?: string[] | null;
  types?: EventType[] | null;
}

export declare class EnhancedModelAvailabilityClient {
  /**
   * @param baseUrl the API's base URL, `/api/v1` included (http://localhost:8000/api/v1)
   * @param apiKey sent as `Authorization: Bearer <key>` (on the WebSocket too)
   */
  constructor(baseUrl?: string, apiKey?: string | null, options?: ClientOptions);
  readonly baseUrl: string;
  readonly apiKey: string | null;
  /** The headers of every request (the seed's `this.headers`). */
  headers: Record<string, string>;
  /** The service's WebSocket URL: ws(s)://<host of baseUrl>/ws. */
  readonly webSocketUrl: string;

  getModelStatus(modelId?: null, options?: PageOptions<StatusSort>): Promise<DetailedStatusPage>;
  getModelStatus(modelId: string, options?: { refresh?: boolean }): Promise<ModelStatus>;

  startDownload(
    modelId: string,
    maxRetries?: number,
    priority?: Priority,
    options?: { bandwidthLimitMbps?: number },
  ): Promise<ManageResponse>;
  manageDownload(modelId: string, action: DownloadAction, options?: DownloadOptions): Promise<ManageResponse>;
  pauseDownload(modelId: string): Promise<ManageResponse>;
  resumeDownload(modelId: string): Promise<ManageResponse>;
  cancelDownload(modelId: string): Promise<ManageResponse>;
  getDownloadProgress(modelId: string): Promise<ProgressResponse>;
  getActiveDownloads(options?: PageOptions<ActiveSort>): Promise<ActiveDownloadsPage>;

  getModelHealth(modelId?: null, options?: PageOptions<HealthSort>): Promise<HealthPage>;
  getModelHealth(modelId: string): Promise<HealthResponse>;
  checkHealth(modelId: string, checkType?: CheckType, forceCheck?: boolean): Promise<HealthCheckStarted>;
  getHealthCheck(checkId: string): Promise<HealthCheckPublic>;
  repairModel(modelId: string, repairType?: RepairType, forceRepair?: boolean): Promise<RepairResponse>;
  getRepair(repairId: string): Promise<RepairRecord>;

  getRevisions(modelId: string, options?: PageOptions & { refresh?: boolean }): Promise<RevisionsPage>;
  updateModel(modelId: string, options?: DownloadOptions): Promise<UpdateResponse>;
  rollbackModel(modelId: string, commit?: string | null): Promise<RollbackResponse>;

  getSuggestions(
    requestedModel: string,
    requirements?: Requirements,
    userPreferences?: UserPreferences,
  ): Promise<SuggestResponse>;
  /** The seed's Python name for `getSuggestions`. */
  getModelSuggestions(
    requestedModel: string,
    requirements?: Requirements,
    userPreferences?: UserPreferences,
  ): Promise<SuggestResponse>;
  queueRequest(modelId: string, request: GenerationRequest, options?: QueueOptions): Promise<QueueResponse>;
  getQueueEntry(queueId: string): Promise<QueueEntry>;
  listQueue(
    options?: PageOptions<"created_at" | "model_id" | "status" | "priority"> & {
      modelId?: string;
      status?: QueueStatus;
    },
  ): Promise<QueuePage>;
  claimQueueEntry(queueId: string, worker?: string | null): Promise<QueueEntry>;
  cancelQueueEntry(queueId: string): Promise<QueueEntry>;

  reportUsage(events: UsageEvent | UsageEvent[]): Promise<UsageReportResult>;
  getUsageAnalytics(modelId?: string | null, period?: Period | DateRange): Promise<AnalyticsResponse>;
  getPerformanceAnalytics(): Promise<PerformanceResponse>;

  getStorage(options?: PageOptions<StorageSort>): Promise<StoragePage>;
  getCleanupRecommendations(options?: {
    storageThresholdGb?: number;
    minUnusedDays?: number;
  }): Promise<CleanupRecommendations>;
  cleanup(options?: CleanupOptions): Promise<CleanupResult>;
  getCleanup(cleanupId: string): Promise<CleanupResult>;
  listPins(): Promise<PinList>;
  pinModel(modelId: string, reason?: string | null): Promise<Pin>;
  unpinModel(modelId: string): Promise<void>;

  getConfig(): Promise<ConfigPublic>;
  updateConfig(changes: ConfigUpdate): Promise<ConfigUpdateResult>;
  listApiKeys(options?: PageOptions): Promise<ApiKeysPage>;
  createApiKey(name: string, role: Role): Promise<KeyCreated>;
  revokeApiKey(name: string): Promise<KeyRevoked>;
  getAuditLog(options?: PageOptions): Promise<AuditLogPage>;
  /** `/healthz`, beside the API. */
  getServiceHealth(): Promise<Healthz>;

  /** Open the live event stream; events go to `handleWebSocketMessage`. Reconnects until closed. */
  connectWebSocket(subscription?: Subscription | null): EventStream;
  /** The events as an async iterator, on a connection of its own, closed when the loop ends. */
  events(subscription?: Subscription | null): AsyncIterableIterator<EventMessage> & { readonly stream: EventStream };
  handleWebSocketMessage(data: EventMessage): void;
  /** Override these; the seed's three log to the console. */
  onDownloadProgress(data: DownloadProgressMessage): void;
  onHealthAlert(data: HealthAlertMessage): void;
  onAvailabilityChange(data: AvailabilityChangeMessage): void;
  onFallbackSuggestion(data: FallbackSuggestionMessage): void;
  onQueueEntryChange(data: QueueEntryChangeMessage): void;
  /** A message type of a newer service. */
  onUnknownMessage(data: { type: string; [field: string]: unknown }): void;
}

export type StreamState = "connecting" | "open" | "reconnecting" | "closed";

export interface CloseInfo {
  code: number;
  reason: string;
  /** False once the stream is closed for good. */
  willReconnect: boolean;
}

export declare class EventStream {
  private constructor();
  readonly state: StreamState;
  readonly url: string;
  on(type: "open", listener: (info: { url: string }) => void): () => void;
  on(type: "close", listener: (info: CloseInfo) => void): () => void;
  on(type: "reconnecting", listener: (info: { attempt: number; delayMs: number }) => void): () => void;
  on(type: "message", listener: (event: EventMessage) => void): () => void;
  on(type: "subscribed", listener: (reply: SubscribedMessage) => void): () => void;
  on(type: "error", listener: (error: Error) => void): () => void;
  /** Resolves once open; rejects if the stream closes for good first. */
  ready(): Promise<void>;
  /** Kept across reconnects; resolves with the service's confirmation, rejects with a ValidationError. */
  subscribe(subscription?: Subscription): Promise<SubscribedMessage>;
  unsubscribe(): Promise<SubscribedMessage>;
  /** This stream's events; the iterator ends when the stream closes. */
  events(): AsyncIterableIterator<EventMessage>;
  /** Close for good: no reconnect. */
  close(code?: number, reason?: string): void;
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

export interface ErrorFields {
  code?: string;
  status?: number | null;
  details?: Record<string, unknown>;
  requestId?: string | null;
  retryAfter?: number | null;
  cause?: unknown;
}

/** Every error the SDK throws. */
export declare class ModelDepotError extends Error {
  constructor(message: string, fields?: ErrorFields);
  /** The service's code (MODEL_NOT_FOUND, ...), HTTP_<status> without an envelope, or
   * SERVICE_UNREACHABLE, STREAM_CLOSED, WEBSOCKET_UNAVAILABLE, PROTOCOL_ERROR. */
  readonly code: string;
  /** The HTTP status; null when there was no answer. */
  readonly status: number | null;
  readonly details: Record<string, unknown>;
  readonly requestId: string | null;
  /** Seconds, from Retry-After. */
  readonly retryAfter: number | null;
}
export declare class BadRequestError extends ModelDepotError {}
export declare class UnauthorizedError extends ModelDepotError {}
export declare class ForbiddenError extends ModelDepotError {}
export declare class NotFoundError extends ModelDepotError {}
export declare class ModelNotFoundError extends NotFoundError {}
export declare class DownloadNotFoundError extends NotFoundError {}
export declare class QueueEntryNotFoundError extends NotFoundError {}
export declare class ConflictError extends ModelDepotError {}
export declare class DownloadInProgressError extends ConflictError {
  /** The download already under way. */
  readonly downloadId: string | null;
}
export declare class FeatureDisabledError extends ConflictError {}
export declare class QueueEntryNotReadyError extends ConflictError {}
export declare class RevisionUnavailableError extends ConflictError {}
export declare class ModelNotInstalledError extends ConflictError {}
export declare class ValidationError extends ModelDepotError {}
export declare class RateLimitedError extends ModelDepotError {}
export declare class InsufficientStorageError extends ModelDepotError {}
export declare class ServiceUnavailableError extends ModelDepotError {}
export declare class ServiceUnreachableError extends ModelDepotError {}

/** The error for a failed answer: from its envelope `{"error": {...}}`, else its status. */
export declare function errorFromResponse(
  status: number,
  body: unknown,
  retryAfter: number | null,
): ModelDepotError;

// ---------------------------------------------------------------------------------------
// WebSocket messages (modeldepot.events)
// ---------------------------------------------------------------------------------------

export interface DownloadProgressMessage {
  type: "model_download_progress";
  timestamp: string;
  model_id: string;
  progress_percent: number;
  speed_mbps: number;
  eta_seconds: number | null;
  status: DownloadStatus;
  download_id: string;
  downloaded_mb: number;
  total_mb: number;
  retry_count: number;
  error_message: string | null;
}

export interface HealthAlertMessage {
  type: "model_health_alert";
  timestamp: string;
  model_id: string;
  /** corruption_detected, structure_invalid or files_missing */
  alert_type: string;
  severity: "warning" | "critical";
  message: string;
  /** auto_repair, redownload or none */
  recommended_action: string;
  check_id: string | null;
}

export interface AvailabilityChangeMessage {
  type: "model_availability_change";
  timestamp: string;
  model_id: string;
  old_status: AvailabilityStatus | null;
  new_status: AvailabilityStatus;
}

export interface FallbackSuggestionMessage {
  type: "fallback_suggestion";
  timestamp: string;
  requested_model: string;
  suggested_model: string;
  compatibility_score: number;
  user_action_required: boolean;
  timeout_seconds: number;
}

export interface QueueEntryChangeMessage {
  type: "queue_entry_change";
  timestamp: string;
  queue_id: string;
  model_id: string;
  status: QueueStatus;
  reason: string | null;
}

export type EventMessage =
  | DownloadProgressMessage
  | HealthAlertMessage
  | AvailabilityChangeMessage
  | FallbackSuggestionMessage
  | QueueEntryChangeMessage;

export type EventType = EventMessage["type"];

/** The service's answer to a subscription (the lists sorted; null: all). */
export interface SubscribedMessage {
  type: "subscribed";
  model_ids: string[] | null;
  types: EventType[] | null;
}

// ---------------------------------------------------------------------------------------
// The API's documents (OpenAPI components)
// ---------------------------------------------------------------------------------------

export type StatusSort = "model_id" | "availability_status" | "size_mb" | "last_used" | "download_progress";
export type ActiveSort = "queue" | "model_id" | "status" | "priority" | "progress_percent" | "speed_mbps" | "eta_seconds";
export type HealthSort = "model_id" | "overall_health" | "integrity_score" | "performance_score" | "last_check";
export type StorageSort = "model_id" | "size_gb" | "last_accessed" | "usage_frequency" | "last_modified";
export type CheckType = "full" | "integrity" | "performance";
export type RepairType = "auto" | "redownload" | "integrity_fix";

export interface ActiveDownload {
  model_id: string;
  status: DownloadStatus;
  progress_percent: number;
  speed_mbps?: number | null;
  eta_seconds?: number | null;
  queue_position?: number | null;
  download_id: string;
  priority: Priority;
}
export interface ActiveDownloadsPage {
  active_downloads: ActiveDownload[];
  total_active: number;
  total_bandwidth_usage_mbps: number;
  pagination: Pagination;
}
export interface AnalyticsRange {
  start_date: string;
  end_date: string;
  days: number;
  time_zone?: string;
}
export interface AnalyticsResponse {
  models: Record<string, ModelAnalytics>;
  summary: AnalyticsSummary;
  /** The UTC days covered (extension) */
  range: AnalyticsRange;
}
export interface AnalyticsSummary {
  total_generations: number;
  total_models_used: number;
  /** Completed over ended across the models (weighted); null: no use */
  average_success_rate: number | null;
  most_used_model: string | null;
  /** Among the models used in the range */
  least_used_model: string | null;
}
export interface AuditEntry {
  /** When the action was answered (UTC) */
  at: string;
  /** The API key's name; 'anonymous' when keys are off, 'unauthenticated' for a request without a valid key, 'cli:<user>' for `modeldepot keys` */
  actor: string;
  /** The actor's role, if known */
  role: string | null;
  /** The client's address */
  client: string | null;
  /** Method and route, e.g. 'PUT /api/v1/config/update' */
  action: string;
  /** The model id or key name acted on, if any */
  target: string | null;
  /** The HTTP status answered (0 for a CLI action) */
  status: number;
  /** ok (2xx), refused (401, 403, 429: nothing was done) or failed */
  outcome: "ok" | "refused" | "failed";
  request_id?: string | null;
}
export type AvailabilityStatus = "AVAILABLE" | "PARTIAL" | "MISSING" | "QUEUED" | "DOWNLOADING" | "PAUSED" | "VERIFYING" | "FAILED" | "CORRUPTED" | "UPDATE_AVAILABLE";
export interface Callback {
  /** http(s) URL in ASCII (punycode for other names), checked by the downloads' source policy (no private, loopback or link-local address unless it is the hub's host or listed in allowed_source_hosts) when queued and before every attempt */
  url: string;
  /** Signs every notification: X-Modeldepot-Signature is sha256= and the hex HMAC-SHA256 of the body with this key (never shown again) */
  secret?: string | null;
}
export interface CallbackState {
  /** The callback URL, credentials removed */
  url: string;
  /** Of the latest notification: PENDING (being tried), DELIVERED, FAILED (attempts used up or refused), DROPPED (claimed or cancelled first); null before any change to notify */
  status: CallbackStatus | null;
  attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
  delivered_at: string | null;
}
export type CallbackStatus = "PENDING" | "DELIVERED" | "FAILED" | "DROPPED";
export type CheckStatus = "queued" | "running" | "completed" | "failed";
export interface ClaimRequest {
  worker?: string | null;
}
export interface CleanupDecision {
  model_id: string;
  /** removed (in a dry run: would be removed), preserved, error, or absent (nothing of it in the models directory: a manual cleanup named it) */
  outcome: "removed" | "preserved" | "error" | "absent";
  /** Why, in a sentence */
  reason: string;
  /** What the model's repository folder held */
  size_bytes: number;
  /** Allocated bytes its removal gave back (null in a dry run or if kept) */
  freed_bytes: number | null;
  last_used: string | null;
}
export interface CleanupRecommendation {
  model_id: string;
  reason: string;
  last_used: string | null;
  size_mb: number;
  /** Generations ever reported (roll-ups included) */
  usage_count: number;
  /** 0.5 (just past min_unused_days) to 1.0 (idle for twice that or more, never used: 0.05 more), minus 0.2 for a model with more than 10 uses ever */
  confidence: number;
  /** safe_to_remove at confidence 0.8 or more */
  action: "safe_to_remove" | "review";
  size_bytes: number;
  /** Its last use, or when it was installed if never used */
  idle_since: string;
}
export interface CleanupRecommendations {
  /** Least recently used first */
  recommendations: CleanupRecommendation[];
  /** Space removing all of them gives back (a blob two of them share counted once; one shared with a model that stays not counted) */
  potential_savings_gb: number;
  current_usage_gb: number;
  target_usage_gb: number;
  potential_savings_bytes: number;
  /** With it, only enough models (least recently used first) to get under it; none when usage is already under it */
  storage_threshold_gb: number | null;
  min_unused_days: number;
  /** Models with files that are never candidates, and why */
  protected: ProtectedModel[];
}
export interface CleanupRequest {
  cleanup_type: CleanupType;
  /** manual only: catalogue ids (1 to 1000, no repeats) */
  models_to_remove?: string[];
  /** Keep models used in the last N days (auto default: 30) */
  min_unused_days?: number | null;
  /** Keep models used at least once a day on average over the last 30 days (auto default: true) */
  preserve_frequently_used?: boolean | null;
  /** Answer exactly what the same request would remove, removing nothing */
  dry_run?: boolean;
}
export interface CleanupResult {
  /** False when a removal failed (see decisions) */
  success: boolean;
  cleanup_id: string;
  /** In a dry run: what would be removed */
  models_removed: string[];
  /** Measured: allocated bytes the file system got back, 10^9 bytes (in a dry run: what it would get back, a blob shared with a model that stays not counted) */
  space_freed_gb: number;
  models_preserved: string[];
  summary: CleanupSummary;
  dry_run: boolean;
  cleanup_type: CleanupType;
  /** api: a request; quota: making room for a download; schedule: the periodic check of cleanup_threshold_percent */
  trigger: "api" | "quota" | "schedule";
  space_freed_bytes: number;
  started_at: string;
  finished_at: string;
  decisions: CleanupDecision[];
  /** Repositories in the models directory that no catalogue entry names: reported, never touched */
  unmanaged_repositories: string[];
}
export interface CleanupSuggestions {
  potential_savings_gb: number;
  safe_to_remove_count: number;
  candidates: string[];
}
export interface CleanupSummary {
  total_processed: number;
  removed: number;
  preserved: number;
  errors: number;
  /** Named but not in the models directory (extension) */
  absent: number;
}
export type CleanupType = "auto" | "manual";
export interface ConfigPublic {
  storage: StoragePublic;
  downloads: DownloadsConfig;
  features: FeaturesConfig;
  health_monitoring: HealthMonitoringConfig;
  /** Extension (the seed states the limits, not a section): requests per minute per client */
  rate_limits: RateLimitsConfig;
  /** Extension (not in the seed): the saved runtime configuration this start set aside because it no longer validated; null when none was */
  set_aside?: SetAside | null;
}
export interface ConfigUpdateResult {
  success: boolean;
  /** Dotted keys whose value changed */
  updated_settings: string[];
  /** True if a changed key applies only at restart */
  restart_required: boolean;
  /** Changed keys that wait for a restart */
  pending_restart?: string[];
}
export interface DayUsage {
  date: string;
  /** Generations that ended that UTC day */
  uses: number;
  /** Mean duration of that day's completed generations, seconds */
  avg_time: number | null;
}
export interface DetailedStatusPage {
  models: Record<string, ModelStatus>;
  summary: StatusSummary;
  pagination: Pagination;
}
export type DownloadAction = "start" | "pause" | "resume" | "cancel" | "set_priority" | "update";
export type DownloadStatus = "QUEUED" | "DOWNLOADING" | "PAUSED" | "VERIFYING" | "COMPLETED" | "FAILED" | "CANCELLED";
export interface DownloadsConfig {
  /** Downloads transferring at once, 1 to 64 */
  max_concurrent_downloads?: number;
  /** Failed attempts in a row (without new bytes) retried before the download fails: 0 to 100 */
  max_retries?: number;
  /** Global limit, 10^6 bytes/s: 0 (unlimited) or 0.01 to 100,000 */
  bandwidth_limit_mbps?: number;
  /** Connections one file is fetched over, 1 to 64 */
  connections_per_file?: number;
  /** Connections across all downloads, 1 to 256 */
  max_connections?: number;
}
export interface ErrorBody {
  code: string;
  message: string;
  details: Record<string, unknown>;
  timestamp: string;
  request_id: string;
}
export interface ErrorEnvelope {
  error: ErrorBody;
}
export interface FallbackStrategy {
  /** USE_REQUESTED_MODEL (an extension: it is available) or the seed's */
  strategy_type: "USE_REQUESTED_MODEL" | "ALTERNATIVE_MODEL" | "QUEUE_AND_WAIT" | "DOWNLOAD_AND_RETRY" | "REDUCE_REQUIREMENTS" | "NO_ALTERNATIVE";
  recommended_action: string;
  /** Minutes until the requested model is available, from its live download (or, not downloading, its size over the measured download speed); null: no basis to say */
  estimated_wait_time: number | null;
  user_message: string;
  can_queue_request: boolean;
}
export interface FeaturesConfig {
  /** Segmented downloads over downloads.connections_per_file connections; off: one connection per file, as huggingface_hub downloads (applies to downloads that start or resume afterwards) */
  enhanced_downloads?: boolean;
  /** Scheduled health checks of every available model */
  health_monitoring?: boolean;
  /** Fallback suggestions and new wait-queue entries; off: POST /models/fallback/suggest and POST /models/fallback/queue answer 409 FEATURE_DISABLED and no fallback_suggestion is sent (entries already queued keep their course: READY, claim, cancel, expiry, callbacks; a FAILED one carries no suggestions) */
  intelligent_fallback?: boolean;
  /** Accept usage reports (POST /models/usage); off: reports are refused with 409 FEATURE_DISABLED and nothing is recorded (the analytics of what was recorded stay readable) */
  usage_analytics?: boolean;
}
export interface FileProgress {
  path: string;
  size: number;
  downloaded: number;
  /** pending | downloading | verified */
  state: string;
}
export interface GenerationParameters {
  resolution?: string | null;
  steps?: number | null;
  frames?: number | null;
  guidance_scale?: number | null;
}
export interface GenerationRequest {
  prompt: string;
  /** Free-form generation parameters (kept as given) */
  parameters?: Record<string, unknown>;
}
export interface GpuReport {
  name: string;
  total_gb: number;
  free_gb: number;
}
export interface HealthCheckPublic {
  check_id: string;
  model_id: string;
  check_type: "full" | "integrity" | "performance";
  force_check: boolean;
  status: CheckStatus;
  commit: string | null;
  requested_at: string;
  estimated_completion: string;
  started_at: string | null;
  finished_at: string | null;
  overall_health: "healthy" | "degraded" | "corrupted" | "missing" | "unknown" | null;
  integrity_score: number | null;
  performance_score: number | null;
  issues: HealthIssue[];
  recommendations: string[];
  measurements: Record<string, number | string | null>;
  error: string | null;
}
export interface HealthCheckRequest {
  check_type?: "full" | "integrity" | "performance";
  force_check?: boolean;
}
export interface HealthCheckStarted {
  success?: boolean;
  check_id: string;
  estimated_completion: string;
}
export interface HealthIssue {
  path: string;
  kind: "missing" | "wrong_size" | "wrong_hash" | "bad_structure" | "broken_link" | "outside_root";
  detail: string;
}
export interface HealthMonitoringConfig {
  /** Hours between monitor rounds (quick checks): 0.01 (36 s) to 8760 */
  check_interval_hours?: number;
  /** Hours after which a model's next check is a full one: 0.01 to 8760 */
  full_check_interval_hours?: number;
  auto_repair_enabled?: boolean;
}
export interface HealthPage {
  models: Record<string, ModelHealth>;
  system_health: SystemHealth;
  pagination: Pagination;
}
export interface HealthResponse {
  models: Record<string, ModelHealth>;
  system_health: SystemHealth;
}
export interface Healthz {
  /** degraded while the models directory refuses writes */
  status: "ok" | "degraded";
  version: string;
  models_directory: string;
  /** Checked now (a probe file is created and removed, at most once a second) */
  models_directory_writable: boolean;
  /** Why it refuses writes (read-only file system, ...) */
  models_directory_problem?: string | null;
  catalog_models: number;
  /** A saved runtime configuration that no longer validated at start-up, and where it was moved */
  config_set_aside?: SetAside | null;
}
export interface KeyCreate {
  /** A name to recognise it by */
  name: string;
  /** read: sees; user: also downloads and checks; admin: all */
  role: Role;
}
export interface KeyCreated {
  name: string;
  role: Role;
  /** Public id: the part of the key after 'mdk_' */
  key_id: string;
  created_at: string;
  /** Updated at most once a minute */
  last_used_at: string | null;
  /** The key itself: shown this once, store it now */
  key: string;
}
export interface KeyPublic {
  name: string;
  role: Role;
  /** Public id: the part of the key after 'mdk_' */
  key_id: string;
  created_at: string;
  /** Updated at most once a minute */
  last_used_at: string | null;
}
export interface KeyRevoked {
  success: boolean;
  revoked: KeyPublic;
}
export type Level = "low" | "medium" | "high";
export interface ManageRequest {
  model_id: string;
  action: DownloadAction;
  max_retries?: number | null;
  priority?: Priority | null;
  bandwidth_limit_mbps?: number | null;
}
export interface ManageResponse {
  success: boolean;
  message: string;
  download_id?: string | null;
  new_status?: string | null;
  estimated_completion?: string | null;
}
export interface ModelAnalytics {
  model_id: string;
  /** Generations that ended (completed or failed) */
  total_uses: number;
  /** total_uses over the days of the range */
  uses_per_day: number;
  /** Mean duration of the completed generations, seconds; null: none */
  average_generation_time: number | null;
  /** Completed over ended; null: no use */
  success_rate: number | null;
  /** The last 30 days of the range, one row per UTC day, zeros included */
  last_30_days_usage: DayUsage[];
  /** Up to 5 UTC hours (0-23) with the most uses, busiest first */
  peak_usage_hours: number[];
  completed: number;
  failed: number;
  /** generation_started events reported in the range */
  started: number;
  /** The newest use in the range */
  last_used: string | null;
}
export interface ModelHealth {
  model_id: string;
  overall_health: "healthy" | "degraded" | "corrupted" | "missing" | "unknown";
  integrity_score: number | null;
  performance_score: number | null;
  last_check: string | null;
  issues: HealthIssue[];
  recommendations: string[];
}
export interface ModelPerformance {
  /** 0 to 1 (see the module docs) */
  current_score: number | null;
  trend: "stable" | "improving" | "degrading" | "insufficient_data";
  /** Mean generation time, seconds */
  last_7_days_avg: number | null;
  /** Mean generation time, seconds */
  last_30_days_avg: number | null;
  performance_issues: string[];
  recommendations: string[];
  /** Completed generations, last 7 days */
  generations_7_days: number;
  generations_30_days: number;
  success_rate_7_days: number | null;
  success_rate_30_days: number | null;
  last_health_check: string | null;
  /** The newest finished check's verdict */
  overall_health: string | null;
  /** Read throughput of the newest check */
  read_mbps: number | null;
}
export interface ModelStatus {
  model_id: string;
  /** Every file of the installed revision is present with its manifest size, and the ref names that revision (no ref: never available) */
  is_available: boolean;
  /** A generation app reported the model loaded */
  is_loaded: boolean;
  /** Manifest size, 10^6 bytes; null while unknown */
  size_mb: number | null;
  availability_status: AvailabilityStatus;
  /** Percent, while a download exists */
  download_progress: number | null;
  missing_files: string[];
  /** Share of bytes verified; null: unchecked */
  integrity_score: number | null;
  last_health_check: string | null;
  performance_score: number | null;
  corruption_detected: boolean;
  /** Uses per day */
  usage_frequency: number;
  last_used: string | null;
  /** Seconds */
  average_generation_time: number | null;
  can_pause_download: boolean;
  can_resume_download: boolean;
  /** Seconds */
  estimated_download_time: number | null;
  /** Installed commit */
  current_version: string | null;
  /** Commit the tracked revision points at */
  latest_version: string | null;
  update_available: boolean;
  display_name?: string | null;
  model_type: string;
  source: string;
  revision: string;
  /** Manifest size in bytes */
  size_bytes: number | null;
  /** Files in the manifest; null while unknown */
  file_count: number | null;
  /** Present but with the wrong size */
  wrong_size_files: string[];
  /** hub | url | cache (derived from the local cache while the hub is unreachable) | null (unknown) */
  manifest_source: string | null;
  manifest_resolved_at: string | null;
  /** Why the source could not be resolved */
  source_error: string | null;
  source_error_code: string | null;
}
export interface ModelStorage {
  model_id: string;
  /** Size on disk of the model's repository folder */
  size_gb: number;
  /** Last reported use; null: never */
  last_accessed: string | null;
  /** Uses per day */
  usage_frequency: number;
  /** hot: used in the last 7 days; warm: in the last 30; cold: older or never */
  storage_tier: "hot" | "warm" | "cold";
  /** size_gb exactly, in bytes */
  size_bytes: number;
  /** When its newest file was written (how long a never-used model has been idle) */
  last_modified: string | null;
  /** Pinned: never a cleanup candidate */
  pinned: boolean;
  repo_id: string;
  commits: string[];
}
export type Order = "asc" | "desc";
export interface AuditLogPage {
  data: AuditEntry[];
  pagination: Pagination;
}
export interface ApiKeysPage {
  data: KeyPublic[];
  pagination: Pagination;
}
export interface Pagination {
  /** This page, from 1 */
  page: number;
  /** Items per page asked for (1-100) */
  limit: number;
  /** Items in the whole list */
  total: number;
  /** ceil(total / limit); 0 when the list is empty */
  pages: number;
  /** page < pages */
  has_next: boolean;
  /** page > 1 */
  has_prev: boolean;
}
export interface PerformanceResponse {
  performance_trends: Record<string, ModelPerformance>;
  system_performance: SystemPerformance;
}
export type Period = "day" | "week" | "month" | "year";
export interface Pin {
  model_id: string;
  pinned_at: string;
  reason: string | null;
}
export interface PinList {
  pins: Pin[];
}
export interface PinRequest {
  reason?: string | null;
}
export type Priority = "critical" | "high" | "normal" | "low";
export interface ProgressResponse {
  model_id: string;
  status: DownloadStatus;
  progress_percent: number;
  downloaded_mb: number;
  total_mb: number;
  speed_mbps: number;
  eta_seconds: number | null;
  retry_count: number;
  max_retries: number;
  error_message: string | null;
  can_pause: boolean;
  can_resume: boolean;
  can_cancel: boolean;
  download_id: string;
  priority: Priority;
  bandwidth_limit_mbps: number;
  error_code: string | null;
  queue_position: number | null;
  commit: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** When the last byte was written */
  last_byte_at: string | null;
  /** When the model became available */
  available_at: string | null;
  files: FileProgress[];
}
export interface ProtectedModel {
  model_id: string;
  reason: string;
}
export type QualityDifference = "much_higher" | "higher" | "similar" | "slightly_lower" | "lower" | "much_lower";
export interface QueueEntry {
  queue_id: string;
  model_id: string;
  status: QueueStatus;
  priority: Priority;
  request: GenerationRequest;
  position: number | null;
  estimated_wait_time_minutes: number | null;
  estimated_start_time: string | null;
  created_at: string;
  /** When a WAITING entry expires */
  wait_until: string | null;
  ready_at: string | null;
  /** When a READY entry expires unclaimed */
  claim_until: string | null;
  ended_at: string | null;
  /** Why it ended (expired, cancelled, failed) */
  reason: string | null;
  /** For a FAILED entry: alternatives to use instead (fallback suggestions) */
  suggestions: Array<Record<string, unknown>> | null;
  /** The entry's callback, if it has one */
  callback: CallbackState | null;
}
export interface QueuePage {
  data: QueueEntry[];
  pagination: Pagination;
}
export interface QueueRequest {
  model_id: string;
  request: GenerationRequest;
  priority?: Priority;
  /** Give up (EXPIRED) after this long waiting, above 0 to 10,080 (a week); null: wait as long as the download takes */
  max_wait_time_minutes?: number | null;
  /** Extension: notify this URL of READY, EXPIRED and FAILED */
  callback?: Callback | null;
}
export interface QueueResponse {
  success: boolean;
  queue_id: string;
  /** Among the entries waiting for the same model, by priority then arrival, from 1; null once READY or ended */
  position: number | null;
  /** From the live download's ETA; 0 when READY; null: no estimate yet */
  estimated_wait_time_minutes: number | null;
  estimated_start_time: string | null;
  status: QueueStatus;
  /** Queuing started the model's download */
  download_started: boolean;
}
export type QueueStatus = "WAITING" | "READY" | "CLAIMED" | "EXPIRED" | "CANCELLED" | "FAILED";
export interface RateLimitsConfig {
  /** Apply the limits below */
  enabled?: boolean;
  /** Most requests, per minute: 1 to 100,000 */
  default_per_minute?: number;
  /** Download actions (POST /models/download/manage), per minute: 1 to 100,000 */
  downloads_per_minute?: number;
  /** Admin actions (configuration, repair, update, rollback, keys, audit), per minute: 1 to 100,000 */
  admin_per_minute?: number;
  /** Clients on this machine (127.0.0.0/8, ::1) are not limited, so local apps and the dashboard are never throttled */
  exempt_loopback?: boolean;
}
export interface RepairRecord {
  repair_id: string;
  model_id: string;
  repair_type: "auto" | "redownload" | "integrity_fix";
  force_repair: boolean;
  commit: string;
  /** running until the download it started is over and the model was verified again; interrupted when the service stopped meanwhile */
  status: "running" | "completed" | "failed" | "interrupted";
  actions_taken: string[];
  files: string[];
  download_id: string | null;
  requested_at: string;
  finished_at: string | null;
  /** Verdict of the verification afterwards */
  overall_health: string | null;
  error: string | null;
}
export interface RepairRequest {
  repair_type?: "auto" | "redownload" | "integrity_fix";
  force_repair?: boolean;
}
export interface RepairResponse {
  success: boolean;
  repair_id: string;
  /** What was done before answering */
  actions_taken: string[];
  estimated_completion: string | null;
  download_id?: string | null;
  /** Files repaired or re-fetched */
  files?: string[];
}
export interface Requirements {
  /** low, medium or high */
  quality?: Level | null;
  /** low, medium or high */
  speed?: Level | null;
  /** The request type to serve: text-to-video, image-to-video, ... (default: the requested model's) */
  model_type?: string | null;
  /** WIDTHxHEIGHT (extension) */
  resolution?: string | null;
  /** GPU memory the generation may use, GB, above 0 to 4096 (extension) */
  max_vram_gb?: number | null;
}
export interface RevisionInfo {
  commit: string;
  state: RevisionState;
  /** Its snapshot directory exists */
  on_disk: boolean;
  /** Every file of its manifest present with the right size (null: its file list is unknown) */
  complete: boolean | null;
  installed_at: string | null;
  superseded_at: string | null;
  /** When the sweep removes a previous revision (superseded_at + storage.revision_grace_hours) */
  keep_until: string | null;
  removed_at: string | null;
  freed_bytes: number | null;
}
export type RevisionState = "current" | "previous" | "removed" | "untracked";
export interface RevisionsPage {
  model_id: string;
  tracked_revision: string;
  current_version: string | null;
  latest_version: string | null;
  update_available: boolean;
  latest_checked_at: string | null;
  grace_hours: number;
  /** download_id of an update under way */
  updating: string | null;
  revisions: RevisionInfo[];
  pagination: Pagination;
}
export type Role = "read" | "user" | "admin";
export interface RollbackRequest {
  /** 40-hex commit to switch back to; default: the newest kept previous one */
  commit?: string | null;
}
export interface RollbackResponse {
  success: boolean;
  message: string;
  model_id: string;
  from_version: string;
  to_version: string;
  /** When the revision rolled back from will be removed */
  previous_kept_until: string | null;
}
export interface ScoreParts {
  type: number;
  quality: number;
  speed: number;
  resolution: number;
  vram: number | null;
  availability: number;
  health: number;
}
export interface SetAside {
  /** Where the saved configuration was */
  file: string;
  /** Where it is now (runtime-config.rejected-<UTC time>.json beside it); null if it could not be moved (it is then reported again at the next start) */
  moved_to: string | null;
  /** Why it was refused, one entry per problem */
  reasons: string[];
  /** When it was set aside */
  at: string;
}
export interface StatusSummary {
  total_models: number;
  available_models: number;
  downloading_models: number;
  corrupted_models: number;
  /** Installed size of catalogue models, 10^9 B */
  total_storage_gb: number;
}
export interface StoragePage {
  storage_summary: StorageSummary;
  models_storage: ModelStorage[];
  cleanup_suggestions: CleanupSuggestions;
  unmanaged_repositories: UnmanagedRepository[];
  pagination: Pagination;
}
export interface StoragePublic {
  /** Quota for models, GB (10^9 bytes): 0 (no quota) or 0.001 to 1,000,000 */
  max_storage_gb?: number;
  /** Disk usage that calls for a clean-up, 1 to 100 % */
  cleanup_threshold_percent?: number;
  /** Reserve kept free on the models disk, GB (10^9 bytes): 0 to 100,000 */
  min_free_space_gb?: number;
  /** Free space by itself: a download that would cross the quota, the free-space reserve or cleanup_threshold_percent first removes the least recently used idle, unpinned models (never loaded, downloading, queued-for or pinned ones); off: such a download is refused with 507 naming what would have to go */
  auto_cleanup?: boolean;
  /** How often usage is checked against cleanup_threshold_percent (and, with auto_cleanup, brought back under it), 1 to 525,600 minutes */
  cleanup_check_interval_minutes?: number;
  /** How long the previous revision stays on disk after an update or a rollback, hours: 0 (removed at the next sweep) to 8760 (a year) */
  revision_grace_hours?: number;
  /** The models directory in use */
  models_directory: string;
}
export interface StorageSummary {
  /** Space models may occupy: what the models directory holds now plus the free space of the file system it is on, or storage.max_storage_gb if a quota is set and smaller. Other files on that disk do not count. */
  total_capacity_gb: number;
  /** Size on disk of every repository in the models directory (managed or not) */
  used_space_gb: number;
  /** Capacity left: total_capacity_gb - used_space_gb, never above the disk's free space nor below 0 */
  available_space_gb: number;
  /** used_space_gb / total_capacity_gb, in percent */
  usage_percent: number;
  /** Catalogue models with files on disk */
  models_count: number;
  total_capacity_bytes: number;
  used_space_bytes: number;
  available_space_bytes: number;
  /** Size of the file system holding the models */
  disk_total_gb: number;
  /** Free space of that file system */
  disk_free_gb: number;
  /** storage.max_storage_gb, null when 0 (none) */
  quota_gb: number | null;
  /** storage.min_free_space_gb kept free */
  reserve_gb: number;
  models_directory: string;
}
export interface SuggestRequest {
  requested_model: string;
  requirements?: Requirements;
  user_preferences?: UserPreferences;
}
export interface SuggestResponse {
  suggestions: Suggestion[];
  fallback_strategy: FallbackStrategy;
  /** null: not in the catalogue */
  requested_model_status: string | null;
  /** The GPUs considered for VRAM fit; null: none detected (NVML missing), the VRAM term left out */
  gpus: GpuReport[] | null;
  note?: string | null;
}
export interface Suggestion {
  suggested_model: string;
  /** 0 to 1, the weighted mean of score_parts */
  compatibility_score: number;
  /** How much faster than the requested model, as a fraction (+0.2: 20 % faster); from measured generation times when both have them, else from the speed levels */
  performance_difference: number;
  availability_status: string;
  reason: string;
  estimated_quality_difference: QualityDifference;
  score_parts: ScoreParts;
  vram_needed_gb: number | null;
  measured_generation_seconds: number | null;
}
export interface SystemHealth {
  overall_score: number | null;
  healthy_models: number;
  degraded_models: number;
  corrupted_models: number;
  last_system_check: string | null;
}
export interface SystemPerformance {
  overall_score: number | null;
  download_success_rate: number | null;
  average_download_speed_mbps: number | null;
  health_check_success_rate: number | null;
  downloads_completed: number;
  downloads_failed: number;
  health_checks: number;
  window_days?: number;
}
export interface UnmanagedRepository {
  repo_id: string;
  repo_type: string;
  size_gb: number;
  size_bytes: number;
  refs: Record<string, string>;
  commits: string[];
  last_modified: string | null;
}
export interface UpdateRequest {
  priority?: Priority | null;
  /** This download's limit, 10^6 bytes/s: 0 (unlimited) or 0.01 to 100,000; default: none of its own (the global limit applies) */
  bandwidth_limit_mbps?: number | null;
  /** 0 to 100; default: downloads.max_retries */
  max_retries?: number | null;
}
export interface UpdateResponse {
  success: boolean;
  message: string;
  model_id: string;
  from_version: string;
  to_version: string;
  download_id?: string | null;
  new_status: string;
  estimated_completion?: string | null;
}
export interface UsageEvent {
  /** Chosen by the app, unique per event (e.g. a UUID): a repeat is ignored */
  event_id: string;
  model_id: string;
  type: UsageEventType;
  /** When it happened, with a time zone (default: when received; a time ahead of the service's clock is taken as the time received) */
  at?: string | null;
  /** Which app instance reports (a model is loaded while any client has it loaded) */
  client?: string;
  /** The generation's wall time, seconds (0 to a week); required for generation_completed */
  duration_seconds?: number | null;
  parameters?: GenerationParameters | null;
  /** Peak GPU memory of the generation, GB */
  peak_vram_gb?: number | null;
}
export type UsageEventType = "generation_started" | "generation_completed" | "generation_failed" | "model_loaded" | "model_unloaded";
export interface UsageReport {
  events: UsageEvent[];
}
export interface UsageReportResult {
  success: boolean;
  /** Events stored now */
  accepted: number;
  /** Events already stored (same event_id): ignored */
  duplicates: number;
}
export interface UserPreferences {
  prefer_smaller_models?: boolean;
  /** 0 to 10,080 (a week) */
  max_wait_time_minutes?: number | null;
}
export interface StorageUpdate {
  /** Quota for models, GB (10^9 bytes): 0 (no quota) or 0.001 to 1,000,000 */
  max_storage_gb?: number;
  /** Disk usage that calls for a clean-up, 1 to 100 % */
  cleanup_threshold_percent?: number;
  /** Reserve kept free on the models disk, GB (10^9 bytes): 0 to 100,000 */
  min_free_space_gb?: number;
  /** Free space by itself: a download that would cross the quota, the free-space reserve or cleanup_threshold_percent first removes the least recently used idle, unpinned models (never loaded, downloading, queued-for or pinned ones); off: such a download is refused with 507 naming what would have to go */
  auto_cleanup?: boolean;
  /** How often usage is checked against cleanup_threshold_percent (and, with auto_cleanup, brought back under it), 1 to 525,600 minutes */
  cleanup_check_interval_minutes?: number;
  /** How long the previous revision stays on disk after an update or a rollback, hours: 0 (removed at the next sweep) to 8760 (a year) */
  revision_grace_hours?: number;
  /** Absolute path inside an allowed root; applied at the next start */
  models_directory?: string | null;
}
export interface ConfigUpdate {
  storage?: StorageUpdate;
  downloads?: DownloadsConfig;
  features?: FeaturesConfig;
  health_monitoring?: HealthMonitoringConfig;
  rate_limits?: RateLimitsConfig;
}
