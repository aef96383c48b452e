// The SDK's error tree: one class per family of the service's error codes.
//
//   ModelDepotError                      code, status, message, details, requestId
//   ├── BadRequestError (400)            MALFORMED_JSON, BAD_REQUEST, ...
//   ├── UnauthorizedError (401)          UNAUTHORIZED: no key, or an unknown or revoked one
//   ├── ForbiddenError (403)             FORBIDDEN (the key's role), HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED
//   ├── NotFoundError (404)
//   │   ├── ModelNotFoundError           MODEL_NOT_FOUND
//   │   ├── DownloadNotFoundError        DOWNLOAD_NOT_FOUND
//   │   └── QueueEntryNotFoundError      QUEUE_ENTRY_NOT_FOUND
//   ├── ConflictError (409)
//   │   ├── DownloadInProgressError      DOWNLOAD_IN_PROGRESS (downloadId: the running one)
//   │   ├── FeatureDisabledError         FEATURE_DISABLED
//   │   ├── QueueEntryNotReadyError      QUEUE_ENTRY_NOT_READY
//   │   ├── RevisionUnavailableError     REVISION_UNAVAILABLE
//   │   └── ModelNotInstalledError       MODEL_NOT_INSTALLED
//   ├── ValidationError (422)            VALIDATION_ERROR, INVALID_MODEL_ID, UNSAFE_SOURCE, ...
//   ├── RateLimitedError (429)           RATE_LIMITED (retryAfter: seconds)
//   ├── InsufficientStorageError (507)   INSUFFICIENT_STORAGE, DISK_FULL, STORAGE_READ_ONLY
//   ├── ServiceUnavailableError (503)    UPSTREAM_UNAVAILABLE, ... (retryAfter when told)
//   └── ServiceUnreachableError          no answer at all: refused, reset, timed out
//
// A code the SDK does not know yet falls back to the class of its HTTP status, so a newer
// service never breaks `instanceof` checks written against an older SDK.

export class ModelDepotError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, status?: number | null, details?: object, requestId?: string | null,
   *          retryAfter?: number | null, cause?: unknown}} [fields]
   */
  constructor(message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = new.target.name;
    this.code = fields.code ?? "INTERNAL_ERROR";
    this.status = fields.status ?? null;
    this.details = fields.details ?? {};
    this.requestId = fields.requestId ?? null;
    this.retryAfter = fields.retryAfter ?? null;
  }
}

export class BadRequestError extends ModelDepotError {}
export class UnauthorizedError extends ModelDepotError {}
export class ForbiddenError extends ModelDepotError {}
export class NotFoundError extends ModelDepotError {}
export class ModelNotFoundError extends NotFoundError {}
export class DownloadNotFoundError extends NotFoundError {}
export class QueueEntryNotFoundError extends NotFoundError {}
export class ConflictError extends ModelDepotError {}

export class DownloadInProgressError extends ConflictError {
  /** The id of the download already under way (`details.download_id`). */
  get downloadId() {
    return this.details.download_id ?? null;
  }
}

export class FeatureDisabledError extends ConflictError {}
export class QueueEntryNotReadyError extends ConflictError {}
export class RevisionUnavailableError extends ConflictError {}
export class ModelNotInstalledError extends ConflictError {}
export class ValidationError extends ModelDepotError {}
export class RateLimitedError extends ModelDepotError {}
export class InsufficientStorageError extends ModelDepotError {}
export class ServiceUnavailableError extends ModelDepotError {}
export class ServiceUnreachableError extends ModelDepotError {}

const BY_CODE = {
  MODEL_NOT_FOUND: ModelNotFoundError,
  DOWNLOAD_NOT_FOUND: DownloadNotFoundError,
  QUEUE_ENTRY_NOT_FOUND: QueueEntryNotFoundError,
  DOWNLOAD_IN_PROGRESS: DownloadInProgressError,
  FEATURE_DISABLED: FeatureDisabledError,
  QUEUE_ENTRY_NOT_READY: QueueEntryNotReadyError,
  REVISION_UNAVAILABLE: RevisionUnavailableError,
  MODEL_NOT_INSTALLED: ModelNotInstalledError,
  RATE_LIMITED: RateLimitedError,
  UNAUTHORIZED: UnauthorizedError,
  FORBIDDEN: ForbiddenError,
};

const BY_STATUS = {
  400: BadRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  422: ValidationError,
  429: RateLimitedError,
  503: ServiceUnavailableError,
  507: InsufficientStorageError,
};

/**
 * The error for an HTTP answer that is not a success: the envelope
 * `{"error": {code, message, details, request_id}}` when the body is one, else the status.
 *
 * @param {number} status
 * @param {unknown} body the parsed JSON body, or null
 * @param {number | null} retryAfter seconds, from the Retry-After header
 */
export function errorFromResponse(status, body, retryAfter) {
  const envelope = body && typeof body === "object" ? body.error : null;
  const known = envelope && typeof envelope === "object" && typeof envelope.code === "string";
  const code = known ? envelope.code : `HTTP_${status}`;
  const message = known && envelope.message ? envelope.message : `HTTP error! status: ${status}`;
  const Class = BY_CODE[code] ?? BY_STATUS[status] ?? ModelDepotError;
  return new Class(message, {
    code,
    status,
    details: known && envelope.details && typeof envelope.details === "object" ? envelope.details : {},
    requestId: known ? (envelope.request_id ?? null) : null,
    retryAfter,
  });
}
