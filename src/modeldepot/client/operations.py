"""Every route of the API as a function that builds its ``Call``: the one table both
clients are made from (``Client`` sends each synchronously, ``AsyncClient`` awaits it).

Answers are the service's own response models (``modeldepot.*.schemas`` and the page
models of ``modeldepot.api.routes``), so the client cannot drift from the service.
Request bodies are built with the service's own request models too: a value the service
would refuse raises ``InvalidInput`` (``details.errors`` names each field, as the
service's 422 does) before anything is sent. Ids in paths are the service's to judge
(422 ``INVALID_MODEL_ID``, 404 ``MODEL_NOT_FOUND``).

List operations take ``page``, ``limit`` (1-100), ``sort`` and ``order`` (``Paging``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal, TypedDict, Unpack

from modeldepot.analytics.performance import PerformanceResponse
from modeldepot.api.pagination import Page
from modeldepot.api.routes.access import KeyCreate, KeyCreated, KeyPublic, KeyRevoked
from modeldepot.api.routes.downloads import ActiveDownloadsPage
from modeldepot.api.routes.fallback import QueuePage
from modeldepot.api.routes.health import HealthPage
from modeldepot.api.routes.revisions import RevisionsPage
from modeldepot.api.routes.status import DetailedStatusPage
from modeldepot.api.routes.storage import StoragePage
from modeldepot.api.routes.system import Healthz
from modeldepot.auth.audit import AuditEntry
from modeldepot.auth.keys import Role
from modeldepot.availability.schemas import ModelStatus
from modeldepot.cleanup.schemas import (
    CleanupRecommendations,
    CleanupRequest,
    CleanupResult,
    CleanupType,
    Pin,
    PinList,
    PinRequest,
)
from modeldepot.client.calls import (
    API,
    Call,
    body_of,
    get,
    model,
    model_by_name,
    nothing,
    query,
    segment,
    text,
)
from modeldepot.config.schemas import ConfigPublic, ConfigUpdate, ConfigUpdateResult
from modeldepot.downloads.schemas import (
    DownloadAction,
    ManageRequest,
    ManageResponse,
    Priority,
    ProgressResponse,
)
from modeldepot.fallback.queue_schemas import (
    Callback,
    ClaimRequest,
    QueueEntry,
    QueueRequest,
    QueueResponse,
    QueueStatus,
)
from modeldepot.fallback.schemas import (
    Requirements,
    SuggestRequest,
    SuggestResponse,
    UserPreferences,
)
from modeldepot.health.repair import RepairRecord, RepairRequest, RepairResponse, RepairType
from modeldepot.health.schemas import (
    CheckType,
    HealthCheckPublic,
    HealthCheckRequest,
    HealthCheckStarted,
    HealthResponse,
)
from modeldepot.revisions.schemas import (
    RollbackRequest,
    RollbackResponse,
    UpdateRequest,
    UpdateResponse,
)
from modeldepot.usage.analytics import AnalyticsResponse, Period
from modeldepot.usage.schemas import UsageEvent, UsageReport, UsageReportResult

MODELS = f"{API}/models"


class Paging(TypedDict, total=False):
    """Which page of a list: ``page`` from 1, ``limit`` 1-100 (default 20), ``sort`` one
    of the list's fields, ``order`` asc or desc."""

    page: int
    limit: int
    sort: str
    order: Literal["asc", "desc"]


# --- system ----------------------------------------------------------------------------


def healthz() -> Call[Healthz]:
    """Liveness and the first facts an operator checks (``GET /healthz``)."""
    return get("/healthz", model(Healthz))


def metrics() -> Call[str]:
    """Prometheus metrics of the service process, as text (``GET /metrics``)."""
    return get("/metrics", text)


# --- status ----------------------------------------------------------------------------


def status(**paging: Unpack[Paging]) -> Call[DetailedStatusPage]:
    """A page of every catalogue model's status, with a summary of all of them."""
    return get(f"{MODELS}/status/detailed", model(DetailedStatusPage), query(paging))


def model_status(model_id: str, *, refresh: bool = False) -> Call[ModelStatus]:
    """One model's status; ``refresh`` asks the hub for its newest commit first.
    Raises ModelNotFound, InvalidModelId."""
    path = f"{MODELS}/status/detailed/{segment(model_id)}"
    return get(path, model(ModelStatus), query(refresh=refresh or None))


# --- downloads -------------------------------------------------------------------------


def manage(request: ManageRequest) -> Call[ManageResponse]:
    """Any download action, as the service's own request model."""
    body = request.model_dump(mode="json", exclude_none=True)
    return Call("POST", f"{MODELS}/download/manage", model(ManageResponse), body=body)


