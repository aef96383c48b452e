"""Availability: composes catalogue, manifests and the disk into each model's status.

What is installed comes from the hub cache (``store/cache.py``, one rule for every
service); the verdict is the pure ``judge.py``. Later capabilities (downloads, health,
usage) contribute their fields through :class:`StatusContributor` without this module
knowing them.

Reading status is cheap under load (issue 9): ``GET /models/status/detailed`` with a
hundred models is served from a serialised body built once per change.

* **Observed** fields (judged from the disk and the manifest) are reused for
  ``status_cache_ttl_seconds``. ``recompute`` (a download's transition, a health
  verdict, a new manifest) observes a model at once: that is how an action's effect is
  visible in the very next read. Changes made behind our back (a file deleted,
  huggingface_hub finishing a download) are seen by the watch loop, which observes every
  model every ``status_scan_interval_seconds``, and as soon as a read finds the
  observations older than the TTL: that read and the ones after it are answered from
  the previous observation until the new one is in (at most the TTL plus one pass over
  the disk old). Without a watch loop running (``background=False``), with TTL 0 or
  before the first observation, the read observes and waits. A pass over every model
  is one batch: two hops to a worker thread in all, not two per model.
* **Contributed** fields are applied again on every read, but only for the models a
  contributor changed at their last build (an active or failed download, a health
  verdict): progress and ETA are as fresh as the download itself. A model nobody
  contributes to gains a contribution only through a transition, which recomputes it.
* Each model's status is validated and serialised once per change (an observation that
  changes nothing keeps the objects it would replace); the :class:`Listing` (every
  model's serialised member in model id order, and the summary serialised) is built once
  per change of any of them. The API cuts its pages from it (issue 10): the default page
  is a slice of the listing joined with the pagination object, no serialisation per model.

Changes of ``availability_status`` are announced as ``model_availability_change`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from modeldepot.availability.judge import Judgement, judge
from modeldepot.availability.schemas import (
    AvailabilityStatus,
    DetailedStatusResponse,
    ModelStatus,
    StatusSummary,
)
from modeldepot.blocking import finish
from modeldepot.catalog.manifest import Manifest
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService, ManifestState
from modeldepot.events import EventBus, ModelAvailabilityChange
from modeldepot.singleflight import SingleFlight
from modeldepot.store.cache import HubCache, Installed
from modeldepot.store.scan import FileObservation
from modeldepot.units import GB, MB


class StatusContributor(Protocol):
    """A later capability that overrides or fills status fields for a model."""

    def contribute(self, model_id: str, fields: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Observed:
    manifest: Manifest | None
    installed_commit: str | None
    files: tuple[FileObservation, ...]


@dataclass(frozen=True)
class _Cached:
    """One model's status as last built, serialised, with what it was built from."""

    observed_at: float  # monotonic time the disk observation began
    judged: dict[str, Any]  # fields from the disk and the manifest, before contributors
    fields: dict[str, Any]  # after contributors
    status: ModelStatus
    body: bytes  # the status as JSON
    member: bytes  # ``"model_id":{...}``, the model's member of the listing's ``models``

    @property
    def contributed(self) -> bool:
        return self.fields != self.judged


@dataclass(frozen=True)
class ListedStatus:
    """One model in the listing: its status and its member of the listing's ``models``."""

    status: ModelStatus
    member: bytes  # ``"model_id":{...}``


@dataclass(frozen=True)
class Listing:
    """Every catalogue model's status in model id order, each with its serialised member,
    and the summary of them all, serialised."""

    entries: tuple[ListedStatus, ...]
    summary: bytes


