"""The one exception tree of modeldepot, each class with a stable ``code`` and HTTP ``status``.

::

    DepotError (500 INTERNAL_ERROR)
    ├── NotFound (404 NOT_FOUND)
    │   ├── ModelNotFound (404 MODEL_NOT_FOUND)
    │   ├── DownloadNotFound (404 DOWNLOAD_NOT_FOUND)
    │   ├── CheckNotFound (404 CHECK_NOT_FOUND)
    │   ├── RepairNotFound (404 REPAIR_NOT_FOUND)
    │   ├── CleanupNotFound (404 CLEANUP_NOT_FOUND)
    │   ├── QueueEntryNotFound (404 QUEUE_ENTRY_NOT_FOUND)
    │   └── RouteNotFound (404 ROUTE_NOT_FOUND)
    ├── Conflict (409 CONFLICT)
    │   ├── DownloadInProgress (409 DOWNLOAD_IN_PROGRESS)
    │   ├── RevisionUnavailable (409 REVISION_UNAVAILABLE)
    │   ├── ModelNotInstalled (409 MODEL_NOT_INSTALLED)
    │   ├── FeatureDisabled (409 FEATURE_DISABLED)    switched off in the configuration
    │   └── QueueEntryNotReady (409 QUEUE_ENTRY_NOT_READY)  not READY, or claimed already
    ├── InvalidInput (422 VALIDATION_ERROR)
    │   ├── InvalidModelId (422 INVALID_MODEL_ID)
    │   ├── InvalidCheckId (422 INVALID_CHECK_ID)
    │   ├── InvalidRepairId (422 INVALID_REPAIR_ID)
    │   └── UnsafePath (422 UNSAFE_PATH)
    ├── ConfigError (500 CONFIG_ERROR)          start-up configuration is unusable
    │   ├── CatalogError (500 CATALOG_ERROR)    a catalogue file is malformed
    │   └── AlreadyRunning (500 ALREADY_RUNNING)  another process holds the data (instance.py)
    ├── IntegrityError (422 INTEGRITY_ERROR)
    │   └── ChecksumMismatch (422 CHECKSUM_MISMATCH)
    ├── StorageError (500 STORAGE_ERROR)
    │   ├── InsufficientStorage (507 INSUFFICIENT_STORAGE)
    │   ├── DiskFull (507 DISK_FULL)            ENOSPC while writing
    │   └── StorageReadOnly (507 STORAGE_READ_ONLY)  the models directory refuses writes
    ├── UnsafeSource (422 UNSAFE_SOURCE)        SSRF policy refused a URL or redirect
    └── UpstreamError (502 UPSTREAM_ERROR)
        ├── UpstreamUnavailable (503 UPSTREAM_UNAVAILABLE)
        ├── UpstreamTimeout (504 UPSTREAM_TIMEOUT)
        ├── UpstreamNotFound (502 UPSTREAM_NOT_FOUND)
        ├── UpstreamUnauthorized (502 UPSTREAM_UNAUTHORIZED)
        ├── UpstreamRateLimited (503 UPSTREAM_RATE_LIMITED)
        ├── UpstreamProtocolError (502 UPSTREAM_PROTOCOL_ERROR)   wrong ranges or sizes
        ├── RedirectError (502 REDIRECT_ERROR)                    loops, too many hops
        └── TransferInterrupted (503 TRANSFER_INTERRUPTED)       cut body, stall, reset

``UpstreamError`` carries ``retry_after`` (seconds) when the server said when to come
back; whether an error is worth retrying is ``is_transient`` (see downloads/retry.py).

The API renders every one of them through a single handler into the seed's envelope
``{"error": {code, message, details, timestamp, request_id}}``; the CLI maps the same tree
through one table of exit codes. Foreign exceptions (httpx, OSError, SQLAlchemy,
huggingface_hub) are translated once, in the module that calls the foreign code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DepotError(Exception):
    """Base of every error modeldepot raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class NotFound(DepotError):
    code = "NOT_FOUND"
    status = 404


class ModelNotFound(NotFound):
    code = "MODEL_NOT_FOUND"

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"Model '{model_id}' is not in the catalogue", details={"model_id": model_id}
        )