def _manage(model_id: str, action: DownloadAction, **fields: Any) -> Call[ManageResponse]:
    body = body_of(ManageRequest, model_id=model_id, action=action, **fields)
    return Call("POST", f"{MODELS}/download/manage", model(ManageResponse), body=body)


def download(
    model_id: str,
    *,
    priority: Priority | str | None = None,
    max_retries: int | None = None,
    bandwidth_limit_mbps: float | None = None,
) -> Call[ManageResponse]:
    """Start downloading a model. Raises DownloadInProgress (``details["download_id"]``
    names the running one), InsufficientStorage, ModelNotFound."""
    return _manage(
        model_id,
        DownloadAction.start,
        priority=priority,
        max_retries=max_retries,
        bandwidth_limit_mbps=bandwidth_limit_mbps,
    )


def pause(model_id: str) -> Call[ManageResponse]:
    """Pause the model's download. Raises DownloadNotFound when none is active."""
    return _manage(model_id, DownloadAction.pause)


def resume(model_id: str) -> Call[ManageResponse]:
    """Resume the model's paused download. Raises DownloadNotFound."""
    return _manage(model_id, DownloadAction.resume)


def cancel(model_id: str) -> Call[ManageResponse]:
    """Cancel the model's download (its partial files go). Raises DownloadNotFound."""
    return _manage(model_id, DownloadAction.cancel)


def set_priority(model_id: str, priority: Priority | str) -> Call[ManageResponse]:
    """Change the priority of the model's queued or running download."""
    return _manage(model_id, DownloadAction.set_priority, priority=priority)


def update_download(
    model_id: str,
    *,
    priority: Priority | str | None = None,
    bandwidth_limit_mbps: float | None = None,
    max_retries: int | None = None,
) -> Call[ManageResponse]:
    """Change priority, bandwidth limit (0: none) or retries of a queued or running
    download."""
    return _manage(
        model_id,
        DownloadAction.update,
        priority=priority,
        bandwidth_limit_mbps=bandwidth_limit_mbps,
        max_retries=max_retries,
    )


def progress(model_id: str) -> Call[ProgressResponse]:
    """Progress of the model's newest download. Raises DownloadNotFound."""
    path = f"{MODELS}/download/progress/{segment(model_id)}"
    return get(path, model(ProgressResponse))


def active_downloads(**paging: Unpack[Paging]) -> Call[ActiveDownloadsPage]:
    """Active downloads, running first, then the queue in the order it will run."""
    return get(f"{MODELS}/download/active", model(ActiveDownloadsPage), query(paging))


# --- health ----------------------------------------------------------------------------


def health(**paging: Unpack[Paging]) -> Call[HealthPage]:
    """A page of every model's health, and the system's."""
    return get(f"{MODELS}/health", model(HealthPage), query(paging))


def model_health(model_id: str) -> Call[HealthResponse]:
    """One model's health, in the shape of the list."""
    return get(f"{MODELS}/health/{segment(model_id)}", model(HealthResponse))


def check(
    model_id: str, *, check_type: CheckType = "integrity", force: bool = False
) -> Call[HealthCheckStarted]:
    """Start a ``full``, ``integrity`` (quick) or ``performance`` check in the background;
    follow it with ``get_check``."""
    body = body_of(HealthCheckRequest, check_type=check_type, force_check=force)
    path = f"{MODELS}/health/{segment(model_id)}/check"
    return Call("POST", path, model(HealthCheckStarted), body=body)


def get_check(check_id: str) -> Call[HealthCheckPublic]:
    """A check run and its verdict. Raises CheckNotFound, InvalidCheckId."""
    path = f"{MODELS}/health/checks/{segment(check_id)}"
    return get(path, model_by_name(HealthCheckPublic))


def repair(
    model_id: str, *, repair_type: RepairType = "auto", force: bool = False
) -> Call[RepairResponse]:
    """Repair a model: ``auto`` re-fetches only bad files, ``redownload`` every file,
    ``integrity_fix`` re-links what verifies without the network."""
    body = body_of(RepairRequest, repair_type=repair_type, force_repair=force)
    path = f"{MODELS}/health/{segment(model_id)}/repair"
    return Call("POST", path, model(RepairResponse), body=body)


def get_repair(repair_id: str) -> Call[RepairRecord]:
    """A repair: what it did and how it ended. Raises RepairNotFound, InvalidRepairId."""
    path = f"{MODELS}/health/repairs/{segment(repair_id)}"
    return get(path, model_by_name(RepairRecord))


# --- revisions -------------------------------------------------------------------------


def revisions(
    model_id: str, *, refresh: bool = False, **paging: Unpack[Paging]
) -> Call[RevisionsPage]:
    """A model's current, kept, removed and untracked revisions, and the hub's newest."""
    path = f"{MODELS}/revisions/{segment(model_id)}"
    return get(path, model(RevisionsPage), query(paging, refresh=refresh or None))