class AvailabilityService:
    """Cached, event-emitting view of every catalogue model's availability."""

    def __init__(
        self,
        *,
        catalog: CatalogService,
        cache: HubCache,
        bus: EventBus,
        cache_ttl: float,
    ) -> None:
        self._catalog = catalog
        self._cache = cache
        self._bus = bus
        self._ttl = cache_ttl
        self._statuses: dict[str, _Cached] = {}
        self._contributed: set[str] = set()  # ids whose fields a contributor changed
        self._listing: Listing | None = None  # None once a status changed
        self._oldest: float | None = None  # oldest observation; None once one was made
        self._refreshing = False  # an observation of every model is running
        self._refresh_wanted = asyncio.Event()  # a read found statuses older than the TTL
        self._watching = False  # the watch loop runs
        self._observing: SingleFlight[str, ModelStatus] = SingleFlight("status")
        self._batches: SingleFlight[None, None] = SingleFlight("statuses")
        self._contributors: list[StatusContributor] = []
        self._change_listeners: list[Callable[[str, AvailabilityStatus], None]] = []

    def on_availability_change(self, listener: Callable[[str, AvailabilityStatus], None]) -> None:
        """Call ``listener(model_id, new_status)`` when a model's availability status
        changes (as ``model_availability_change`` is announced). Synchronous and called in
        the middle of a status update: a listener only takes note and wakes its worker."""
        self._change_listeners.append(listener)

    def add_contributor(self, contributor: StatusContributor) -> None:
        self._contributors.append(contributor)

    async def status(self, model_id: str) -> ModelStatus:
        """The status of one model (observed at most the TTL ago, contributions fresh).

        Raises:
            InvalidModelId, ModelNotFound: see ``CatalogService.get``.
        """
        return (await self._current(model_id)).status

    async def status_json(self, model_id: str) -> bytes:
        """:meth:`status`, serialised as ``GET /models/status/detailed/{id}`` answers it.

        Raises:
            InvalidModelId, ModelNotFound: see ``CatalogService.get``.
        """
        return (await self._current(model_id)).body

    async def all_statuses(self) -> dict[str, ModelStatus]:
        await self._refresh_all()
        self._apply_contributions()
        return {model_id: self._statuses[model_id].status for model_id in self._ids()}

    async def detailed(self) -> DetailedStatusResponse:
        """Every model and the summary, unpaged (in-process callers such as the CLI)."""
        models = await self.all_statuses()
        return DetailedStatusResponse(models=models, summary=summarize(models.values()))

    async def listing(self) -> Listing:
        """What ``GET /models/status/detailed`` pages through: rebuilt only when a model's
        status changed since the last read."""
        await self._refresh_all()
        self._apply_contributions()
        if self._listing is None:
            self._listing = self._build_listing()
        return self._listing

    async def recompute(self, model_id: str) -> ModelStatus:
        """Observe the disk now (joining an observation already running)."""
        return await self._observing.run(model_id, lambda: self._compute(model_id))

    def cached_statuses(self) -> list[ModelStatus]:
        """The last computed statuses, without observing anything (for metrics)."""
        return [cached.status for cached in self._statuses.values()]

    def invalidate(self, model_id: str) -> None:
        self._statuses.pop(model_id, None)
        self._contributed.discard(model_id)
        self._listing = None
        self._oldest = None

    async def run_watch_loop(self, interval_seconds: float) -> None:
        """Recompute every status every ``interval_seconds``, and as soon as a read finds
        them older than their TTL, until cancelled."""
        self._watching = True
        try:
            while True:
                self._refresh_wanted.clear()
                await finish(self._batches.run(None, self._observe_all))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval_seconds):
                        await self._refresh_wanted.wait()
        finally:
            self._watching = False

    async def on_manifest_change(self, model_id: str) -> None:
        """Listener for ``CatalogService.on_manifest_change`` (wired by the root)."""
        await self.recompute(model_id)

    # --- keeping the cache fresh -------------------------------------------------------

    def _ids(self) -> list[str]:
        return sorted(self._catalog.entries)

    async def _refresh_all(self) -> None:
        """Statuses older than the TTL are observed again: by the watch loop while the
        previous ones are served, or, with no watch loop running (or TTL 0, or nothing
        observed yet), by this caller, who waits (joining an observation running)."""
        age = time.monotonic() - self._oldest_observation()
        if age < self._ttl:
            return
        if self._watching and self._ttl > 0 and age != math.inf:
            if not self._refreshing:
                self._refresh_wanted.set()
            return
        await self._batches.run(None, self._observe_all)

    def _oldest_observation(self) -> float:
        """When the oldest observation began (-inf if a model was never observed)."""
        if self._oldest is None:
            if len(self._statuses) < len(self._catalog.entries):
                return -math.inf
            if not self._statuses:
                return math.inf  # an empty catalogue: nothing to observe (not cached)
            self._oldest = min(c.observed_at for c in self._statuses.values())
        return self._oldest

    async def _observe_all(self) -> None:
        self._refreshing = True
        try:
            await self._compute_many(self._ids())
        finally:
            self._refreshing = False

    async def _current(self, model_id: str) -> _Cached:
        self._catalog.get(model_id)
        cached = self._statuses.get(model_id)
        if cached is None or time.monotonic() - cached.observed_at >= self._ttl:
            await self.recompute(model_id)
        if model_id in self._contributed:
            self._contribute_again(model_id)
        return self._statuses[model_id]

    def _apply_contributions(self) -> None:
        for model_id in list(self._contributed):
            self._contribute_again(model_id)

    def _contribute_again(self, model_id: str) -> None:
        """Apply the contributors again to the observed fields of ``model_id`` (progress
        moves between observations); rebuild the status only if a field changed."""
        cached = self._statuses[model_id]
        fields = self._contribute(model_id, cached.judged)
        if fields != cached.fields:
            self._store(model_id, cached.observed_at, cached.judged, fields)

    def _contribute(self, model_id: str, judged: dict[str, Any]) -> dict[str, Any]:
        fields = dict(judged)
        for contributor in self._contributors:
            contributor.contribute(model_id, fields)
        return fields

    # --- building one model's status ---------------------------------------------------

    async def _compute(self, model_id: str) -> ModelStatus:
        observed_at = time.monotonic()
        state = self._catalog.state(model_id)
        installed = await self._cache.installed(model_id)
        files = await self._cache.observe(installed)
        return self._judge(state, installed, files, observed_at=observed_at).status

    async def _compute_many(self, ids: Sequence[str]) -> None:
        """Observe ``ids`` together: two hops to a worker thread in all. One observation
        per model would be two hops each, and a hundred threads walking the disk at once
        keep the GIL from the event loop: every request would wait (the p99 of issue 9)."""
        if not ids:
            return
        observed_at = time.monotonic()
        states = [self._catalog.state(model_id) for model_id in ids]
        observed = await self._cache.observe_many([self._catalog.get(m) for m in ids])
        for state, (installed, files) in zip(states, observed, strict=True):
            self._judge(state, installed, files, observed_at=observed_at)

    def _judge(
        self,
        state: ManifestState,
        installed: Installed,
        files: tuple[FileObservation, ...],
        *,
        observed_at: float,
    ) -> _Cached:
        observed = _Observed(installed.expected, installed.commit, files)
        judged = _judged_fields(installed.entry, state, observed)
        fields = self._contribute(installed.entry.id, judged)
        return self._store(installed.entry.id, observed_at, judged, fields)

    def _store(
        self, model_id: str, observed_at: float, judged: dict[str, Any], fields: dict[str, Any]
    ) -> _Cached:
        """Keep a model's status (validated and serialised only if it changed) and
        announce a change of its availability status."""
        previous = self._statuses.get(model_id)
        if previous is not None and previous.observed_at > observed_at:
            return previous  # a newer observation was kept meanwhile: this one is stale
        if observed_at != getattr(previous, "observed_at", None):
            self._oldest = None
        if previous is not None and previous.fields == fields and previous.judged == judged:
            # Nothing changed: the same objects live on (no garbage that outlives the
            # young generation, which would bring on full collections under load).
            cached = replace(previous, observed_at=observed_at)
            self._statuses[model_id] = cached
            return cached
        status = ModelStatus.model_validate(fields)
        body = status.model_dump_json().encode()
        member = json.dumps(model_id).encode() + b":" + body
        cached = _Cached(observed_at, judged, fields, status, body, member)
        self._statuses[model_id] = cached
        if cached.contributed:
            self._contributed.add(model_id)
        else:
            self._contributed.discard(model_id)
        self._listing = None
        old = previous.status.availability_status if previous else None
        if old is not None and old != status.availability_status:
            self._bus.publish(
                ModelAvailabilityChange(
                    model_id=model_id, old_status=old, new_status=status.availability_status
                )
            )
            for listener in self._change_listeners:
                listener(model_id, status.availability_status)
        return cached

    def _build_listing(self) -> Listing:
        models = [self._statuses[model_id] for model_id in self._ids()]
        summary = summarize(cached.status for cached in models)
        return Listing(
            entries=tuple(ListedStatus(cached.status, cached.member) for cached in models),
            summary=summary.model_dump_json().encode(),
        )


