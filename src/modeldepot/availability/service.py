"""Availability: composes catalogue, manifests and the disk into each model's status.

What is installed comes from the hub cache (``store/cache.py``, one rule for every
service); the verdict is the pure ``judge.py``.

Statuses are computed off the event loop and cached for ``status_cache_ttl_seconds``, so
``GET /models/status/detailed`` is cheap under load; a background watch loop recomputes
them regularly, which is how changes made behind our back (a file deleted, huggingface_hub
finishing a download) are noticed and announced as ``model_availability_change`` events.
Later capabilities (downloads, health, usage) contribute their fields through
:class:`StatusContributor` without this module knowing them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
from modeldepot.store.cache import HubCache
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
        self._statuses: dict[str, tuple[float, ModelStatus]] = {}
        self._observing: SingleFlight[str, ModelStatus] = SingleFlight("status")
        self._contributors: list[StatusContributor] = []

    def add_contributor(self, contributor: StatusContributor) -> None:
        self._contributors.append(contributor)

    async def status(self, model_id: str) -> ModelStatus:
        """The status of one model (cached up to the TTL).

        Raises:
            InvalidModelId, ModelNotFound: see ``CatalogService.get``.
        """
        self._catalog.get(model_id)
        cached = self._statuses.get(model_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return await self.recompute(model_id)

    async def all_statuses(self) -> dict[str, ModelStatus]:
        ids = sorted(self._catalog.entries)
        statuses = await asyncio.gather(*(self.status(model_id) for model_id in ids))
        return dict(zip(ids, statuses, strict=True))

    async def detailed(self) -> DetailedStatusResponse:
        models = await self.all_statuses()
        return DetailedStatusResponse(models=models, summary=summarize(models.values()))

    async def recompute(self, model_id: str) -> ModelStatus:
        """Observe the disk now (joining an observation already running)."""
        return await self._observing.run(model_id, lambda: self._compute(model_id))

    def cached_statuses(self) -> list[ModelStatus]:
        """The last computed statuses, without observing anything (for metrics)."""
        return [status for _at, status in self._statuses.values()]

    def invalidate(self, model_id: str) -> None:
        self._statuses.pop(model_id, None)

    async def run_watch_loop(self, interval_seconds: float) -> None:
        """Recompute every status every ``interval_seconds`` until cancelled."""
        while True:
            await finish(self._recompute_all())
            await asyncio.sleep(interval_seconds)

    async def _recompute_all(self) -> None:
        await asyncio.gather(*(self.recompute(m) for m in self._catalog.entries))

    async def on_manifest_change(self, model_id: str) -> None:
        """Listener for ``CatalogService.on_manifest_change`` (wired by the root)."""
        await self.recompute(model_id)

    async def _compute(self, model_id: str) -> ModelStatus:
        state = self._catalog.state(model_id)
        installed = await self._cache.installed(model_id)
        files = await self._cache.observe(installed)
        observed = _Observed(installed.expected, installed.commit, files)
        status = self._build(installed.entry, state, observed)
        previous = self._statuses.get(model_id)
        self._statuses[model_id] = (time.monotonic(), status)
        old = previous[1].availability_status if previous else None
        if old is not None and old != status.availability_status:
            self._bus.publish(
                ModelAvailabilityChange(
                    model_id=model_id, old_status=old, new_status=status.availability_status
                )
            )
        return status

    def _build(self, entry: CatalogEntry, state: ManifestState, observed: _Observed) -> ModelStatus:
        latest = state.manifest.commit if state.manifest is not None else None
        verdict = judge(
            observed.manifest,
            observed.files,
            installed_commit=observed.installed_commit,
            latest_commit=latest,
        )
        fields = _status_fields(entry, state, observed, verdict)
        for contributor in self._contributors:
            contributor.contribute(entry.id, fields)
        return ModelStatus.model_validate(fields)


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
        total_storage_gb=round(installed_bytes / GB, 3),
    )
