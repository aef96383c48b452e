"""The download service: the seed's manage/progress/active operations and the scheduler.

* Jobs wait in one queue ordered by priority (critical > high > normal > low), then by
  arrival; at most ``downloads.max_concurrent_downloads`` run (a live setting).
* Every state change is persisted, announced as a final ``model_download_progress`` event
  and re-judged by the availability service (``model_availability_change``); while bytes
  flow, progress is announced at most ``PROGRESS_HZ`` times a second per model.
* At start-up, jobs that were queued or running are queued again and resume from their
  checkpoints; paused ones stay paused; partial files no unfinished job needs are deleted.
* At shutdown running jobs checkpoint and keep their status, so the next start resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.service import AvailabilityService
from modeldepot.blocking import finish, run
from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.catalog.service import CatalogService
from modeldepot.config.service import ConfigService
from modeldepot.downloads import repo
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.limiter import TokenBucket
from modeldepot.downloads.retry import RetryPolicy, is_transient
from modeldepot.downloads.runner import (
    BlobRegistry,
    JobRunner,
    SpaceCheck,
    cleanup_partials,
    make_retry_handler,
)
from modeldepot.downloads.schemas import (
    ActiveDownloadsResponse,
    DownloadAction,
    ManageRequest,
    ManageResponse,
    Priority,
    ProgressResponse,
)
from modeldepot.downloads.sources import SourcePolicy
from modeldepot.downloads.state import DownloadStatus
from modeldepot.downloads.transfer import ConnectionSlots, TransferContext, TransferSettings
from modeldepot.errors import (
    DepotError,
    DownloadInProgress,
    DownloadNotFound,
    InvalidInput,
    UpstreamUnavailable,
)
from modeldepot.events import PROGRESS_HZ, DownloadProgress, EventBus
from modeldepot.settings import Settings
from modeldepot.store.layout import PARTIAL_SUFFIX, RepoLayout, sweep_temp_files
from modeldepot.store.locks import RepoLocks
from modeldepot.store.scan import list_repos

logger = logging.getLogger(__name__)
S = DownloadStatus
RefSwitchListener = Callable[[str, str | None, str], Awaitable[None]]
MB = 1_000_000


class DownloadService:
    def __init__(
        self,
        *,
        settings: Settings,
        config: ConfigService,
        catalog: CatalogService,
        availability: AvailabilityService,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        models_dir: Path,
        client: httpx.AsyncClient,
    ) -> None:
        self._settings = settings
        self._config = config
        self._catalog = catalog
        self._availability = availability
        self._bus = bus
        self._sessions = sessions
        self._models_dir = models_dir
        self._client = client
        self._jobs: dict[str, Job] = {}
        self._ref_listeners: list[RefSwitchListener] = []
        self.repo_locks = RepoLocks()
        self._latest: dict[str, Job] = {}
        self._seq = 0
        self._blobs = BlobRegistry()
        downloads = config.current.downloads
        self._global_bucket = TokenBucket(downloads.bandwidth_limit_mbps)
        self._slots = ConnectionSlots(downloads.max_connections)
        self._policy = SourcePolicy(
            hub_url=settings.hf_endpoint, allowed_hosts=frozenset(settings.allowed_source_hosts)
        )
        self._retry = RetryPolicy(
            base_delay=settings.retry_base_delay_seconds,
            max_delay=settings.retry_max_delay_seconds,
            max_retry_after=settings.max_retry_after_seconds,
        )
        # Transfers read on these threads (see rangeget.py); bounded by the connection slots.
        self._executor = ThreadPoolExecutor(max_workers=256, thread_name_prefix="transfer")
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        availability.add_contributor(self)
        config.on_change(self._on_config_change)

    # --- start-up and shutdown ---------------------------------------------------------

    async def load(self) -> None:
        """Reconcile with the database and the disk after a (clean or hard) stop."""
        async with self._sessions() as session:
            self._seq = await repo.max_seq(session)
            for row in await repo.latest_per_model(session):
                self._remember(Job.from_row(row))
            unfinished = [Job.from_row(row) for row in await repo.unfinished(session)]
        for job in unfinished:
            self._remember(job)
            if job.status in (S.DOWNLOADING, S.VERIFYING):
                job.status = S.QUEUED  # interrupted: resume from the checkpoints
                await self._save(job)
        await run(self._executor, self._collect_orphans, unfinished)
        await self._kick()

    def _collect_orphans(self, unfinished: list[Job]) -> None:
        """Blocking, at start-up: in every managed repository remove the temp files of
        writes a crash interrupted; remove partial files that no unfinished job will
        resume, and checkpoints left beside blobs already promoted (items 24, 31)."""
        keep = {job.repo_id for job in unfinished}
        for repo_on_disk in list_repos(self._models_dir):
            if not self._is_managed(repo_on_disk.repo_id):
                continue  # never touch what is not ours
            repo_dir = self._models_dir / repo_on_disk.folder
            sweep_temp_files(repo_dir)
            for leftover in (repo_dir / "blobs").glob(f"*{PARTIAL_SUFFIX}*"):
                blob = leftover.with_name(leftover.name.split(PARTIAL_SUFFIX)[0])
                if repo_on_disk.repo_id not in keep or blob.exists():
                    with contextlib.suppress(OSError):
                        leftover.unlink()

    def _is_managed(self, repo_id: str) -> bool:
        return any(entry.repo_id == repo_id for entry in self._catalog.entries.values())

    async def close(self) -> None:
        running = [job for job in self._jobs.values() if job.task is not None]
        for job in running:
            job.stop_reason = "shutdown"
            job.task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*(job.task for job in running if job.task), return_exceptions=True)
        for job in running:
            await self._save(job)
        self._executor.shutdown(wait=True)

    # --- the seed's operations ---------------------------------------------------------

    async def manage(self, request: ManageRequest) -> ManageResponse:
        """Dispatch one ``POST /models/download/manage`` action.

        Raises:
            ModelNotFound, DownloadNotFound, DownloadInProgress, IllegalTransition,
            InsufficientStorage, UpstreamError, InvalidInput.
        """
        handlers = {
            DownloadAction.start: self.start,
            DownloadAction.pause: self.pause,
            DownloadAction.resume: self.resume,
            DownloadAction.cancel: self.cancel,
            DownloadAction.set_priority: self.update,
            DownloadAction.update: self.update,
        }
        return await handlers[request.action](request)

    async def start(self, request: ManageRequest) -> ManageResponse:
        entry = self._catalog.get(request.model_id)
        async with self._lock:
            self._ensure_idle(entry.id)
            manifest = await self._manifest(entry.id)
            status = await self._availability.recompute(entry.id)
            if status.is_available and status.current_version == manifest.commit:
                return ManageResponse(
                    success=True, message=f"{entry.id} is already available", new_status="COMPLETED"
                )
            job = await self._enqueue(request, manifest)
        await self._announce(job)
        await self._kick()
        return ManageResponse(
            success=job.status != S.FAILED,
            message=_start_message(job),
            download_id=job.id,
            new_status=job.status.value,
            estimated_completion=self._estimate(job),
        )

    async def start_commit(
        self, model_id: str, commit: str, *, priority: Priority = Priority.high
    ) -> Job:
        """Fetch whatever ``commit`` of the model lacks (repair keeps the installed revision).

        Raises:
            ModelNotFound, DownloadInProgress, InsufficientStorage,
            UpstreamUnavailable: the file list of that commit was never resolved.
        """
        entry = self._catalog.get(model_id)
        async with self._lock:
            self._ensure_idle(entry.id)
            manifest = await self._catalog.manifest_for_commit(entry.id, commit)
            if manifest is None:
                raise UpstreamUnavailable(
                    f"The file list of {entry.id}@{commit} is unknown: the hub has not been "
                    "reached for it yet",
                    details={"model_id": entry.id, "commit": commit},
                )
            request = ManageRequest(
                model_id=entry.id, action=DownloadAction.start, priority=priority
            )
            job = await self._enqueue(request, manifest)
        await self._announce(job)
        await self._kick()
        return job

    def _ensure_idle(self, model_id: str) -> None:
        current = self._latest.get(model_id)
        if current is not None and current.status.is_active:
            raise DownloadInProgress(
                f"A download of {model_id} is already {current.status.value}",
                details={"download_id": current.id, "status": current.status.value},
            )

    async def _enqueue(self, request: ManageRequest, manifest: Manifest) -> Job:
        job = self._new_job(request, manifest)
        await run(self._executor, self._space_check(job).ensure, self._remaining(job))
        self._remember(job)
        await self._save(job)
        return job

    async def pause(self, request: ManageRequest) -> ManageResponse:
        job = await self._stop(request.model_id, reason="pause")
        return _answer(job, "Download paused successfully")

    async def resume(self, request: ManageRequest) -> ManageResponse:
        job = self._active_job(request.model_id)
        job.move_to(S.QUEUED)
        job.retry_count = 0
        await self._changed(job)
        await self._kick()
        return _answer(job, "Download resumed successfully")

    async def cancel(self, request: ManageRequest) -> ManageResponse:
        job = await self._stop(request.model_id, reason="cancel")
        return _answer(job, "Download cancelled")

    async def _stop(self, model_id: str, *, reason: str) -> Job:
        """Pause or cancel: a running job is interrupted (its runner records the new
        state); a queued or paused one changes state here."""
        job = self._active_job(model_id)
        job.stop_reason = reason
        if job.task is not None:
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        else:
            await self._stopped(job)
        return job

    async def update(self, request: ManageRequest) -> ManageResponse:
        job = self._active_job(request.model_id)
        if request.action == DownloadAction.set_priority and request.priority is None:
            raise InvalidInput("set_priority needs a priority", details={"field": "priority"})
        if request.priority is not None:
            job.priority = request.priority
        if request.bandwidth_limit_mbps is not None:
            job.bandwidth_limit_mbps = request.bandwidth_limit_mbps
            job.bucket.set_rate(request.bandwidth_limit_mbps)
        if request.max_retries is not None:
            job.max_retries = request.max_retries
        await self._save(job)
        await self._announce(job)
        await self._kick()
        return _answer(job, "Download updated")

    def progress(self, model_id: str) -> ProgressResponse:
        """Progress of the model's newest download.

        Raises:
            ModelNotFound, InvalidModelId, DownloadNotFound.
        """
        self._catalog.get(model_id)
        job = self._latest.get(model_id)
        if job is None:
            raise DownloadNotFound(
                f"No download of {model_id} exists", details={"model_id": model_id}
            )
        return job.progress(queue_position=self._queue_position(job))

    def active(self) -> ActiveDownloadsResponse:
        jobs = sorted(
            (j for j in self._latest.values() if j.status.is_active),
            key=lambda j: (j.status != S.DOWNLOADING, j.priority.rank, j.seq),
        )
        entries = [j.active_entry(queue_position=self._queue_position(j)) for j in jobs]
        total = sum(j.speed_bps for j in jobs) / MB
        return ActiveDownloadsResponse(
            active_downloads=entries,
            total_active=len(entries),
            total_bandwidth_usage_mbps=round(total, 3),
        )

    async def run_until_idle(self) -> None:
        """Wait until no job is queued or running (tests and the CLI bound it themselves)."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)
            if self._idle.is_set():
                return

    def job(self, model_id: str) -> Job | None:
        return self._latest.get(model_id)

    # --- availability contributor ------------------------------------------------------

    def contribute(self, model_id: str, fields: dict[str, Any]) -> None:
        job = self._latest.get(model_id)
        if job is None:
            return
        if job.status.is_active:
            fields["availability_status"] = job.status.value
            fields["download_progress"] = job.progress_percent
            fields["can_pause_download"] = job.can_pause
            fields["can_resume_download"] = job.can_resume
            fields["estimated_download_time"] = job.eta_seconds
        elif job.status == S.FAILED and not fields["is_available"]:
            fields["availability_status"] = "FAILED"
            fields["download_progress"] = job.progress_percent

    # --- scheduling --------------------------------------------------------------------

    async def _kick(self) -> None:
        limit = self._config.current.downloads.max_concurrent_downloads
        running = [j for j in self._jobs.values() if j.task is not None]
        queued = sorted(
            (j for j in self._jobs.values() if j.status == S.QUEUED and j.task is None),
            key=lambda j: (j.priority.rank, j.seq),
        )
        for job in queued[: max(0, limit - len(running))]:
            job.move_to(S.DOWNLOADING)
            job.error_code = job.error_message = None
            job.stop_reason = None
            job.task = asyncio.create_task(self._run(job), name=f"download:{job.id}")
            await self._changed(job)
        busy = any(j.task is not None or j.status == S.QUEUED for j in self._jobs.values())
        if busy:
            self._idle.clear()
        else:
            self._idle.set()

    async def _run(self, job: Job) -> None:
        runner: JobRunner | None = None
        try:
            runner = await self._prepare(job)
            await runner.run()
            job.move_to(S.VERIFYING)
            await self._changed(job)
            previous = await run(self._executor, runner.publish_ref)
            await self._ref_switched(job, previous)
            job.move_to(S.COMPLETED)
        except asyncio.CancelledError:
            await self._stopped(job)
        except DepotError as error:
            # A pause or cancel can surface as the error of a connection it closed.
            await (self._stopped(job) if job.stop_reason else self._failed(job, error))
        except Exception as error:  # a bug: fail the job with a generic reason, log it all
            logger.error("Download %s crashed", job.id, exc_info=error)
            await self._failed(job, DepotError("Internal error while downloading"))
        finally:
            job.task = None
            job.fetches.clear()
        if job.status == S.COMPLETED:
            job.available_at = datetime.now(UTC).timestamp()
            await self._changed(job)
        await self._kick()

    async def _prepare(self, job: Job) -> JobRunner:
        entry = self._catalog.get(job.model_id)
        manifest = await self._catalog.manifest_for_commit(job.model_id, job.commit)
        if manifest is None:
            raise UpstreamUnavailable(f"The file list of {job.model_id}@{job.commit} is unknown")
        job.files = manifest.files
        job.total_bytes = sum(f.size or 0 for f in manifest.files)
        layout = RepoLayout(self._models_dir, job.repo_id)
        context = TransferContext(
            client=self._client,
            policy=self._policy,
            token=self._token,
            buckets=(self._global_bucket, job.bucket),
            slots=self._slots,
            settings=self._transfer_settings(),
            on_transient=make_retry_handler(job, self._retry, lambda: self._announce_soon(job)),
            on_recovered=lambda: _recovered(job),
            executor=self._executor,
        )
        return JobRunner(
            job=job,
            entry=entry,
            layout=layout,
            endpoint=self._settings.hf_endpoint,
            context=context,
            blobs=self._blobs,
            space=self._space_check(job),
            on_file_done=lambda: self._save(job),
            repo_lock=self.repo_locks.get(job.repo_id),
        )

    def on_ref_switch(self, listener: RefSwitchListener) -> None:
        """Call ``listener(model_id, previous_commit, new_commit)`` whenever a completed
        download moves the model's ref (revisions keeps the previous one for a while)."""
        self._ref_listeners.append(listener)

    async def _ref_switched(self, job: Job, previous: str | None) -> None:
        if previous == job.commit:
            return
        for listener in self._ref_listeners:
            try:
                await listener(job.model_id, previous, job.commit)
            except Exception:  # the switch happened; a listener's failure must not undo it
                logger.exception("Recording the revision switch of %s failed", job.model_id)

    def is_active(self, model_id: str) -> bool:
        """Whether a download of ``model_id`` is queued, running, verifying or paused."""
        job = self._latest.get(model_id)
        return job is not None and job.status.is_active

    async def _stopped(self, job: Job) -> None:
        reason = job.stop_reason
        if reason == "pause":
            await self._settle(job, S.PAUSED)
        elif reason == "cancel":
            await self._discard_partials(job)
            await self._settle(job, S.CANCELLED)
        # shutdown: keep the status, the next start resumes

    async def _failed(self, job: Job, error: DepotError) -> None:
        job.error_code, job.error_message = error.code, error.message
        if not is_transient(error):
            # Only a download that ran out of retries on a flaky network is worth resuming
            # (the next start continues from the partial files); after anything permanent
            # (refused source, missing file, bad bytes, full disk) nothing is left behind.
            await self._discard_partials(job)
        logger.warning(
            "Download %s of %s failed: %s", job.id, job.model_id, error.message, exc_info=error
        )
        await self._settle(job, S.FAILED)

    async def _settle(self, job: Job, status: DownloadStatus) -> None:
        """Move to a resting state (paused, cancelled, failed): stored before anyone can
        see it, so no answer ever shows a state that a crash right after would lose; then
        announced."""
        if job.status != status:
            preview = replace(job)
            preview.move_to(status)
            await self._save(preview)
            job.status, job.finished_at = preview.status, preview.finished_at
        await self._changed(job)

    async def _discard_partials(self, job: Job) -> None:
        files = job.files or await self._files_of(job)
        layout = RepoLayout(self._models_dir, job.repo_id)
        await run(self._executor, cleanup_partials, layout, files)

    async def _files_of(self, job: Job) -> tuple[ManifestFile, ...]:
        manifest = await self._catalog.manifest_for_commit(job.model_id, job.commit)
        return manifest.files if manifest else ()

    # --- progress announcements --------------------------------------------------------

    async def run_progress_loop(self) -> None:
        """Announce running jobs' progress at most PROGRESS_HZ times a second each."""
        ticks = 0
        while True:
            await asyncio.sleep(1 / PROGRESS_HZ)
            ticks += 1
            for job in [j for j in self._jobs.values() if j.status == S.DOWNLOADING]:
                job.meter.sample(job.done_bytes)
                self._bus.publish(DownloadProgress.build(job))
                if ticks % (PROGRESS_HZ * 5) == 0:
                    await finish(self._save(job))

    def _announce_soon(self, job: Job) -> None:
        self._bus.publish(DownloadProgress.build(job))

    async def _announce(self, job: Job) -> None:
        self._bus.publish(DownloadProgress.build(job, final=True))

    async def _changed(self, job: Job) -> None:
        """Persist, announce and re-judge availability after a state change."""
        await self._save(job)
        await self._announce(job)
        await self._availability.recompute(job.model_id)

    async def _save(self, job: Job) -> None:
        async with self._sessions() as session, session.begin():
            await repo.save(session, job.to_row())

    # --- helpers -----------------------------------------------------------------------

    def _remember(self, job: Job) -> None:
        previous = self._latest.get(job.model_id)
        if previous is not None and previous.id != job.id and previous.status.is_terminal:
            self._jobs.pop(previous.id, None)
        self._jobs[job.id] = job
        if previous is None or job.seq >= previous.seq:
            self._latest[job.model_id] = job

    def _active_job(self, model_id: str) -> Job:
        self._catalog.get(model_id)
        job = self._latest.get(model_id)
        if job is None or not job.status.is_active:
            raise DownloadNotFound(
                f"No active download of {model_id}", details={"model_id": model_id}
            )
        return job

    async def _manifest(self, model_id: str) -> Manifest:
        state = self._catalog.state(model_id)
        if state.manifest is None:
            state = await self._catalog.refresh(model_id)
        if state.manifest is None:
            raise UpstreamUnavailable(
                state.error or f"The file list of {model_id} could not be resolved",
                details={"model_id": model_id, "cause": state.error_code},
            )
        return state.manifest

    def _new_job(self, request: ManageRequest, manifest: Manifest) -> Job:
        downloads = self._config.current.downloads
        self._seq += 1
        return Job(
            id=f"dl_{secrets.token_hex(8)}",
            model_id=manifest.model_id,
            repo_id=manifest.repo_id,
            revision=manifest.revision,
            commit=manifest.commit,
            status=S.QUEUED,
            priority=request.priority or Priority.normal,
            seq=self._seq,
            max_retries=downloads.max_retries
            if request.max_retries is None
            else request.max_retries,
            bandwidth_limit_mbps=request.bandwidth_limit_mbps or 0.0,
            created_at=datetime.now(UTC),
            files=manifest.files,
            total_bytes=sum(f.size or 0 for f in manifest.files),
        )

    def _remaining(self, job: Job) -> int:
        layout = RepoLayout(self._models_dir, job.repo_id)
        missing = 0
        for file in job.files:
            try:
                present = file.digest is not None and layout.blob_path(file.digest).stat().st_size
            except OSError:
                present = 0
            if present != file.size:
                missing += file.size or 0
        return missing

    def _space_check(self, job: Job) -> SpaceCheck:
        storage = self._config.current.storage
        return SpaceCheck(
            models_dir=self._models_dir,
            reserve_bytes=int(storage.min_free_space_gb * 1e9),
            quota_bytes=int(storage.max_storage_gb * 1e9),
            used_bytes=lambda: sum(r.size_on_disk for r in list_repos(self._models_dir)),
        )

    def _queue_position(self, job: Job) -> int | None:
        if job.status != S.QUEUED:
            return None
        queued = sorted(
            (j for j in self._jobs.values() if j.status == S.QUEUED),
            key=lambda j: (j.priority.rank, j.seq),
        )
        return queued.index(job) + 1

    def _estimate(self, job: Job) -> datetime | None:
        limit = min(
            (b.rate_mbps for b in (self._global_bucket, job.bucket) if b.rate_mbps), default=0
        )
        if not limit:
            return None
        return datetime.now(UTC) + timedelta(seconds=self._remaining(job) / (limit * MB))

    def _transfer_settings(self) -> TransferSettings:
        settings = self._settings
        return TransferSettings(
            connections_per_file=self._config.current.downloads.connections_per_file,
            min_segment=int(settings.min_segment_mb * MB),
            stall_timeout=settings.stall_timeout_seconds,
            checkpoint_interval=settings.checkpoint_interval_seconds,
        )

    @property
    def _token(self) -> str | None:
        token = self._settings.hf_token
        return token.get_secret_value() if token else None

    async def _on_config_change(self, keys: frozenset[str]) -> None:
        downloads = self._config.current.downloads
        if "downloads.bandwidth_limit_mbps" in keys:
            self._global_bucket.set_rate(downloads.bandwidth_limit_mbps)
        if "downloads.max_connections" in keys:
            await self._slots.set_limit(downloads.max_connections)
        if "downloads.max_concurrent_downloads" in keys:
            await self._kick()


def _answer(job: Job, message: str) -> ManageResponse:
    """The reply to pause, resume, cancel and update: the job's id and its new status."""
    return ManageResponse(
        success=True, message=message, download_id=job.id, new_status=job.status.value
    )


def _start_message(job: Job) -> str:
    if job.status == S.FAILED:
        return f"Download failed at once: {job.error_message}"
    if job.status == S.QUEUED:
        return "Download queued"
    return "Download started successfully"


def _recovered(job: Job) -> None:
    """A connection that was failing moves bytes again: the retry streak is over."""
    job.retry_count = 0