class DownloadNotFound(NotFound):
    code = "DOWNLOAD_NOT_FOUND"


class CheckNotFound(NotFound):
    code = "CHECK_NOT_FOUND"


class CleanupNotFound(NotFound):
    code = "CLEANUP_NOT_FOUND"


class QueueEntryNotFound(NotFound):
    code = "QUEUE_ENTRY_NOT_FOUND"


class RepairNotFound(NotFound):
    code = "REPAIR_NOT_FOUND"


class RouteNotFound(NotFound):
    code = "ROUTE_NOT_FOUND"


class Conflict(DepotError):
    code = "CONFLICT"
    status = 409


class DownloadInProgress(Conflict):
    code = "DOWNLOAD_IN_PROGRESS"


class FeatureDisabled(Conflict):
    code = "FEATURE_DISABLED"


class QueueEntryNotReady(Conflict):
    """A claim or cancel of a queue entry in a state that does not allow it."""

    code = "QUEUE_ENTRY_NOT_READY"


class RevisionUnavailable(Conflict):
    """A rollback target that is not kept (or not complete) on disk."""

    code = "REVISION_UNAVAILABLE"


class ModelNotInstalled(Conflict):
    """An operation on the installed revision of a model that has none."""

    code = "MODEL_NOT_INSTALLED"


class InvalidInput(DepotError):
    code = "VALIDATION_ERROR"
    status = 422


class InvalidModelId(InvalidInput):
    code = "INVALID_MODEL_ID"


class InvalidCheckId(InvalidInput):
    code = "INVALID_CHECK_ID"


class InvalidRepairId(InvalidInput):
    code = "INVALID_REPAIR_ID"


class UnsafePath(InvalidInput):
    """A path component that would leave its root (``..``, absolute, UNC, NUL, ...)."""

    code = "UNSAFE_PATH"


class ConfigError(DepotError):
    code = "CONFIG_ERROR"


class CatalogError(ConfigError):
    code = "CATALOG_ERROR"


class AlreadyRunning(ConfigError):
    """Another process holds this data directory, models directory or database."""

    code = "ALREADY_RUNNING"


class IntegrityError(DepotError):
    code = "INTEGRITY_ERROR"
    status = 422


class ChecksumMismatch(IntegrityError):
    code = "CHECKSUM_MISMATCH"


class StorageError(DepotError):
    code = "STORAGE_ERROR"


class InsufficientStorage(StorageError):
    code = "INSUFFICIENT_STORAGE"
    status = 507


class DiskFull(StorageError):
    code = "DISK_FULL"
    status = 507


class StorageReadOnly(StorageError):
    """The models directory (a read-only mount, a permission) refuses writes."""

    code = "STORAGE_READ_ONLY"
    status = 507


class ServiceUnreachable(DepotError):
    """The command line or the SDK got no answer from the service it was told to use."""

    code = "SERVICE_UNREACHABLE"
    status = 503


class UnsafeSource(DepotError):
    code = "UNSAFE_SOURCE"
    status = 422


class UpstreamError(DepotError):
    code = "UPSTREAM_ERROR"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 503


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
    status = 504


class UpstreamNotFound(UpstreamError):
    code = "UPSTREAM_NOT_FOUND"


class UpstreamUnauthorized(UpstreamError):
    code = "UPSTREAM_UNAUTHORIZED"


class UpstreamRateLimited(UpstreamError):
    code = "UPSTREAM_RATE_LIMITED"
    status = 503


class UpstreamProtocolError(UpstreamError):
    code = "UPSTREAM_PROTOCOL_ERROR"


class RedirectError(UpstreamError):
    code = "REDIRECT_ERROR"


class TransferInterrupted(UpstreamError):
    code = "TRANSFER_INTERRUPTED"
    status = 503


class Unauthorized(DepotError):
    """No API key, or one that is unknown or revoked, where keys are required (401)."""

    code = "UNAUTHORIZED"
    status = 401


class Forbidden(DepotError):
    """The request is refused whoever sends it (403): the key's role does not allow the
    action, or the Host or Origin is not this service's."""

    code = "FORBIDDEN"
    status = 403


class KeyNotFound(NotFound):
    code = "KEY_NOT_FOUND"


class KeyExists(Conflict):
    code = "KEY_EXISTS"