def _judged_fields(
    entry: CatalogEntry, state: ManifestState, observed: _Observed
) -> dict[str, Any]:
    latest = state.manifest.commit if state.manifest is not None else None
    verdict = judge(
        observed.manifest,
        observed.files,
        installed_commit=observed.installed_commit,
        latest_commit=latest,
    )
    return _status_fields(entry, state, observed, verdict)


def _status_fields(
    entry: CatalogEntry, state: ManifestState, observed: _Observed, verdict: Judgement
) -> dict[str, Any]:
    manifest = observed.manifest
    size = manifest.total_size if manifest is not None else None
    latest = state.manifest.commit if state.manifest is not None else None
    return {
        "model_id": entry.id,
        "is_available": verdict.is_available,
        "is_loaded": False,
        "size_mb": None if size is None else round(size / MB, 3),
        "availability_status": verdict.status,
        "download_progress": None,
        "missing_files": list(verdict.missing_files),
        "integrity_score": None,
        "last_health_check": None,
        "performance_score": None,
        "corruption_detected": bool(verdict.wrong_size_files),
        "usage_frequency": 0.0,
        "last_used": None,
        "average_generation_time": None,
        "can_pause_download": False,
        "can_resume_download": False,
        "estimated_download_time": None,
        "current_version": observed.installed_commit,
        "latest_version": latest,
        "update_available": verdict.status == AvailabilityStatus.UPDATE_AVAILABLE,
        "display_name": entry.display_name,
        "model_type": entry.model_type,
        "source": entry.source,
        "revision": entry.revision,
        "size_bytes": size,
        "file_count": len(manifest.files) if manifest is not None else None,
        "wrong_size_files": list(verdict.wrong_size_files),
        "manifest_source": manifest.source if manifest is not None else None,
        "manifest_resolved_at": manifest.resolved_at if manifest is not None else None,
        "source_error": state.error,
        "source_error_code": state.error_code,
    }


def summarize(statuses: Iterable[ModelStatus]) -> StatusSummary:
    items = list(statuses)
    downloading = {AvailabilityStatus.DOWNLOADING, AvailabilityStatus.QUEUED}
    installed_bytes = sum(s.size_bytes or 0 for s in items if s.is_available)
    return StatusSummary(
        total_models=len(items),
        available_models=sum(s.is_available for s in items),
        downloading_models=sum(s.availability_status in downloading for s in items),
        corrupted_models=sum(s.availability_status == AvailabilityStatus.CORRUPTED for s in items),
        total_storage_gb=installed_bytes / GB,  # unrounded: a small model is not 0.0 GB
    )
