"""Pins, cleanup recommendations, cleanups, and the storage quota.

**Protected** models are never removed, whatever the request: pinned ones, ones a
generation app has loaded (``modeldepot.usage``), ones with a download running, paused or
queued (or an action on their download under way), ones another component says are
waited for (:meth:`CleanupService.add_protection`: the wait queue), and ones sharing
their ref with another catalogue entry.

**Idle since**: a model's last reported use, or when its newest file was written if it
was never used (a model downloaded yesterday is not "unused for 30 days").

**Candidates** (recommendations and ``auto`` cleanups): unprotected catalogue models with
files on disk, idle for at least ``min_unused_days``, and (unless told otherwise) not
frequently used: ``usage_frequency`` (uses per day over 30 days) under
:data:`FREQUENT_USES_PER_DAY`. Least recently used first.

The quota evicts through :meth:`CleanupService.evict` (``cleanup/quota.py``); pins are
``cleanup/pins.py``.

A removal holds the model's download desk (no download can start meanwhile) and its
repository's lock, checks the protections again under them, plans from what is on disk
then, and removes through the hub cache (``store/removal.py``). A dry run makes the same
plans and removes nothing. Each cleanup is recorded (``cleanups``) under its id, for 90
days.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.cleanup.pins import PinStore
from modeldepot.cleanup.schemas import (
    CleanupDecision,
    CleanupRecommendation,
    CleanupRecommendations,
    CleanupRequest,
    CleanupResult,
    CleanupSummary,
    CleanupType,
    Outcome,
    ProtectedModel,
    Trigger,
)
from modeldepot.cleanup.tables import CleanupRow
from modeldepot.downloads.service import DownloadService
from modeldepot.errors import CleanupNotFound, DepotError
from modeldepot.store.cache import HubCache
from modeldepot.store.removal import RemovalPlan
from modeldepot.store.schemas import (
    CleanupSuggestions,
    ModelStorage,
    StorageResponse,
)
from modeldepot.store.service import StorageService
from modeldepot.units import GB, MB, gb_bytes
from modeldepot.usage.service import UsageService

logger = logging.getLogger(__name__)

FREQUENT_USES_PER_DAY = 1.0
SUGGESTION_UNUSED_DAYS = 30
KEEP_RECORDS = timedelta(days=90)
Protection = Callable[[str], str | None]
"""``protection(model_id)``: why the model must stay, or None."""


@dataclass(frozen=True)
class DiskModel:
    """A catalogue model with files on disk, as a cleanup sees it."""

    entry: CatalogEntry
    storage: ModelStorage
    idle_since: datetime
    usage_count: int

    @property
    def model_id(self) -> str:
        return self.entry.id


class CleanupService:
    def __init__(
        self,
        *,
        catalog: CatalogService,
        cache: HubCache,
        storage: StorageService,
        usage: UsageService,
        downloads: DownloadService,
        availability: AvailabilityService,
        sessions: async_sessionmaker[AsyncSession],
        pins: PinStore,
        commits_in_use: Callable[[str], Awaitable[set[str]]],
        on_removed: Callable[[str, Sequence[str]], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``commits_in_use(model_id)``: commits a model keeps (installed, kept for a
        rollback); ``on_removed(model_id, commits)``: after a removal (revisions)."""
        self._catalog = catalog
        self._cache = cache
        self._storage = storage
        self._usage = usage
        self._downloads = downloads
        self._availability = availability
        self._sessions = sessions
        self._pins = pins
        self._commits_in_use = commits_in_use
        self._on_removed = on_removed
        self._clock = clock
        self._protections: list[Protection] = []
        self._one_at_a_time = asyncio.Lock()

    def add_protection(self, protection: Protection) -> None:
        self._protections.append(protection)

    # --- what may go -------------------------------------------------------------------

    def protected(self, model_id: str, *, holding_desk: bool = False) -> str | None:
        """Why ``model_id`` must stay, or None (``holding_desk``: the caller holds the
        model's download desk, so its being locked is no reason)."""
        if self._pins.is_pinned(model_id):
            return "Pinned"
        if self._usage.is_loaded(model_id):
            return "Loaded by a generation app"
        if self._downloads.is_active(model_id):
            return "Downloading, paused or queued for download"
        if not holding_desk and self._downloads.desk(model_id).locked():
            return "A download action on it is under way"
        for protection in self._protections:
            if (reason := protection(model_id)) is not None:
                return reason
        entry = self._catalog.entries.get(model_id)
        if entry is not None:
            for other in self._catalog.entries.values():
                if (
                    other.id != model_id
                    and other.repo_id == entry.repo_id
                    and other.revision == entry.revision
                ):
                    return f"Shares its files and ref with {other.id}"
        return None

    async def _survey(
        self, *, include_empty: bool = False
    ) -> tuple[StorageResponse, list[DiskModel]]:
        """The storage report and the catalogue models on disk, least recently used first;
        ``include_empty``: with the empty folders cancelled downloads leave (a manual
        cleanup naming such a model removes its folder)."""
        report = await self._storage.report(include_empty=include_empty)
        now = self._clock()
        models = []
        for row in report.models_storage:
            entry = self._catalog.entries.get(row.model_id)
            if entry is None:
                continue
            idle_since = row.last_accessed or row.last_modified or now
            models.append(
                DiskModel(
                    entry=entry,
                    storage=row,
                    idle_since=idle_since,
                    usage_count=self._usage.total_uses(row.model_id),
                )
            )
        models.sort(key=lambda m: (m.idle_since, m.model_id))  # least recently used first
        return report, models

    def _candidates(
        self, models: Iterable[DiskModel], *, unused_days: int, keep_frequent: bool
    ) -> tuple[list[DiskModel], list[ProtectedModel]]:
        cutoff = self._clock() - timedelta(days=unused_days)
        candidates, protected = [], []
        for model in models:
            reason = self.protected(model.model_id)
            if reason is not None:
                protected.append(ProtectedModel(model_id=model.model_id, reason=reason))
            elif model.idle_since <= cutoff and not (
                keep_frequent and model.storage.usage_frequency >= FREQUENT_USES_PER_DAY
            ):
                candidates.append(model)
        return candidates, protected

    async def _plans(self, models: Sequence[DiskModel]) -> list[RemovalPlan]:
        plans = []
        for model in models:
            try:
                plans.append(await self._plan(model.entry))
            except DepotError as error:
                logger.warning("Cannot plan the removal of %s: %s", model.model_id, error.message)
        return plans

    async def _plan(self, entry: CatalogEntry) -> RemovalPlan:
        keep: set[str] = set()
        for other in self._catalog.entries.values():
            if other.id != entry.id and other.repo_id == entry.repo_id:
                keep |= await self._commits_in_use(other.id)
                if (installed := await self._cache.installed_commit(other)) is not None:
                    keep.add(installed)
        return await self._cache.plan_removal(entry.repo_id, entry.revision, keep=frozenset(keep))

    # --- recommendations ---------------------------------------------------------------

    async def recommendations(
        self, *, storage_threshold_gb: float | None, min_unused_days: int
    ) -> CleanupRecommendations:
        report, models = await self._survey()
        candidates, protected = self._candidates(
            models, unused_days=min_unused_days, keep_frequent=True
        )
        used = report.storage_summary.used_space_bytes
        if storage_threshold_gb is not None:
            candidates = await self._enough(candidates, used - gb_bytes(storage_threshold_gb))
        savings = await self._cache.predicted_free_bytes(await self._plans(candidates))
        now = self._clock()
        return CleanupRecommendations(
            recommendations=[_recommend(m, min_unused_days, now) for m in candidates],
            potential_savings_gb=savings / GB,
            current_usage_gb=used / GB,
            target_usage_gb=max(0, used - savings) / GB,
            potential_savings_bytes=savings,
            storage_threshold_gb=storage_threshold_gb,
            min_unused_days=min_unused_days,
            protected=protected,
        )

    async def storage_report(self) -> StorageResponse:
        """``GET /models/storage`` with its ``cleanup_suggestions`` (models unused for 30
        days, as ``/models/analytics/cleanup`` recommends with its defaults)."""
        report, models = await self._survey()
        candidates, _ = self._candidates(
            models, unused_days=SUGGESTION_UNUSED_DAYS, keep_frequent=True
        )
        savings = await self._cache.predicted_free_bytes(await self._plans(candidates))
        report.cleanup_suggestions = CleanupSuggestions(
            potential_savings_gb=savings / GB,
            safe_to_remove_count=len(candidates),
            candidates=[m.model_id for m in candidates],
        )
        return report

    async def _enough(self, candidates: list[DiskModel], shortfall: int) -> list[DiskModel]:
        """The shortest least-recently-used prefix of ``candidates`` freeing ``shortfall``
        bytes; every candidate if none does; none if nothing is short."""
        if shortfall <= 0:
            return []
        plans = await self._plans(candidates)
        by_repo = {plan.repo_id: plan for plan in plans}
        for count in range(1, len(candidates) + 1):
            chosen = [
                by_repo[m.entry.repo_id] for m in candidates[:count] if m.entry.repo_id in by_repo
            ]
            if await self._cache.predicted_free_bytes(chosen) >= shortfall:
                return candidates[:count]
        return candidates

    # --- for the quota (cleanup/quota.py) ----------------------------------------------

    async def least_recently_used(
        self, *, excluding: str | None = None
    ) -> tuple[StorageResponse, list[DiskModel]]:
        """The storage report, and the unprotected models on disk but ``excluding``,
        least recently used first (what the quota may evict, in order)."""
        report, models = await self._survey()
        candidates, _ = self._candidates(
            (m for m in models if m.model_id != excluding), unused_days=0, keep_frequent=False
        )
        return report, candidates

    async def enough_to_free(
        self, models: list[DiskModel], shortfall: int
    ) -> tuple[list[DiskModel], int]:
        """The shortest prefix of ``models`` freeing ``shortfall`` bytes (else all of
        them), and the bytes it would free."""
        chosen = await self._enough(models, shortfall)
        return chosen, await self._cache.predicted_free_bytes(await self._plans(chosen))

    async def evict(self, models: Sequence[DiskModel], *, trigger: Trigger) -> CleanupResult:
        """Remove ``models`` as a recorded cleanup (each checked again as it goes)."""
        return await self.cleanup(
            CleanupRequest(
                cleanup_type=CleanupType.manual,
                models_to_remove=[m.model_id for m in models],
                min_unused_days=0,
                preserve_frequently_used=False,
            ),
            trigger=trigger,
        )

    # --- cleanups ----------------------------------------------------------------------

    async def cleanup(self, request: CleanupRequest, *, trigger: Trigger = "api") -> CleanupResult:
        """Run (or, with ``dry_run``, plan) a cleanup and record it.

        Raises:
            ModelNotFound, InvalidModelId: ``models_to_remove`` names an unknown model
                (nothing is removed).
        """
        for model_id in request.models_to_remove:
            self._catalog.get(model_id)
        async with self._one_at_a_time:
            return await self._cleanup(request, trigger)

    async def _cleanup(self, request: CleanupRequest, trigger: Trigger) -> CleanupResult:
        started = self._clock()
        report, models = await self._survey(
            include_empty=request.cleanup_type is CleanupType.manual
        )
        on_disk = {m.model_id: m for m in models}
        decisions: list[CleanupDecision] = []
        if request.cleanup_type is CleanupType.manual:
            chosen = []
            for model_id in request.models_to_remove:
                model = on_disk.get(model_id)
                if model is None:
                    decisions.append(
                        CleanupDecision(
                            model_id=model_id,
                            outcome="absent",
                            reason="Nothing of it is in the models directory",
                            size_bytes=0,
                            freed_bytes=None,
                            last_used=self._usage.last_use(model_id)[0],
                        )
                    )
                else:
                    chosen.append(model)
            listed = chosen
        else:
            listed = models
        candidates, protected = self._candidates(
            listed, unused_days=request.unused_days, keep_frequent=request.keep_frequent
        )
        why = {p.model_id: p.reason for p in protected}
        chosen_ids = {m.model_id for m in candidates}
        for model in listed:
            if model.model_id not in chosen_ids:
                reason = why.get(model.model_id) or _not_idle(model, request)
                decisions.append(
                    _kept(
                        model.model_id,
                        reason,
                        model.storage.size_bytes,
                        model.storage.last_accessed,
                    )
                )
        removed, freed = await self._remove_all(candidates, dry_run=request.dry_run)
        decisions.extend(removed)
        return await self._record(
            request, trigger, started, decisions, freed, report.unmanaged_repositories
        )

    async def _remove_all(
        self, models: Sequence[DiskModel], *, dry_run: bool
    ) -> tuple[list[CleanupDecision], int]:
        if dry_run:
            plans = await self._plans(models)
            planned = {plan.repo_id for plan in plans}
            decisions = [
                _decision(m, "removed", "Would be removed: " + _idle(m, self._clock()), None)
                if m.entry.repo_id in planned
                else _decision(m, "error", "Its files cannot be removed safely", None)
                for m in models
            ]
            return decisions, await self._cache.predicted_free_bytes(plans)
        decisions, total = [], 0
        for model in models:
            decision = await self._remove(model)
            decisions.append(decision)
            total += decision.freed_bytes or 0
        return decisions, total

    async def _remove(self, model: DiskModel) -> CleanupDecision:
        desk = self._downloads.desk(model.model_id)
        if desk.locked():  # never wait on it: a download making room may hold ours
            return _decision(model, "preserved", "A download action on it is under way", None)
        async with desk:
            if (reason := self.protected(model.model_id, holding_desk=True)) is not None:
                return _decision(model, "preserved", reason, None)
            entry = model.entry
            async with self._cache.lock(entry.repo_id):
                try:
                    plan = await self._plan(entry)
                    freed = await self._cache.remove_planned(plan)
                except DepotError as error:
                    logger.warning("Removing %s failed: %s", model.model_id, error.message)
                    return _decision(model, "error", error.message, None)
        await self._on_removed(model.model_id, plan.commits)
        await self._availability.recompute(model.model_id)  # model_availability_change
        logger.info("Cleanup removed %s (%d bytes freed)", model.model_id, freed)
        return _decision(model, "removed", "Removed: " + _idle(model, self._clock()), freed)

    async def _record(
        self,
        request: CleanupRequest,
        trigger: Trigger,
        started: datetime,
        decisions: list[CleanupDecision],
        freed: int,
        unmanaged: Sequence[object],
    ) -> CleanupResult:
        decisions.sort(key=lambda d: d.model_id)
        removed = [d.model_id for d in decisions if d.outcome == "removed"]
        preserved = [d.model_id for d in decisions if d.outcome == "preserved"]
        errors = sum(d.outcome == "error" for d in decisions)
        absent = sum(d.outcome == "absent" for d in decisions)
        result = CleanupResult(
            success=errors == 0,
            cleanup_id=f"cleanup_{secrets.token_hex(8)}",
            models_removed=removed,
            space_freed_gb=freed / GB,
            models_preserved=preserved,
            summary=CleanupSummary(
                total_processed=len(decisions),
                removed=len(removed),
                preserved=len(preserved),
                errors=errors,
                absent=absent,
            ),
            dry_run=request.dry_run,
            cleanup_type=request.cleanup_type,
            trigger=trigger,
            space_freed_bytes=freed,
            started_at=started,
            finished_at=self._clock(),
            decisions=decisions,
            unmanaged_repositories=sorted(getattr(r, "repo_id", str(r)) for r in unmanaged),
        )
        async with self._sessions.begin() as session:
            # Records are kept KEEP_RECORDS long: a dry-run loop cannot grow the table.
            await session.execute(delete(CleanupRow).where(CleanupRow.at < started - KEEP_RECORDS))
            session.add(
                CleanupRow(
                    cleanup_id=result.cleanup_id,
                    at=started,
                    dry_run=request.dry_run,
                    trigger=trigger,
                    result=result.model_dump(mode="json"),
                )
            )
        return result

    async def get(self, cleanup_id: str) -> CleanupResult:
        """Raises CleanupNotFound."""
        async with self._sessions() as session:
            row = await session.get(CleanupRow, cleanup_id)
        if row is None:
            raise CleanupNotFound(f"No cleanup {cleanup_id}", details={"cleanup_id": cleanup_id})
        return CleanupResult.model_validate(row.result)


