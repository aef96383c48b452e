"""Repair: fix only what a check found broken, through the download engine, destroying
nothing on the way.

* ``auto``: run a quick integrity check (a full one with ``force_repair``), then let the
  download engine bring the installed commit back: files whose bytes are wrong are
  fetched again, verified, and only then renamed over the bad blob; missing or broken
  snapshot entries are re-linked (from the blob if it is intact, else after fetching
  it). Progress, priorities, limits and resume all apply. Then the whole model is
  verified again.
* ``redownload``: the same for every file of the installed commit.
* ``integrity_fix``: no network: remove temp files of interrupted writes, re-link snapshot
  entries whose blob is present and verifies, restore a lost ref, then verify again.

Nothing is removed before its replacement is verified (PRODUCT.md, RELIABILITY.md 43): a
repair with the hub unreachable, or on a disk that fills, fails and leaves the model
exactly as it was. A read-only models directory is refused at once (507
``STORAGE_READ_ONLY``). Nothing outside the model's repository folder is touched and no
link is followed out of the models directory (an entry linking out is replaced, never
followed).

Automatic repair (``health_monitoring.auto_repair_enabled``, live): when any integrity
check (the monitor's or a requested one) raises an alert whose recommended action is
``auto_repair`` or ``redownload``, that repair starts by itself, unless a download of the
model is under way. It is tried once per episode: a model that is still broken after its
automatic repair is alerted again but not repaired again until a check has found it healthy
(no repair loop against a hub that keeps failing).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.config.schemas import ConfigPublic
from modeldepot.downloads.hashing import new_hasher
from modeldepot.downloads.service import DownloadService
from modeldepot.errors import (
    Conflict,
    DepotError,
    DownloadInProgress,
    RepairNotFound,
    UpstreamUnavailable,
)
from modeldepot.events import ModelHealthAlert
from modeldepot.health.models import RepairRow
from modeldepot.health.schemas import HealthIssue
from modeldepot.health.service import HealthService
from modeldepot.ids import parse_digest, validate_repair_id
from modeldepot.store.cache import HubCache
from modeldepot.store.layout import RepoLayout

logger = logging.getLogger(__name__)
RepairType = Literal["auto", "redownload", "integrity_fix"]
# A file reported bad_structure hashes to the manifest (a wrong hash would be reported
# first): the published file itself is malformed, and fetching it again cannot help.
_AUTO_KINDS: dict[str, RepairType] = {"auto_repair": "auto", "redownload": "redownload"}
_FETCH_AGAIN = {"missing", "wrong_size", "wrong_hash", "broken_link", "outside_root"}
_WRONG_BYTES = {"wrong_size", "wrong_hash"}


class RepairRequest(BaseModel):
    """Body of ``POST /models/health/{model_id}/repair``."""

    model_config = ConfigDict(extra="forbid")

    repair_type: RepairType = "auto"
    force_repair: StrictBool = False  # strict like every request body: "yes" is refused


class RepairResponse(BaseModel):
    success: bool
    repair_id: str
    actions_taken: list[str] = Field(description="What was done before answering")
    estimated_completion: datetime | None
    download_id: str | None = None
    files: list[str] = Field(default_factory=list, description="Files repaired or re-fetched")


RepairStatus = Literal["running", "completed", "failed", "interrupted"]


class RepairRecord(BaseModel):
    """``GET /models/health/repairs/{repair_id}`` (extension): a repair and how it ended."""

    model_config = ConfigDict(from_attributes=True)

    repair_id: str = Field(validation_alias="id")
    model_id: str
    repair_type: RepairType
    force_repair: bool
    commit: str = Field(validation_alias="commit_hash")
    status: RepairStatus = Field(
        description="running until the download it started is over and the model was "
        "verified again; interrupted when the service stopped meanwhile"
    )
    actions_taken: list[str]
    files: list[str]
    download_id: str | None
    requested_at: datetime
    finished_at: datetime | None
    overall_health: str | None = Field(description="Verdict of the verification afterwards")
    error: str | None


@dataclass
class _Plan:
    entry: CatalogEntry
    commit: str
    manifest: Manifest
    layout: RepoLayout
    installed: bool  # False: no ref names the commit (integrity_fix may restore it)
    issues: list[HealthIssue] = field(default_factory=list)


class RepairService:
    def __init__(
        self,
        *,
        health: HealthService,
        downloads: DownloadService,
        catalog: CatalogService,
        cache: HubCache,
        config: Callable[[], ConfigPublic],
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._sessions = sessions
        self._health = health
        self._downloads = downloads
        self._catalog = catalog
        self._cache = cache
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._auto_tried: set[str] = set()

    def on_verdict(self, model_id: str, alert: ModelHealthAlert | None) -> None:
        """Listener for ``HealthService.on_verdict`` (wired by the composition root)."""
        if alert is None:
            self._auto_tried.discard(model_id)  # healthy again: a new episode may repair
            return
        kind = _AUTO_KINDS.get(alert.recommended_action)
        if (
            kind is None
            or not self._config().health_monitoring.auto_repair_enabled
            or model_id in self._auto_tried
            or self._downloads.is_active(model_id)
        ):
            return
        self._auto_tried.add(model_id)
        # A task of its own: the verdict arrives inside a check, and repair runs checks.
        self._spawn(self._auto_repair(model_id, kind), name=f"auto-repair:{model_id}")

    async def _auto_repair(self, model_id: str, kind: RepairType) -> None:
        try:
            answer = await self.repair(model_id, RepairRequest(repair_type=kind))
        except DepotError as error:
            logger.warning("Automatic repair of %s failed: %s", model_id, error.message)
            return
        logger.info(
            "Automatic %s repair of %s: %s", kind, model_id, ", ".join(answer.actions_taken)
        )

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def repair(self, model_id: str, request: RepairRequest) -> RepairResponse:
        """Start a repair; what was already done is in ``actions_taken``.

        Raises:
            ModelNotFound, InvalidModelId, DownloadInProgress, InsufficientStorage,
            UpstreamUnavailable (file list of the installed commit unknown), Conflict
            (nothing installed to repair: start a download instead).
        """
        plan = await self._plan(model_id, request)
        repair_id = f"repair_{secrets.token_hex(8)}"
        requested_at = datetime.now(UTC)
        answer = await self._start(repair_id, model_id, request, plan)
        row = RepairRow(
            id=repair_id,
            model_id=model_id,
            repair_type=request.repair_type,
            force_repair=request.force_repair,
            commit_hash=plan.commit,
            status="running" if answer.download_id else "completed",
            actions_taken=answer.actions_taken,
            files=answer.files,
            download_id=answer.download_id,
            requested_at=requested_at,
            finished_at=None if answer.download_id else datetime.now(UTC),
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        if answer.download_id:
            self._follow(model_id, answer.download_id, repair_id)
        return answer

    async def get(self, repair_id: str) -> RepairRecord:
        """Raises: InvalidRepairId, RepairNotFound."""
        validate_repair_id(repair_id)
        async with self._sessions() as session:
            row = await session.get(RepairRow, repair_id)
        if row is None:
            raise RepairNotFound(f"No repair '{repair_id}'", details={"repair_id": repair_id})
        return RepairRecord.model_validate(row)

    async def load(self) -> None:
        """Start-up: repairs a previous process left running are marked interrupted (their
        download resumes by itself; a health check tells how the model is)."""
        async with self._sessions() as session, session.begin():
            rows = await session.scalars(select(RepairRow).where(RepairRow.status == "running"))
            for row in rows:
                row.status, row.finished_at = "interrupted", datetime.now(UTC)

    async def _finish(self, repair_id: str, **changes: Any) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(RepairRow, repair_id)
            if row is not None:
                row.finished_at = datetime.now(UTC)
                for name, value in changes.items():
                    setattr(row, name, value)

    async def _start(
        self, repair_id: str, model_id: str, request: RepairRequest, plan: _Plan
    ) -> RepairResponse:
        if request.repair_type == "integrity_fix":
            return await self._integrity_fix(repair_id, model_id, plan)
        actions = []
        if request.repair_type == "auto":
            # Quick unless forced: files changed since their last verification are hashed.
            verdict = await self._health.run_check(
                model_id, "integrity", force=request.force_repair
            )
            actions.append("integrity_check")
            bad = [i for i in verdict.issues if i.kind in _FETCH_AGAIN]
        else:
            bad = [
                HealthIssue(path=f.path, kind="wrong_hash", detail="redownload")
                for f in plan.manifest.files
            ]
        if not bad:
            return RepairResponse(
                success=True,
                repair_id=repair_id,
                actions_taken=[*actions, "nothing_to_repair"],
                estimated_completion=datetime.now(UTC),
            )
        by_path = {f.path: f for f in plan.manifest.files}
        refetch = frozenset(
            digest
            for issue in bad
            if issue.kind in _WRONG_BYTES and (digest := _digest(by_path, issue.path))
        )
        job = await self._downloads.start_commit(model_id, plan.commit, refetch=refetch)
        actions.append("partial_redownload" if request.repair_type == "auto" else "redownload")
        return RepairResponse(
            success=True,
            repair_id=repair_id,
            actions_taken=actions,
            estimated_completion=_eta(job.total_bytes),
            download_id=job.id,
            files=sorted({issue.path for issue in bad if issue.path in by_path}),
        )

    async def _plan(self, model_id: str, request: RepairRequest) -> _Plan:
        installed = await self._cache.installed(model_id)
        commit = installed.commit
        if commit is None and request.repair_type == "integrity_fix":
            # A lost ref: the snapshot of the newest known commit may be whole.
            expected = installed.expected
            commits = await self._cache.snapshot_commits(installed.entry.repo_id)
            commit = expected.commit if expected and expected.commit in commits else None
        if commit is None:
            raise Conflict(
                f"Nothing of {model_id} is installed: start a download instead",
                details={"model_id": model_id},
            )
        manifest = await self._catalog.manifest_for_commit(model_id, commit)
        if manifest is None:
            manifest = await self._catalog_refresh_manifest(model_id, commit)
        return _Plan(
            entry=installed.entry,
            commit=commit,
            manifest=manifest,
            layout=installed.layout,
            installed=installed.commit is not None,
        )

    async def _catalog_refresh_manifest(self, model_id: str, commit: str) -> Manifest:
        await self._catalog.refresh(model_id)
        manifest = await self._catalog.manifest_for_commit(model_id, commit)
        if manifest is None:
            raise UpstreamUnavailable(
                f"The file list of {model_id}@{commit} is unknown; repair needs the hub once",
                details={"model_id": model_id, "commit": commit},
            )
        return manifest

    async def _integrity_fix(self, repair_id: str, model_id: str, plan: _Plan) -> RepairResponse:
        job = self._downloads.job(model_id)
        if job is not None and job.status.is_active:
            # Temp files may be the live writes of that download: not ours to sweep now.
            raise DownloadInProgress(
                f"A download of {model_id} is {job.status.value}: let it finish or cancel "
                "it before an integrity_fix",
                details={"download_id": job.id, "status": job.status.value},
            )
        repo_id = plan.entry.repo_id
        async with self._cache.lock(repo_id):
            swept = await self._cache.sweep_temp_files(repo_id)
            relinked = await anyio.to_thread.run_sync(_relink_verified, self._cache, plan)
        actions = ["removed_temp_files"] if swept else []
        if relinked:
            actions.append("relinked_snapshot_files")
        whole = await self._cache.completeness(plan.entry, plan.commit)
        if not plan.installed and whole is not None and whole.whole:
            # Only a whole snapshot gets its ref back; the forced check below hashes it.
            await self._cache.switch_ref(repo_id, revision=plan.entry.revision, commit=plan.commit)
            actions.append("restored_ref")
        check = await self._health.request_check(model_id, "integrity", force=True)
        actions.append("integrity_check")
        return RepairResponse(
            success=True,
            repair_id=repair_id,
            actions_taken=actions,
            estimated_completion=check.estimated_completion,
            files=relinked,
        )

    def _follow(self, model_id: str, download_id: str, repair_id: str) -> None:
        """After the download, verify the whole model again and record how the repair
        ended (in the background)."""

        async def verify_when_done() -> None:
            job = await self._downloads.wait(download_id)
            verdict = await self._health.run_check(model_id, "full", force=True)
            status, error = "completed", None
            if job.status.value != "COMPLETED":
                status = "failed"
                error = job.error_message or f"The download ended {job.status.value}"
            elif verdict.overall_health != "healthy":
                status, error = "failed", "The model is not healthy after the repair"
            await self._finish(
                repair_id, status=status, overall_health=verdict.overall_health, error=error
            )

        self._spawn(verify_when_done(), name=f"repair-verify:{model_id}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_until_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _digest(by_path: dict[str, ManifestFile], path: str) -> str | None:
    file = by_path.get(path)
    return file.digest if file is not None else None


def _relink_verified(cache: HubCache, plan: _Plan) -> list[str]:
    """Blocking: re-create missing or broken snapshot links whose blob hashes right."""
    relinked = []
    for file in plan.manifest.files:
        if file.digest is None:
            continue
        entry = plan.layout.snapshot_file(plan.commit, file.path)
        if entry.exists():
            continue
        blob = plan.layout.blob_path(file.digest)
        if blob.is_file() and not blob.is_symlink() and _hashes_to(blob, file):
            cache.link_file_blocking(
                plan.entry.repo_id, commit=plan.commit, path=file.path, digest=file.digest
            )
            relinked.append(file.path)
    return relinked


def _hashes_to(blob: Path, file: ManifestFile) -> bool:
    assert file.digest is not None
    algorithm, expected = parse_digest(file.digest)
    size = blob.stat().st_size
    if file.size is not None and size != file.size:
        return False
    hasher = new_hasher(algorithm, size)
    with blob.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            hasher.update(block)
    return hasher.hexdigest() == expected


def _eta(total_bytes: int) -> datetime:
    """A rough completion time (at 50 MB/s); progress has the live ETA."""
    return datetime.now(UTC) + timedelta(seconds=5 + total_bytes / 50e6)
