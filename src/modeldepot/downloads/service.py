"""The download service: the seed's manage/progress/active operations.

The roles are split: this module answers requests; ``ledger.py`` holds every job and is
the one place a job's status changes (one desk per model, stored before visible);
``scheduler.py`` decides what runs and applies transfer outcomes; ``recovery.py`` brings
the database and the disk back in line at start-up; ``runner.py`` and ``transfer.py``
move the bytes.

Every action takes the model's desk, so concurrent actions on one model are ordered and
each is answered with the state it produced, or with a 409 that says why it cannot apply
(``state.plan_action``). A second ``start`` while a download is active is 409
``DOWNLOAD_IN_PROGRESS`` with its id; ``pause``/``resume``/``cancel`` without an active
download are 404 ``DOWNLOAD_NOT_FOUND``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.service import AvailabilityService
from modeldepot.blocking import run
from modeldepot.catalog.manifest import Manifest
from modeldepot.catalog.service import CatalogService
from modeldepot.config.directory import write_problem
from modeldepot.config.service import ConfigService
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.ledger import Ledger, StatusListener
from modeldepot.downloads.limiter import TokenBucket
from modeldepot.downloads.recovery import recover, resuming_repos
from modeldepot.downloads.retry import RetryPolicy
from modeldepot.downloads.runner import (
    BlobRegistry,
    JobRunner,
    SpaceCheck,
    make_retry_handler,
)
from modeldepot.downloads.scheduler import RefSwitchListener, Scheduler
from modeldepot.downloads.schemas import (
    ActiveDownloadsResponse,
    DownloadAction,
    ManageRequest,
    ManageResponse,
    Priority,
    ProgressResponse,
)
from modeldepot.downloads.sources import SourcePolicy
from modeldepot.downloads.state import DownloadStatus, UserAction, plan_action
from modeldepot.downloads.transfer import ConnectionSlots, TransferContext, TransferSettings
from modeldepot.errors import (
    DownloadInProgress,
    DownloadNotFound,
    InsufficientStorage,
    InvalidInput,
    UpstreamUnavailable,
)
from modeldepot.settings import Settings
from modeldepot.store.cache import HubCache
from modeldepot.store.partial import translate_os_error
from modeldepot.units import MB, gb_bytes, mb_bytes

S = DownloadStatus
MakeRoom = Callable[[str, int, InsufficientStorage], Awaitable[None]]


class DownloadService:
    def __init__(
        self,
        *,
        settings: Settings,
        config: ConfigService,
        catalog: CatalogService,
        availability: AvailabilityService,
        sessions: async_sessionmaker[AsyncSession],
        ledger: Ledger,
        cache: HubCache,
        client: httpx.AsyncClient,
    ) -> None:
        self._settings = settings
        self._config = config
        self._catalog = catalog
        self._availability = availability
        self._sessions = sessions
        self._ledger = ledger
        self._cache = cache
        self._client = client
        self._blobs = BlobRegistry()
        self._make_room: MakeRoom | None = None
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
        self._scheduler = Scheduler(
            ledger=ledger,
            config=config,
            prepare=self._prepare,
            blobs=self._blobs,
            executor=self._executor,
            cache=cache,
        )

    # --- wiring (done by the composition root) -------------------------------------------

    def on_status_change(self, listener: StatusListener) -> None:
        """``listener(model_id)`` after every transition of a download of that model."""
        self._ledger.on_status_change(listener)

    def on_short_of_space(self, make_room: MakeRoom) -> None:
        """``make_room(model_id, needed, refusal)`` when a download of ``needed`` more
        bytes would cross the quota or the free-space reserve (``refusal`` says which): it
        frees space or raises InsufficientStorage (``modeldepot.cleanup``). Without it,
        ``refusal`` is raised."""
        self._make_room = make_room

    def on_ref_switch(self, listener: RefSwitchListener) -> None:
        """``listener(model_id, previous_commit, new_commit)`` after a download moved a ref."""
        self._scheduler.on_ref_switch(listener)

    # --- start-up and shutdown ---------------------------------------------------------

    async def load(self) -> None:
        """Reconcile with the database and the disk after a (clean or hard) stop."""
        unfinished = await recover(ledger=self._ledger, sessions=self._sessions)
        await run(
            self._executor,
            partial(
                self._cache.collect_orphans_blocking,
                managed=self._is_managed,
                resuming=resuming_repos(unfinished),
            ),
        )
        await self._scheduler.kick()

    def _is_managed(self, repo_id: str) -> bool:
        return any(entry.repo_id == repo_id for entry in self._catalog.entries.values())

    async def close(self) -> None:
        await self._scheduler.close()
        self._executor.shutdown(wait=True)

    async def run_progress_loop(self) -> None:
        await self._scheduler.run_progress_loop()

    # --- the seed's operations ---------------------------------------------------------

    async def manage(self, request: ManageRequest) -> ManageResponse:
        """Dispatch one ``POST /models/download/manage`` action.

        Raises:
            ModelNotFound, DownloadNotFound, DownloadInProgress, Conflict,
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
        async with self._ledger.desk(entry.id):
            self._ensure_idle(entry.id)
            manifest = await self._manifest(entry.id)
            status = await self._availability.recompute(entry.id)
            if status.is_available and status.current_version == manifest.commit:
                return ManageResponse(
                    success=True, message=f"{entry.id} is already available", new_status="COMPLETED"
                )
            job, needed = await self._enqueue(request, manifest, refetch=frozenset())
        await self._scheduler.kick()
        return ManageResponse(
            success=True,
            message="Download started successfully" if job.task else "Download queued",
            download_id=job.id,
            new_status=job.status.value,
            estimated_completion=self._estimate(job, needed),
        )

    async def start_commit(
        self,
        model_id: str,
        commit: str,
        *,
        priority: Priority = Priority.high,
        refetch: frozenset[str] = frozenset(),
    ) -> Job:
        """Fetch whatever ``commit`` of the model lacks, and the files whose digest is in
        ``refetch`` although a blob exists (repair: nothing is removed first; a verified
        replacement is renamed over the bad blob).

        Raises:
            ModelNotFound, DownloadInProgress, InsufficientStorage,
            UpstreamUnavailable: the file list of that commit was never resolved.
        """
        entry = self._catalog.get(model_id)
        async with self._ledger.desk(entry.id):
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
            job, _needed = await self._enqueue(request, manifest, refetch=refetch)
        await self._scheduler.kick()
        return job

    def _ensure_idle(self, model_id: str) -> None:
        current = self._ledger.active(model_id)
        if current is not None:
            raise DownloadInProgress(
                f"A download of {model_id} is already {current.status.value}",
                details={"download_id": current.id, "status": current.status.value},
            )

    async def _enqueue(
        self, request: ManageRequest, manifest: Manifest, *, refetch: frozenset[str]
    ) -> tuple[Job, int]:
        """Check the job can run (a writable, roomy disk), store it; return it and the
        bytes it still has to fetch."""
        job = self._new_job(request, manifest, refetch=refetch)
        # A read-only or full models directory is refused now, with a clear error, rather
        # than accepted and failed later.
        problem = await run(self._executor, write_problem, self._cache.root)
        if problem is not None:
            raise translate_os_error(problem, "preparing the download")
        needed = await run(self._executor, self._remaining, job)
        await self._space_check(job.model_id).secure(needed, self._executor)
        await self._ledger.add(job)
        return job, needed

    async def pause(self, request: ManageRequest) -> ManageResponse:
        async with self._ledger.desk(request.model_id):
            job = self._active_job(request.model_id)
            plan = plan_action(UserAction.pause, job.status)
            if plan.changes:
                await self._scheduler.halt(job)
                await self._ledger.move(job, S.PAUSED)
        await self._scheduler.kick()
        return _answer(job, "Download paused" if plan.changes else "Download is already paused")

    async def resume(self, request: ManageRequest) -> ManageResponse:
        async with self._ledger.desk(request.model_id):
            job = self._active_job(request.model_id)
            plan = plan_action(UserAction.resume, job.status)
            if plan.changes:
                await self._ledger.move(job, S.QUEUED, retry_count=0)
        await self._scheduler.kick()
        message = "Download resumed" if plan.changes else "Download is not paused"
        return _answer(job, message)

    async def cancel(self, request: ManageRequest) -> ManageResponse:
        async with self._ledger.desk(request.model_id):
            job = self._active_job(request.model_id)
            plan_action(UserAction.cancel, job.status)
            await self._scheduler.halt(job)
            await self._ensure_files(job)
            await self._scheduler.discard_partials(job)
            await self._ledger.move(job, S.CANCELLED)
        await self._scheduler.kick()
        return _answer(job, "Download cancelled")

    async def update(self, request: ManageRequest) -> ManageResponse:
        if request.action == DownloadAction.set_priority and request.priority is None:
            raise InvalidInput("set_priority needs a priority", details={"field": "priority"})
        async with self._ledger.desk(request.model_id):
            job = self._active_job(request.model_id)
            if request.priority is not None:
                job.priority = request.priority
            if request.bandwidth_limit_mbps is not None:
                job.bandwidth_limit_mbps = request.bandwidth_limit_mbps
                job.bucket.set_rate(request.bandwidth_limit_mbps)
            if request.max_retries is not None:
                job.max_retries = request.max_retries
            await self._ledger.save(job)
            self._ledger.announce(job)
        await self._scheduler.kick()
        return _answer(job, "Download updated")

    def progress(self, model_id: str) -> ProgressResponse:
        """Progress of the model's newest download.

        Raises:
            ModelNotFound, InvalidModelId, DownloadNotFound.
        """
        self._catalog.get(model_id)
        job = self._ledger.latest(model_id)
        if job is None:
            raise DownloadNotFound(
                f"No download of {model_id} exists", details={"model_id": model_id}
            )
        return job.progress(queue_position=self._queue_position(job))

    def active(self) -> ActiveDownloadsResponse:
        jobs = sorted(
            (j for j in self._ledger.jobs() if j.status.is_active),
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
        await self._scheduler.run_until_idle()

    async def wait(self, download_id: str) -> Job:
        """Wait until the download ``download_id`` is completed, failed or cancelled.

        Raises:
            DownloadNotFound: this process knows no such download.
        """
        return await self._ledger.wait(download_id)

    def job(self, model_id: str) -> Job | None:
        return self._ledger.latest(model_id)

    @property
    def source_policy(self) -> SourcePolicy:
        """Which hosts this service may contact (also for the wait queue's callbacks)."""
        return self._policy

    def is_active(self, model_id: str) -> bool:
        """Whether a download of ``model_id`` is queued, running, verifying or paused."""
        return self._ledger.active(model_id) is not None

    def desk(self, model_id: str) -> asyncio.Lock:
        """The lock every download action on ``model_id`` holds while it decides and acts:
        whoever holds it (a cleanup removing the model) knows no download starts."""
        return self._ledger.desk(model_id)

    # --- availability contributor ------------------------------------------------------

    def contribute(self, model_id: str, fields: dict[str, Any]) -> None:
        job = self._ledger.latest(model_id)
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

    # --- running a job -----------------------------------------------------------------

    async def _prepare(self, job: Job) -> JobRunner:
        entry = self._catalog.get(job.model_id)
        await self._ensure_files(job)
        context = TransferContext(
            client=self._client,
            policy=self._policy,
            token=self._token,
            buckets=(self._global_bucket, job.bucket),
            slots=self._slots,
            settings=self._transfer_settings(),
            on_transient=make_retry_handler(
                job, self._retry, lambda: self._ledger.announce(job, final=False)
            ),
            on_recovered=lambda: _recovered(job),
            executor=self._executor,
        )
        return JobRunner(
            job=job,
            entry=entry,
            cache=self._cache,
            endpoint=self._settings.hf_endpoint,
            context=context,
            blobs=self._blobs,
            space=self._space_check(job.model_id),
            on_file_done=lambda: self._ledger.save(job),
        )

    async def _ensure_files(self, job: Job) -> None:
        """Load the job's file list (a job loaded at start-up has none yet).

        Raises:
            UpstreamUnavailable: the file list of the job's commit is not stored.
        """
        if job.files:
            return
        manifest = await self._catalog.manifest_for_commit(job.model_id, job.commit)
        if manifest is None:
            raise UpstreamUnavailable(f"The file list of {job.model_id}@{job.commit} is unknown")
        job.files = manifest.files
        job.total_bytes = sum(f.size or 0 for f in manifest.files)

    # --- helpers -----------------------------------------------------------------------

    def _active_job(self, model_id: str) -> Job:
        self._catalog.get(model_id)
        job = self._ledger.active(model_id)
        if job is None:
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

    def _new_job(
        self, request: ManageRequest, manifest: Manifest, *, refetch: frozenset[str]
    ) -> Job:
        downloads = self._config.current.downloads
        return Job(
            id=f"dl_{secrets.token_hex(8)}",
            model_id=manifest.model_id,
            repo_id=manifest.repo_id,
            revision=manifest.revision,
            commit=manifest.commit,
            status=S.QUEUED,
            priority=request.priority or Priority.normal,
            seq=self._ledger.next_seq(),
            max_retries=downloads.max_retries
            if request.max_retries is None
            else request.max_retries,
            bandwidth_limit_mbps=request.bandwidth_limit_mbps or 0.0,
            created_at=datetime.now(UTC),
            files=manifest.files,
            total_bytes=sum(f.size or 0 for f in manifest.files),
            refetch=refetch,
        )

    def _remaining(self, job: Job) -> int:
        """Blocking: bytes the job still has to fetch."""
        layout = self._cache.layout(job.repo_id)
        missing = 0
        for file in job.files:
            try:
                present = file.digest is not None and layout.blob_path(file.digest).stat().st_size
            except OSError:
                present = 0
            if present != file.size or file.digest in job.refetch:
                missing += file.size or 0
        return missing

    def _space_check(self, model_id: str) -> SpaceCheck:
        storage = self._config.current.storage
        make_room = self._make_room
        return SpaceCheck(
            models_dir=self._cache.root,
            reserve_bytes=gb_bytes(storage.min_free_space_gb),
            quota_bytes=gb_bytes(storage.max_storage_gb),
            used_bytes=lambda: sum(r.size_on_disk for r in self._cache.repositories_blocking()),
            make_room=None if make_room is None else partial(make_room, model_id),
        )

    def _queue_position(self, job: Job) -> int | None:
        if job.status != S.QUEUED:
            return None
        queued = sorted(
            (j for j in self._ledger.jobs() if j.status == S.QUEUED),
            key=lambda j: (j.priority.rank, j.seq),
        )
        return queued.index(job) + 1

    def _estimate(self, job: Job, remaining: int) -> datetime | None:
        limit = min(
            (b.rate_mbps for b in (self._global_bucket, job.bucket) if b.rate_mbps), default=0
        )
        if not limit:
            return None
        return datetime.now(UTC) + timedelta(seconds=remaining / (limit * MB))

    def _transfer_settings(self) -> TransferSettings:
        settings = self._settings
        current = self._config.current
        return TransferSettings(
            # features.enhanced_downloads off: one connection per file (issue 9).
            connections_per_file=current.downloads.connections_per_file
            if current.features.enhanced_downloads
            else 1,
            min_segment=mb_bytes(settings.min_segment_mb),
            stall_timeout=settings.stall_timeout_seconds,
            checkpoint_interval=settings.checkpoint_interval_seconds,
        )

    @property
    def _token(self) -> str | None:
        token = self._settings.hf_token
        return token.get_secret_value() if token else None

    async def on_config_change(self, keys: frozenset[str]) -> None:
        downloads = self._config.current.downloads
        if "downloads.bandwidth_limit_mbps" in keys:
            self._global_bucket.set_rate(downloads.bandwidth_limit_mbps)
        if "downloads.max_connections" in keys:
            await self._slots.set_limit(downloads.max_connections)
        if "downloads.max_concurrent_downloads" in keys:
            await self._scheduler.kick()


def _answer(job: Job, message: str) -> ManageResponse:
    """The reply to pause, resume, cancel and update: the job's id and its new status."""
    return ManageResponse(
        success=True, message=message, download_id=job.id, new_status=job.status.value
    )


def _recovered(job: Job) -> None:
    """A connection that was failing moves bytes again: the retry streak is over."""
    job.retry_count = 0
