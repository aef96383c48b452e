"""Revisions: update to the hub's newest commit beside the installed one, keep the previous
commit for a grace period, roll back to it, and sweep it away when the grace ends.

How an update works (the download engine does the transfer):

1. the tracked revision is resolved again (bounded by ``hub_timeout_seconds``);
2. a download of the new commit starts: files whose blob is already present (unchanged
   between the commits) are linked, not fetched; the rest is fetched and verified into
   ``snapshots/{new}`` while ``refs/{revision}`` still names the old commit, so
   huggingface_hub and every reader keep using the old revision meanwhile;
3. only when every file verified does the ref switch (atomic rename), and the old commit
   is recorded here as ``previous``.

A rollback checks that the kept snapshot still has every file with the right size, then
switches the ref back (the revision rolled back from becomes the kept ``previous`` one) and
queues a quick integrity check. The sweep removes a ``previous`` revision once
``superseded_at + storage.revision_grace_hours`` has passed, unless a download of its
repository is active or some ref still names it; blobs another snapshot links are kept.
Every read and write of the cache goes through the hub cache (``store/cache.py``), under
its per-repository lock for the rollback's switch and the sweep's removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.service import AvailabilityService
from modeldepot.blocking import finish
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.config.service import ConfigService
from modeldepot.downloads.schemas import DownloadAction, ManageRequest
from modeldepot.downloads.service import DownloadService
from modeldepot.errors import (
    Conflict,
    DepotError,
    InvalidInput,
    ModelNotInstalled,
    RevisionUnavailable,
    UpstreamUnavailable,
)
from modeldepot.health.service import HealthService
from modeldepot.ids import is_commit_hash
from modeldepot.revisions.models import RevisionRow
from modeldepot.revisions.schemas import (
    RevisionInfo,
    RevisionsResponse,
    RevisionState,
    RollbackRequest,
    RollbackResponse,
    UpdateRequest,
    UpdateResponse,
)
from modeldepot.store.cache import HubCache

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 300.0


class RevisionService:
    def __init__(
        self,
        *,
        catalog: CatalogService,
        availability: AvailabilityService,
        downloads: DownloadService,
        health: HealthService,
        sessions: async_sessionmaker[AsyncSession],
        cache: HubCache,
        config_service: ConfigService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._catalog = catalog
        self._availability = availability
        self._downloads = downloads
        self._health = health
        self._sessions = sessions
        self._cache = cache
        self._config_service = config_service
        self._clock = clock
        self._wake = asyncio.Event()
        self._record_lock = asyncio.Lock()

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self._config_service.current.storage.revision_grace_hours)

    # --- recording ---------------------------------------------------------------------

    async def load(self) -> None:
        """Start-up: if a ref moved while the database could not record it (a crash right
        after the switch), record it now; the superseded commit gets a full grace period."""
        for entry in self._catalog.entries.values():
            if is_commit_hash(entry.revision):
                continue
            installed = await self._cache.installed_commit(entry)
            if installed is None:
                continue
            async with self._sessions() as session:
                current = await self._rows(session, entry.id, RevisionState.current)
            stale = [row.commit_hash for row in current if row.commit_hash != installed]
            if stale or not current:
                await self._record(entry, previous=stale[0] if stale else None, current=installed)

    async def record_switch(self, model_id: str, previous: str | None, current: str) -> None:
        """The ref of ``model_id`` now names ``current`` (it named ``previous``)."""
        await self._record(self._catalog.get(model_id), previous=previous, current=current)
        self._wake.set()

    async def _record(self, entry: CatalogEntry, *, previous: str | None, current: str) -> None:
        # One at a time: a download finishing and start-up reconciliation (or a rollback)
        # could otherwise both insert the row of the same commit.
        async with self._record_lock:
            await self._record_now(entry, previous=previous, current=current)

    async def _record_now(self, entry: CatalogEntry, *, previous: str | None, current: str) -> None:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            for stale in await self._rows(session, entry.id, RevisionState.current):
                if stale.commit_hash != current:
                    stale.state, stale.superseded_at = RevisionState.previous, now
            row = await session.get(RevisionRow, (entry.id, current))
            if row is None:
                row = RevisionRow(model_id=entry.id, commit_hash=current, repo_id=entry.repo_id)
                session.add(row)
            if row.state != RevisionState.previous:  # new, or fetched again after removal
                row.installed_at = now
            row.revision, row.state = entry.revision, RevisionState.current
            row.superseded_at = row.removed_at = row.freed_bytes = None
            if previous is not None and previous != current:
                old = await session.get(RevisionRow, (entry.id, previous))
                if old is None:  # installed before modeldepot knew it (e.g. huggingface_hub)
                    old = RevisionRow(model_id=entry.id, commit_hash=previous)
                    old.repo_id, old.revision = entry.repo_id, entry.revision
                    session.add(old)
                old.state, old.superseded_at = RevisionState.previous, now

    async def _rows(
        self, session: AsyncSession, model_id: str, state: RevisionState | None = None
    ) -> list[RevisionRow]:
        query = select(RevisionRow).where(RevisionRow.model_id == model_id)
        if state is not None:
            query = query.where(RevisionRow.state == state.value)
        return list((await session.scalars(query)).all())

    async def commits_in_use(self, model_id: str) -> set[str]:
        """The commits of ``model_id`` recorded as installed or kept for a rollback."""
        async with self._sessions() as session:
            rows = await self._rows(session, model_id)
        states = (RevisionState.current, RevisionState.previous)
        return {row.commit_hash for row in rows if row.state in states}

    async def record_removal(self, model_id: str, commits: Iterable[str]) -> None:
        """A cleanup removed these commits of ``model_id`` from disk."""
        removed = set(commits)
        async with self._record_lock, self._sessions() as session, session.begin():
            for row in await self._rows(session, model_id):
                if row.commit_hash in removed and row.state != RevisionState.removed:
                    row.state, row.removed_at = RevisionState.removed, self._clock()

    # --- reading -----------------------------------------------------------------------

    async def revisions(self, model_id: str, *, refresh: bool = False) -> RevisionsResponse:
        """Installed, kept and removed revisions of ``model_id`` and the hub's newest.

        Raises:
            ModelNotFound, InvalidModelId.
        """
        entry = self._catalog.get(model_id)
        state = await self._catalog.refresh(model_id) if refresh else self._catalog.state(model_id)
        installed = await self._cache.installed_commit(entry)
        async with self._sessions() as session:
            rows = await self._rows(session, entry.id)
        on_disk = set(await self._cache.snapshot_commits(entry.repo_id))
        infos = [await self._describe(entry, row, on_disk) for row in rows]
        known = {row.commit_hash for row in rows}
        for commit in sorted(on_disk - known):
            infos.append(await self._describe_untracked(entry, commit, installed))
        order = list(RevisionState)
        infos.sort(key=lambda i: (order.index(i.state), _desc(i.superseded_at), i.commit))
        latest = state.manifest.commit if state.manifest is not None else None
        job = self._downloads.job(entry.id)
        updating = (
            job.id if job is not None and job.status.is_active and job.commit != installed else None
        )
        return RevisionsResponse(
            model_id=entry.id,
            tracked_revision=entry.revision,
            current_version=installed,
            latest_version=latest,
            update_available=installed is not None and latest is not None and latest != installed,
            latest_checked_at=state.last_success_at,
            grace_hours=self._config_service.current.storage.revision_grace_hours,
            updating=updating,
            revisions=infos,
        )

    async def _describe(
        self, entry: CatalogEntry, row: RevisionRow, on_disk: set[str]
    ) -> RevisionInfo:
        present = row.commit_hash in on_disk
        complete = await self._complete(entry, row.commit_hash) if present else False
        state = RevisionState(row.state)
        return RevisionInfo(
            commit=row.commit_hash,
            state=state,
            on_disk=present,
            complete=complete,
            installed_at=row.installed_at,
            superseded_at=row.superseded_at,
            keep_until=(
                row.superseded_at + self.grace
                if state == RevisionState.previous and row.superseded_at is not None
                else None
            ),
            removed_at=row.removed_at,
            freed_bytes=row.freed_bytes,
        )

    async def _describe_untracked(
        self, entry: CatalogEntry, commit: str, installed: str | None
    ) -> RevisionInfo:
        return RevisionInfo(
            commit=commit,
            state=RevisionState.current if commit == installed else RevisionState.untracked,
            on_disk=True,
            complete=await self._complete(entry, commit),
            installed_at=None,
            superseded_at=None,
            keep_until=None,
            removed_at=None,
            freed_bytes=None,
        )

    async def _complete(self, entry: CatalogEntry, commit: str) -> bool | None:
        found = await self._cache.completeness(entry, commit)
        return None if found is None else found.whole

    # --- update and rollback -----------------------------------------------------------

    async def update(self, model_id: str, request: UpdateRequest) -> UpdateResponse:
        """Download the tracked revision's newest commit beside the installed one.

        Raises:
            ModelNotFound, InvalidModelId, ModelNotInstalled, DownloadInProgress,
            UpstreamError (the hub could not say what the newest commit is),
            InsufficientStorage.
        """
        entry = self._catalog.get(model_id)
        installed = await self._cache.installed_commit(entry)
        if installed is None:
            raise ModelNotInstalled(
                f"{entry.id} is not installed: start a download instead of an update",
                details={"model_id": entry.id},
            )
        if is_commit_hash(entry.revision):
            raise Conflict(
                f"{entry.id} is pinned to commit {entry.revision}: there is nothing to update "
                "to (change the catalogue entry's revision instead)",
                details={"model_id": entry.id, "revision": entry.revision},
            )
        state = await self._catalog.refresh(entry.id)
        if state.manifest is None:
            raise UpstreamUnavailable(
                state.error or f"The newest commit of {entry.id} could not be resolved",
                details={"model_id": entry.id, "cause": state.error_code},
            )
        latest = state.manifest.commit
        if latest == installed:
            return UpdateResponse(
                success=True,
                message=f"{entry.id} is already at the newest commit of {entry.revision}",
                model_id=entry.id,
                from_version=installed,
                to_version=latest,
                new_status="COMPLETED",
            )
        started = await self._downloads.start(
            ManageRequest(
                model_id=entry.id,
                action=DownloadAction.start,
                priority=request.priority,
                bandwidth_limit_mbps=request.bandwidth_limit_mbps,
                max_retries=request.max_retries,
            )
        )
        return UpdateResponse(
            success=started.success,
            message=f"Updating {entry.id} from {installed[:12]} to {latest[:12]}: "
            f"{started.message}; the installed revision stays in use until every file "
            "of the new one verified",
            model_id=entry.id,
            from_version=installed,
            to_version=latest,
            download_id=started.download_id,
            new_status=started.new_status or "QUEUED",
            estimated_completion=started.estimated_completion,
        )

    async def rollback(self, model_id: str, request: RollbackRequest) -> RollbackResponse:
        """Point the model's ref back at a kept revision.

        Raises:
            ModelNotFound, InvalidModelId, InvalidInput (not a commit hash),
            ModelNotInstalled, DownloadInProgress, RevisionUnavailable, Conflict (pinned).
        """
        entry = self._catalog.get(model_id)
        if request.commit is not None and not is_commit_hash(request.commit):
            raise InvalidInput(
                "commit must be a 40-character lowercase hex commit hash",
                details={"field": "commit"},
            )
        if is_commit_hash(entry.revision):
            raise Conflict(
                f"{entry.id} is pinned to commit {entry.revision} by the catalogue",
                details={"model_id": entry.id, "revision": entry.revision},
            )
        async with self._cache.lock(entry.repo_id):
            self._ensure_no_download(entry)
            installed = await self._cache.installed_commit(entry)
            if installed is None:
                raise ModelNotInstalled(
                    f"{entry.id} is not installed", details={"model_id": entry.id}
                )
            target = request.commit or await self._newest_kept(entry, installed)
            if target == installed:
                return RollbackResponse(
                    success=True,
                    message=f"{entry.id} already uses {target}",
                    model_id=entry.id,
                    from_version=installed,
                    to_version=target,
                    previous_kept_until=None,
                )
            await self._ensure_whole(entry, target)
            await self._cache.switch_ref(entry.repo_id, revision=entry.revision, commit=target)
            await self._record(entry, previous=installed, current=target)
        await self._availability.recompute(entry.id)
        with contextlib.suppress(DepotError):  # the switch is done; the check is a courtesy
            await self._health.request_check(entry.id, "integrity", force=True)
        self._wake.set()
        return RollbackResponse(
            success=True,
            message=f"{entry.id} rolled back from {installed[:12]} to {target[:12]}; "
            f"{installed[:12]} is kept for {self.grace.total_seconds() / 3600:g} h",
            model_id=entry.id,
            from_version=installed,
            to_version=target,
            previous_kept_until=self._clock() + self.grace,
        )

    def _ensure_no_download(self, entry: CatalogEntry) -> None:
        job = self._downloads.job(entry.id)
        if job is not None and job.status.is_active:
            raise Conflict(
                f"A download of {entry.id} is {job.status.value}: cancel it or let it finish "
                "before rolling back",
                details={"download_id": job.id, "status": job.status.value},
            )

    async def _newest_kept(self, entry: CatalogEntry, installed: str) -> str:
        async with self._sessions() as session:
            rows = await self._rows(session, entry.id, RevisionState.previous)
        rows.sort(key=lambda r: _desc(r.superseded_at))
        for row in rows:
            if row.commit_hash != installed:
                return row.commit_hash
        raise RevisionUnavailable(
            f"No previous revision of {entry.id} is kept: nothing to roll back to",
            details={"model_id": entry.id},
        )

    async def _ensure_whole(self, entry: CatalogEntry, commit: str) -> None:
        if commit not in await self._cache.snapshot_commits(entry.repo_id):
            raise RevisionUnavailable(
                f"Revision {commit} of {entry.id} is not on disk",
                details={"model_id": entry.id, "commit": commit},
            )
        found = await self._cache.completeness(entry, commit)
        if found is None:
            raise RevisionUnavailable(
                f"The file list of {entry.id}@{commit} is unknown, so it cannot be checked",
                details={"model_id": entry.id, "commit": commit},
            )
        if not found.whole:
            raise RevisionUnavailable(
                f"Revision {commit} of {entry.id} is incomplete on disk",
                details={
                    "model_id": entry.id,
                    "commit": commit,
                    "missing_files": list(found.missing),
                    "wrong_size_files": list(found.wrong_size),
                },
            )

    # --- the sweep ---------------------------------------------------------------------

    async def sweep(self) -> list[str]:
        """Remove every previous revision whose grace has ended; return their commits."""
        now = self._clock()
        async with self._sessions() as session:
            query = select(RevisionRow).where(RevisionRow.state == RevisionState.previous.value)
            due = [
                row
                for row in (await session.scalars(query)).all()
                if row.superseded_at is not None and row.superseded_at + self.grace <= now
            ]
        removed = []
        for row in due:
            entry = self._catalog.entries.get(row.model_id)
            if entry is None or entry.repo_id != row.repo_id:
                continue  # the catalogue changed: not ours to remove any more
            if await self._remove(entry, row.commit_hash):
                removed.append(row.commit_hash)
        return removed

    async def _remove(self, entry: CatalogEntry, commit: str) -> bool:
        async with self._cache.lock(entry.repo_id):
            if any(
                self._downloads.is_active(other.id)
                for other in self._catalog.entries.values()
                if other.repo_id == entry.repo_id
            ):
                return False  # a download may link blobs of this repository: next sweep
            if await self._cache.refs_pointing_at(entry.repo_id, commit):
                return False  # some ref (ours or another tool's) still names it
            try:
                freed = await self._cache.prune_revision(entry.repo_id, commit)
            except DepotError as error:
                logger.warning("Removing %s@%s failed: %s", entry.id, commit, error.message)
                return False
            async with self._sessions() as session, session.begin():
                row = await session.get(RevisionRow, (entry.id, commit))
                if row is not None and row.state == RevisionState.previous:
                    row.state, row.removed_at = RevisionState.removed, self._clock()
                    row.freed_bytes = freed
        logger.info("Removed revision %s of %s (%d bytes freed)", commit, entry.id, freed)
        return True

    async def run_sweep_loop(self, interval_seconds: float = SWEEP_INTERVAL_SECONDS) -> None:
        """Sweep now, then every ``interval_seconds`` or when woken (a switch, a config
        change), until cancelled."""
        while True:
            self._wake.clear()
            await finish(self.sweep())  # a stop waits for a sweep under way
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_seconds):
                    await self._wake.wait()

    async def on_config_change(self, keys: frozenset[str]) -> None:
        if "storage.revision_grace_hours" in keys:
            self._wake.set()  # a shorter grace may have ended already


def _desc(moment: datetime | None) -> float:
    """Sort key: newest first, unknown last."""
    return -moment.timestamp() if moment is not None else float("inf")