def update_model(
    model_id: str,
    *,
    priority: Priority | str | None = None,
    bandwidth_limit_mbps: float | None = None,
    max_retries: int | None = None,
) -> Call[UpdateResponse]:
    """Download the newest commit beside the installed one; switch when it verified.
    Raises ModelNotInstalled, DownloadInProgress."""
    body = body_of(
        UpdateRequest,
        priority=priority,
        bandwidth_limit_mbps=bandwidth_limit_mbps,
        max_retries=max_retries,
    )
    path = f"{MODELS}/revisions/{segment(model_id)}/update"
    return Call("POST", path, model(UpdateResponse), body=body)


def rollback(model_id: str, *, commit: str | None = None) -> Call[RollbackResponse]:
    """Switch back to a kept revision (default: the newest previous one). Raises
    RevisionUnavailable, ModelNotInstalled, Conflict."""
    body = body_of(RollbackRequest, commit=commit)
    path = f"{MODELS}/revisions/{segment(model_id)}/rollback"
    return Call("POST", path, model(RollbackResponse), body=body)


# --- storage and cleanup -----------------------------------------------------------------


def storage(**paging: Unpack[Paging]) -> Call[StoragePage]:
    """Capacity, a page of per-model sizes, unmanaged repositories, cleanup suggestions."""
    return get(f"{MODELS}/storage", model(StoragePage), query(paging))


def cleanup_recommendations(
    *, storage_threshold_gb: float | None = None, min_unused_days: int | None = None
) -> Call[CleanupRecommendations]:
    """Models worth removing, from real usage (never a protected one)."""
    params = query(storage_threshold_gb=storage_threshold_gb, min_unused_days=min_unused_days)
    return get(f"{MODELS}/analytics/cleanup", model(CleanupRecommendations), params)


def cleanup(
    cleanup_type: CleanupType | str,
    *,
    models_to_remove: Iterable[str] | None = None,
    min_unused_days: int | None = None,
    preserve_frequently_used: bool | None = None,
    dry_run: bool = False,
) -> Call[CleanupResult]:
    """Remove unused models (``auto``) or the ones named (``manual``); ``dry_run``
    answers what the same request would do."""
    body = body_of(
        CleanupRequest,
        cleanup_type=cleanup_type,
        models_to_remove=None if models_to_remove is None else list(models_to_remove),
        min_unused_days=min_unused_days,
        preserve_frequently_used=preserve_frequently_used,
        dry_run=dry_run or None,
    )
    return Call("POST", f"{MODELS}/cleanup", model(CleanupResult), body=body)


def get_cleanup(cleanup_id: str) -> Call[CleanupResult]:
    """A cleanup made earlier, by its id. Raises CleanupNotFound."""
    return get(f"{MODELS}/cleanup/{segment(cleanup_id)}", model(CleanupResult))


def pins() -> Call[PinList]:
    """Pinned models (never cleanup candidates)."""
    return get(f"{MODELS}/pins", model(PinList))


def pin(model_id: str, *, reason: str | None = None) -> Call[Pin]:
    """Pin a model (again: updates the reason)."""
    body = body_of(PinRequest, reason=reason)
    return Call("PUT", f"{MODELS}/pins/{segment(model_id)}", model(Pin), body=body)


def unpin(model_id: str) -> Call[None]:
    """Unpin a model (whether or not it was pinned)."""
    return Call("DELETE", f"{MODELS}/pins/{segment(model_id)}", nothing)


# --- usage and analytics -------------------------------------------------------------------


def report_usage(events: Iterable[UsageEvent | Mapping[str, Any]]) -> Call[UsageReportResult]:
    """Record a batch of 1 to 1000 usage events at once (``generation`` reports them in
    the background instead)."""
    body = body_of(UsageReport, events=list(events))
    return Call("POST", f"{MODELS}/usage", model(UsageReportResult), body=body)