def _recommend(model: DiskModel, min_unused_days: int, now: datetime) -> CleanupRecommendation:
    idle_days = (now - model.idle_since).total_seconds() / 86_400
    span = max(min_unused_days, 1)
    confidence = 0.5 + 0.5 * min(1.0, max(0.0, idle_days - min_unused_days) / span)
    if model.storage.last_accessed is None:
        confidence += 0.05
    if model.usage_count > 10:
        confidence -= 0.2
    confidence = round(min(1.0, max(0.0, confidence)), 2)
    return CleanupRecommendation(
        model_id=model.model_id,
        reason=_idle(model, now),
        last_used=model.storage.last_accessed,
        size_mb=model.storage.size_bytes / MB,
        usage_count=model.usage_count,
        confidence=confidence,
        action="safe_to_remove" if confidence >= 0.8 else "review",
        size_bytes=model.storage.size_bytes,
        idle_since=model.idle_since,
    )


def _idle(model: DiskModel, now: datetime) -> str:
    days = int((now - model.idle_since).total_seconds() // 86_400)
    if model.storage.last_accessed is None:
        return f"Never used; installed {days} days ago"
    return f"Not used in {days} days"


def _not_idle(model: DiskModel, request: CleanupRequest) -> str:
    if request.keep_frequent and model.storage.usage_frequency >= FREQUENT_USES_PER_DAY:
        return f"Frequently used ({model.storage.usage_frequency:g} uses per day)"
    return f"Used in the last {request.unused_days} days"


def _decision(
    model: DiskModel, outcome: Outcome, reason: str, freed: int | None
) -> CleanupDecision:
    return CleanupDecision(
        model_id=model.model_id,
        outcome=outcome,
        reason=reason,
        size_bytes=model.storage.size_bytes,
        freed_bytes=freed,
        last_used=model.storage.last_accessed,
    )


def _kept(model_id: str, reason: str, size: int, last_used: datetime | None) -> CleanupDecision:
    return CleanupDecision(
        model_id=model_id,
        outcome="preserved",
        reason=reason,
        size_bytes=size,
        freed_bytes=None,
        last_used=last_used,
    )
