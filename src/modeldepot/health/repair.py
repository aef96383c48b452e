"""Repair: fix only what a check found broken, through the download engine.

* ``auto``: run a quick integrity check (a full one with ``force_repair``), remove the
  snapshot links of the bad files and the blobs whose bytes are wrong, then let the
  download engine fetch what the installed commit lacks (progress, priorities, limits and
  resume all apply), then verify the whole model again.
* ``redownload``: the same for every file of the installed commit; blobs another
  revision still links are kept (they are re-verified, not re-fetched, when they match).
* ``integrity_fix``: no network: remove temp files of interrupted writes, re-link snapshot
  entries whose blob is present and verifies, then verify again.

Nothing outside the model's repository folder is touched and no link is followed out of
the models directory: removals are of the snapshot entry itself (never its target) and of
blobs addressed by the manifest's digest inside the repository.

Automatic repair (``health_monitoring.auto_repair_enabled``, live): when any integrity
check (the monitor's or a requested one) raises an alert whose recommended action is
``auto_repair`` or ``redownload``, that repair starts by itself, unless a download of the
model is under way. It is tried once per episode: a model that is still broken after its
automatic repair is alerted again but not repaired again until a check has found it healthy
(no repair loop against a hub that keeps failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.catalog.service import CatalogService
from modeldepot.config.schemas import ConfigPublic
from modeldepot.downloads.hashing import new_hasher
from modeldepot.downloads.service import DownloadService
from modeldepot.errors import (
    Conflict,
    DepotError,
    InvalidRepairId,
    RepairNotFound,
    UnsafePath,
    UpstreamUnavailable,
)
from modeldepot.events import ModelHealthAlert
from modeldepot.health.models import RepairRow
from modeldepot.health.schemas import HealthIssue
from modeldepot.health.service import HealthService
from modeldepot.ids import parse_digest
from modeldepot.store.layout import RepoLayout, contain, sweep_temp_files

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
    force_repair: bool = False


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


REPAIR_ID_RE = re.compile(r"^repair_[0-9a-f]{16}$")


@dataclass
class _Plan:
    commit: str
    manifest: Manifest
    layout: RepoLayout
    issues: list[HealthIssue] = field(default_factory=list)


class RepairService:
    def __init__(
        self,
        *,
        health: HealthService,
        downloads: DownloadService,
        catalog: CatalogService,
        models_dir: Path,
        config: Callable[[], ConfigPublic],
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._sessions = sessions
        self._health = health
        self._downloads = downloads
        self._catalog = catalog
        self._models_dir = models_dir
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._auto_tried: set[str] = set()
        health.on_verdict(self._on_verdict)

    def _on_verdict(self, model_id: str, alert: ModelHealthAlert | None) -> None:
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
        plan = await self._plan(model_id)
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
        if not REPAIR_ID_RE.match(repair_id):
            raise InvalidRepairId(
                "A repair id is 'repair_' and 16 hex digits", details={"repair_id": repair_id}
            )
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
        removed = await anyio.to_thread.run_sync(_remove_bad, plan, bad)
        actions.append("removed_corrupt_files")
        job = await self._downloads.start_commit(model_id, plan.commit)
        actions.append("partial_redownload" if request.repair_type == "auto" else "redownload")
        return RepairResponse(
            success=True,
            repair_id=repair_id,
            actions_taken=actions,
            estimated_completion=_eta(job.total_bytes),
            download_id=job.id,
            files=removed,
        )

    async def _plan(self, model_id: str) -> _Plan:
        entry = self._catalog.get(model_id)
        layout = RepoLayout(self._models_dir, entry.repo_id)
        commit = await anyio.to_thread.run_sync(layout.read_ref, entry.revision)
        if commit is None:
            raise Conflict(
                f"Nothing of {model_id} is installed: start a download instead",
                details={"model_id": model_id},
            )
        manifest = await self._catalog.manifest_for_commit(model_id, commit)
        if manifest is None:
            manifest = await self._catalog_refresh_manifest(model_id, commit)
        return _Plan(commit=commit, manifest=manifest, layout=layout)

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
        actions = (
            ["removed_temp_files"]
            if await anyio.to_thread.run_sync(sweep_temp_files, plan.layout.path)
            else []
        )
        async with self._downloads.repo_locks.get(plan.layout.repo_id):
            relinked = await anyio.to_thread.run_sync(_relink_verified, plan)
        if relinked:
            actions.append("relinked_snapshot_files")
        if not plan.layout.ref_path(plan.manifest.revision).exists():
            await anyio.to_thread.run_sync(
                plan.layout.write_ref, plan.manifest.revision, plan.commit
            )
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
            while True:
                job = self._downloads.job(model_id)
                if job is None or job.id != download_id or job.status.is_terminal:
                    break
                await asyncio.sleep(0.1)
            verdict = await self._health.run_check(model_id, "full", force=True)
            status, error = "completed", None
            if job is not None and job.id == download_id and job.status.value != "COMPLETED":
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


def _remove_bad(plan: _Plan, bad: list[HealthIssue]) -> list[str]:
    """Blocking: unlink the snapshot entries of bad files, and blobs with wrong bytes."""
    by_path = {f.path: f for f in plan.manifest.files}
    removed = []
    for issue in bad:
        file = by_path.get(issue.path)
        if file is None:
            continue
        _unlink_entry(plan.layout, plan.commit, file)
        if issue.kind in _WRONG_BYTES and file.digest is not None:
            blob = plan.layout.blob_path(file.digest)
            if blob.is_file() and not blob.is_symlink() and not _linked_elsewhere(plan, blob):
                blob.unlink()
        removed.append(file.path)
    return removed


def _unlink_entry(layout: RepoLayout, commit: str, file: ManifestFile) -> None:
    entry = layout.snapshot_file(commit, file.path)
    try:
        contain(layout.root, entry.parent)  # a parent linked out of the root: leave it
    except UnsafePath:
        return
    if entry.is_symlink() or entry.is_file():
        entry.unlink()


def _linked_elsewhere(plan: _Plan, blob: Path) -> bool:
    """Does another revision's snapshot still point at ``blob``? (then it is re-verified
    by the download, not deleted: another revision's files are never touched)."""
    snapshots = plan.layout.path / "snapshots"
    for other in snapshots.iterdir() if snapshots.is_dir() else ():
        if other.name == plan.commit:
            continue
        for link in other.rglob("*"):
            with contextlib.suppress(OSError):
                if link.is_symlink() and link.resolve() == blob.resolve():
                    return True
    return False


def _relink_verified(plan: _Plan) -> list[str]:
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
            if entry.is_symlink():
                entry.unlink()
            plan.layout.link_snapshot_file(plan.commit, file.path, file.digest)
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