def analytics(
    *,
    period: Period | str | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> Call[AnalyticsResponse]:
    """Usage of every catalogue model over ``period`` (day, week, month, year) or the UTC
    days from ``start_date`` to ``end_date``."""
    params = query(period=period, start_date=start_date, end_date=end_date)
    return get(f"{MODELS}/analytics", model(AnalyticsResponse), params)


def model_analytics(
    model_id: str,
    *,
    period: Period | str | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> Call[AnalyticsResponse]:
    """One model's usage, in the shape of ``analytics``."""
    params = query(period=period, start_date=start_date, end_date=end_date)
    return get(f"{MODELS}/analytics/{segment(model_id)}", model(AnalyticsResponse), params)


def performance() -> Call[PerformanceResponse]:
    """Generation-time trends per model and the system's download and health record."""
    return get(f"{MODELS}/analytics/performance", model(PerformanceResponse))


# --- fallback and the wait queue ------------------------------------------------------------


def suggest(
    requested_model: str,
    *,
    requirements: Requirements | Mapping[str, Any] | None = None,
    user_preferences: UserPreferences | Mapping[str, Any] | None = None,
) -> Call[SuggestResponse]:
    """Catalogue models that can stand in for ``requested_model``, best first, and a
    strategy. Raises FeatureDisabled while intelligent fallback is off."""
    body = body_of(
        SuggestRequest,
        requested_model=requested_model,
        requirements=requirements,
        user_preferences=user_preferences,
    )
    return Call("POST", f"{MODELS}/fallback/suggest", model(SuggestResponse), body=body)


def enqueue(
    model_id: str,
    prompt: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    priority: Priority | str | None = None,
    max_wait_time_minutes: float | None = None,
    callback: Callback | Mapping[str, Any] | None = None,
) -> Call[QueueResponse]:
    """Hold a generation request until its model is available (starting its download);
    ``callback`` (``{"url": ..., "secret": ...}``) is POSTed the entry when it turns
    READY, EXPIRED or FAILED. Raises FeatureDisabled, ModelNotFound, UnsafeSource."""
    request = {"prompt": prompt, **({} if parameters is None else {"parameters": parameters})}
    body = body_of(
        QueueRequest,
        model_id=model_id,
        request=request,
        priority=priority,
        max_wait_time_minutes=max_wait_time_minutes,
        callback=callback,
    )
    return Call("POST", f"{MODELS}/fallback/queue", model(QueueResponse), body=body)


def queue(
    *,
    model_id: str | None = None,
    status: QueueStatus | str | None = None,
    **paging: Unpack[Paging],
) -> Call[QueuePage]:
    """A page of wait-queue entries, optionally of one model or in one status."""
    params = query(paging, model_id=model_id, status=status)
    return get(f"{MODELS}/fallback/queue", model(QueuePage), params)


def queue_entry(queue_id: str) -> Call[QueueEntry]:
    """One wait-queue entry: its state, position and estimate. Raises
    QueueEntryNotFound."""
    return get(f"{MODELS}/fallback/queue/{segment(queue_id)}", model(QueueEntry))


def claim(queue_id: str, *, worker: str | None = None) -> Call[QueueEntry]:
    """Take a READY entry to run its request: one caller gets it, any other raises
    QueueEntryNotReady."""
    body = body_of(ClaimRequest, worker=worker)
    path = f"{MODELS}/fallback/queue/{segment(queue_id)}/claim"
    return Call("POST", path, model(QueueEntry), body=body)


def cancel_queue_entry(queue_id: str) -> Call[QueueEntry]:
    """Withdraw a WAITING or READY entry. Raises QueueEntryNotReady once it ended."""
    path = f"{MODELS}/fallback/queue/{segment(queue_id)}"
    return Call("DELETE", path, model(QueueEntry))


# --- configuration, keys and audit ------------------------------------------------------------


def config() -> Call[ConfigPublic]:
    """The configuration in effect."""
    return get(f"{API}/config/current", model(ConfigPublic))


def update_config(changes: ConfigUpdate | Mapping[str, Any]) -> Call[ConfigUpdateResult]:
    """Change part of the configuration (``{"downloads": {"max_concurrent_downloads":
    5}}``); persisted and applied at once."""
    if isinstance(changes, ConfigUpdate):
        body: Any = changes.model_dump(mode="json", exclude_unset=True)
    else:
        body = dict(changes)  # the service validates it strictly, as it was written
    return Call("PUT", f"{API}/config/update", model(ConfigUpdateResult), body=body)


def keys(**paging: Unpack[Paging]) -> Call[Page[KeyPublic]]:
    """API keys, never their secrets (admin)."""
    return get(f"{API}/auth/keys", model(Page[KeyPublic]), query(paging))


def create_key(name: str, role: Role | str) -> Call[KeyCreated]:
    """A new API key; ``.key`` is shown this once (admin). Raises KeyExists."""
    body = body_of(KeyCreate, name=name, role=role)
    return Call("POST", f"{API}/auth/keys", model(KeyCreated), body=body)


def revoke_key(name: str) -> Call[KeyRevoked]:
    """Revoke a key: it stops working at once (admin). Raises KeyNotFound."""
    return Call("DELETE", f"{API}/auth/keys/{segment(name)}", model(KeyRevoked))


def audit(**paging: Unpack[Paging]) -> Call[Page[AuditEntry]]:
    """The audit log of admin actions (admin)."""
    return get(f"{API}/audit", model(Page[AuditEntry]), query(paging))
