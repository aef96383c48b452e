"""The storage quota: room for downloads, and usage kept under the threshold.

``storage.max_storage_gb`` and ``storage.min_free_space_gb``: a download that would cross
either needs room (:meth:`QuotaKeeper.make_room`, called by the download service). With
``storage.auto_cleanup`` the least recently used unprotected models are removed, as few as
cover the shortfall, and only if together they cover it (nothing is removed in vain);
without it, or if they cannot cover it, the download is refused with 507
``INSUFFICIENT_STORAGE`` naming them. Every ``storage.cleanup_check_interval_minutes`` (and
after a change of the storage settings) usage is compared with
``storage.cleanup_threshold_percent`` of the capacity: over it, a warning, or with
``auto_cleanup`` the same eviction. What "protected" and "least recently used" mean:
``cleanup/service.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from modeldepot.cleanup.schemas import CleanupResult
from modeldepot.cleanup.service import CleanupService, DiskModel
from modeldepot.config.schemas import ConfigPublic
from modeldepot.errors import DepotError, InsufficientStorage
from modeldepot.store.schemas import StorageResponse
from modeldepot.store.service import disk_space
from modeldepot.units import gb_bytes, readable

logger = logging.getLogger(__name__)


class QuotaKeeper:
    def __init__(
        self, *, cleanup: CleanupService, models_dir: Path, config: Callable[[], ConfigPublic]
    ) -> None:
        self._cleanup = cleanup
        self._models_dir = models_dir
        self._config = config
        self._wake = asyncio.Event()
        self._over_threshold = False

    async def make_room(self, for_model: str, needed: int, short: InsufficientStorage) -> None:
        """Free what a download of ``needed`` more bytes for ``for_model`` lacks under the
        quota and the free-space reserve (``short``: the limit it would cross).

        Raises:
            InsufficientStorage: ``short``, saying which models removing would make room
                (``details.candidates``) and why they were not removed: automatic cleanup
                is off, or they would not make enough (nothing was removed).
        """
        report, candidates = await self._cleanup.least_recently_used(excluding=for_model)
        shortfall = self._shortfall(report, needed)
        if shortfall <= 0:
            return
        chosen, frees = await self._cleanup.enough_to_free(candidates, shortfall)
        auto = self._config().storage.auto_cleanup
        if not auto or frees < shortfall:
            raise _refusal(short, shortfall, chosen, covers=frees >= shortfall, auto=auto)
        names = [m.model_id for m in chosen]
        logger.info("Making %s of room for %s: removing %s", readable(shortfall), for_model, names)
        await self._cleanup.evict(chosen, trigger="quota")

    def _shortfall(self, report: StorageResponse, needed: int) -> int:
        storage = self._config().storage
        free = disk_space(self._models_dir).free
        short = needed + gb_bytes(storage.min_free_space_gb) - free
        quota = gb_bytes(storage.max_storage_gb)
        if quota:
            short = max(short, report.storage_summary.used_space_bytes + needed - quota)
        return short

    async def check_threshold(self) -> CleanupResult | None:
        """Bring usage back under ``cleanup_threshold_percent`` when ``auto_cleanup`` is
        on; without it, warn once per crossing. Return the cleanup made, if any."""
        report, candidates = await self._cleanup.least_recently_used()
        summary = report.storage_summary
        storage = self._config().storage
        limit = summary.total_capacity_bytes * storage.cleanup_threshold_percent / 100
        excess = int(summary.used_space_bytes - limit)
        if excess <= 0:
            self._over_threshold = False
            return None
        if not storage.auto_cleanup:
            if not self._over_threshold:
                logger.warning(
                    "Models take %.1f%% of their capacity, over the %.0f%% threshold; "
                    "automatic cleanup is off (POST /api/v1/models/cleanup frees space)",
                    summary.usage_percent,
                    storage.cleanup_threshold_percent,
                )
            self._over_threshold = True
            return None
        chosen, _frees = await self._cleanup.enough_to_free(candidates, excess)
        if not chosen:
            return None
        return await self._cleanup.evict(chosen, trigger="schedule")

    async def run_check_loop(self) -> None:
        """Check now, then every ``cleanup_check_interval_minutes`` or when woken."""
        while True:
            self._wake.clear()
            try:
                await self.check_threshold()
            except DepotError as error:
                logger.warning("The storage threshold check failed: %s", error.message)
            interval = self._config().storage.cleanup_check_interval_minutes * 60
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    async def on_config_change(self, keys: frozenset[str]) -> None:
        if any(key.startswith("storage.") for key in keys):
            self._wake.set()


def _refusal(
    short: InsufficientStorage,
    shortfall: int,
    chosen: list[DiskModel],
    *,
    covers: bool,
    auto: bool,
) -> InsufficientStorage:
    names = ", ".join(m.model_id for m in chosen)
    if not chosen:
        advice = "No model can be removed to make room: all are protected or none is on disk."
    elif not covers:
        advice = f"Even removing every unprotected model ({names}) would not free enough."
    else:
        advice = (
            f"Removing {names} would free enough; storage.auto_cleanup is off "
            "(POST /api/v1/models/cleanup removes them)."
        )
    return InsufficientStorage(
        f"{short.message.rstrip('.')}. {advice}",
        details={
            **short.details,
            "shortfall_bytes": shortfall,
            "candidates": [m.model_id for m in chosen],
            "auto_cleanup": auto,
        },
    )
