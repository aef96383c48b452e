"""Storage reporting: what the models directory holds and how much room is left.

All figures come from the file system at request time (``statvfs`` and the repositories'
blob sizes), read in a worker thread. The cleanup suggestions are filled by
``modeldepot.cleanup`` (which serves ``GET /models/storage``); alone this reports none.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.config.schemas import ConfigPublic
from modeldepot.store.cache import HubCache
from modeldepot.store.layout import repo_folder_name
from modeldepot.store.scan import RepoOnDisk
from modeldepot.store.schemas import (
    CleanupSuggestions,
    ModelStorage,
    StorageResponse,
    StorageSummary,
    UnmanagedRepository,
)
from modeldepot.units import GB, gb_bytes


@dataclass(frozen=True)
class DiskSpace:
    total: int
    free: int


def disk_space(path: Path) -> DiskSpace:
    """Space on the file system holding ``path`` (its nearest existing ancestor)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return DiskSpace(total=usage.total, free=usage.free)


def storage_tier(last_used: datetime | None, now: datetime) -> str:
    if last_used is None:
        return "cold"
    age = now - last_used
    if age <= timedelta(days=7):
        return "hot"
    return "warm" if age <= timedelta(days=30) else "cold"


class StorageService:
    def __init__(
        self,
        *,
        cache: HubCache,
        entries: Mapping[str, CatalogEntry],
        config: Callable[[], ConfigPublic],
        usage: Callable[[str], tuple[datetime | None, float]] = lambda _model_id: (None, 0.0),
        pinned: Callable[[str], bool] = lambda _model_id: False,
    ) -> None:
        """``usage(model_id)``: its last reported use and uses per day (``modeldepot.usage``),
        which decide ``last_accessed``, ``usage_frequency`` and ``storage_tier``."""
        self._cache = cache
        self._entries = entries
        self._config = config
        self._usage = usage
        self._pinned = pinned

    async def report(self, *, include_empty: bool = False) -> StorageResponse:
        """``include_empty``: list models whose folder holds nothing (what a cancelled
        download leaves), as cleanup needs to; not counted in ``models_count``."""
        repos, space = await anyio.to_thread.run_sync(self._scan)
        return self._build(repos, space, self._config(), include_empty=include_empty)

    def _scan(self) -> tuple[list[RepoOnDisk], DiskSpace]:
        return self._cache.repositories_blocking(), disk_space(self._cache.root)

    def _build(
        self,
        repos: list[RepoOnDisk],
        space: DiskSpace,
        config: ConfigPublic,
        *,
        include_empty: bool,
    ) -> StorageResponse:
        by_folder = {repo.folder: repo for repo in repos}
        now = datetime.now(UTC)
        managed_folders: set[str] = set()
        models: list[ModelStorage] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.id):
            folder = repo_folder_name(entry.repo_id)
            managed_folders.add(folder)
            repo = by_folder.get(folder)
            if repo is None or (repo.size_on_disk == 0 and not include_empty):
                continue
            last_used, frequency = self._usage(entry.id)
            models.append(
                ModelStorage(
                    model_id=entry.id,
                    size_gb=repo.size_on_disk / GB,
                    last_accessed=last_used,
                    usage_frequency=frequency,
                    storage_tier=storage_tier(last_used, now),
                    size_bytes=repo.size_on_disk,
                    last_modified=repo.last_modified,
                    pinned=self._pinned(entry.id),
                    repo_id=entry.repo_id,
                    commits=list(repo.commits),
                )
            )
        unmanaged = [_unmanaged(repo) for repo in repos if repo.folder not in managed_folders]
        used = sum(repo.size_on_disk for repo in repos)
        return StorageResponse(
            storage_summary=_summary(
                used, space, config, sum(m.size_bytes > 0 for m in models), self._cache.root
            ),
            models_storage=models,
            cleanup_suggestions=CleanupSuggestions(
                potential_savings_gb=0.0, safe_to_remove_count=0, candidates=[]
            ),
            unmanaged_repositories=unmanaged,
        )


def _summary(
    used: int, space: DiskSpace, config: ConfigPublic, count: int, models_dir: Path
) -> StorageSummary:
    # Unrounded: a small model must never show as 0.0 GB (issue 9).
    quota = gb_bytes(config.storage.max_storage_gb)
    capacity = used + space.free
    if quota > 0:
        capacity = min(capacity, quota)
    available = max(0, min(capacity - used, space.free))
    return StorageSummary(
        total_capacity_gb=capacity / GB,
        used_space_gb=used / GB,
        available_space_gb=available / GB,
        usage_percent=100 * used / capacity if capacity else 0.0,
        models_count=count,
        total_capacity_bytes=capacity,
        used_space_bytes=used,
        available_space_bytes=available,
        disk_total_gb=space.total / GB,
        disk_free_gb=space.free / GB,
        quota_gb=config.storage.max_storage_gb or None,
        reserve_gb=config.storage.min_free_space_gb,
        models_directory=os.fspath(models_dir),
    )


def _unmanaged(repo: RepoOnDisk) -> UnmanagedRepository:
    return UnmanagedRepository(
        repo_id=repo.repo_id,
        repo_type=repo.repo_type,
        size_gb=repo.size_on_disk / GB,
        size_bytes=repo.size_on_disk,
        refs=repo.refs,
        commits=list(repo.commits),
        last_modified=repo.last_modified,
    )
