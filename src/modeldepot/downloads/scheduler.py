"""The scheduler: which queued download runs next, running it, and applying its outcome.

* Jobs wait in one queue ordered by priority (critical > high > normal > low), then by
  arrival; at most ``downloads.max_concurrent_downloads`` run (a live setting).
* Starting a job is a transition like any other: taken at the model's desk
  (``ledger.py``). A job whose desk is busy is skipped; whoever holds the desk kicks the
  scheduler again when done.
* A running job is one task. Its transfer can be cancelled at any moment (pause, cancel,
  shutdown): the canceller owns the state change that follows. When the transfer ends by
  itself, the task takes the desk and applies the outcome only if the job is still in the
  run that produced it (``Job.run``); otherwise (paused, cancelled or restarted meanwhile)
  the outcome is stale and dropped. Applying an outcome (verify, switch the ref, complete;
  or fail) is never cut off half-way.
* After a failure, partial files stay when the next attempt can use them (a flaky network
  ran out of retries, the disk filled up: the checkpointed bytes are kept for the next
  start) and are removed after anything permanent (a refused source, a missing file, bad
  bytes, a local IO error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from functools import partial

from modeldepot.blocking import finish, run
from modeldepot.config.service import ConfigService
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.ledger import Ledger
from modeldepot.downloads.retry import is_transient
from modeldepot.downloads.runner import BlobRegistry, JobRunner
from modeldepot.downloads.state import DownloadStatus
from modeldepot.errors import DepotError, DiskFull
from modeldepot.events import PROGRESS_HZ
from modeldepot.store.cache import HubCache

logger = logging.getLogger(__name__)
S = DownloadStatus
RefSwitchListener = Callable[[str, str | None, str], Awaitable[None]]
PrepareRunner = Callable[[Job], Awaitable[JobRunner]]
SAVE_EVERY_TICKS = PROGRESS_HZ * 5


class Scheduler:
    def __init__(
        self,
        *,
        ledger: Ledger,
        config: ConfigService,
        prepare: PrepareRunner,
        blobs: BlobRegistry,
        executor: Executor,
        cache: HubCache,
    ) -> None:
        self._ledger = ledger
        self._config = config
        self._prepare = prepare
        self._blobs = blobs
        self._executor = executor
        self._cache = cache
        self._kick_lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ref_listeners: list[RefSwitchListener] = []

    def on_ref_switch(self, listener: RefSwitchListener) -> None:
        """``listener(model_id, previous_commit, new_commit)`` after a download moved a
        ref (revisions keeps the previous commit for a while)."""
        self._ref_listeners.append(listener)

    # --- choosing what runs ------------------------------------------------------------

    async def kick(self) -> None:
        """Start queued jobs while there are free slots."""
        async with self._kick_lock:
            limit = self._config.current.downloads.max_concurrent_downloads
            running = sum(job.task is not None for job in self._ledger.jobs())
            for job in self.queue():
                if running >= limit:
                    break
                if await self._begin(job):
                    running += 1
            self._update_idle()

    def queue(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        queued = (j for j in self._ledger.jobs() if j.status == S.QUEUED and j.task is None)
        return sorted(queued, key=lambda j: (j.priority.rank, j.seq))

    async def _begin(self, job: Job) -> bool:
        desk = self._ledger.desk(job.model_id)
        if desk.locked():
            return False  # an action on this model is under way; it kicks when done
        async with desk:
            if job.status != S.QUEUED or job.task is not None:
                return False
            job.run += 1
            await self._ledger.move(job, S.DOWNLOADING, error_code=None, error_message=None)
            job.task = asyncio.create_task(self._run(job, job.run), name=f"download:{job.id}")
        return True

    def _update_idle(self) -> None:
        busy = any(j.task is not None or j.status == S.QUEUED for j in self._ledger.jobs())
        if busy:
            self._idle.clear()
        else:
            self._idle.set()

    async def run_until_idle(self) -> None:
        """Wait until no job is queued or running (tests and the CLI bound it themselves)."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)
            if self._idle.is_set():
                return

    # --- running one job ---------------------------------------------------------------

    async def _run(self, job: Job, run_id: int) -> None:
        try:
            outcome = await self._transfer(job)
            async with self._ledger.desk(job.model_id):
                if job.run == run_id and job.status == S.DOWNLOADING:
                    await finish(self._conclude(job, outcome))
        finally:
            job.task = None
            if job.fetches:
                job.keep_partial_progress()
        await self.kick()

    async def _transfer(self, job: Job) -> JobRunner | DepotError:
        """Run the transfer; return the runner when every file verified, else the error.
        Cancellation (pause, cancel, shutdown) propagates: the canceller decides."""
        try:
            runner = await self._prepare(job)
            await runner.run()
        except DepotError as error:
            return error
        except Exception as error:  # a bug: fail the job with a generic reason, log it all
            logger.error("Download %s crashed", job.id, exc_info=error)
            return DepotError("Internal error while downloading")
        return runner

    async def _conclude(self, job: Job, outcome: JobRunner | DepotError) -> None:
        if isinstance(outcome, DepotError):
            await self.fail(job, outcome)
            return
        await self._ledger.move(job, S.VERIFYING)
        try:
            previous = await run(self._executor, outcome.publish_ref)
        except DepotError as error:
            await self.fail(job, error)
            return
        await self._ref_switched(job, previous)
        job.keep_partial_progress()
        await self._ledger.move(
            job,
            S.COMPLETED,
            error_code=None,
            error_message=None,
            available_at=datetime.now(UTC).timestamp(),
        )

    async def fail(self, job: Job, error: DepotError) -> None:
        """Record a failure (the caller holds the desk)."""
        if is_transient(error) or isinstance(error, DiskFull):
            job.keep_partial_progress(durable=True)
        else:
            await self.discard_partials(job)
        logger.warning("Download %s of %s failed: %s", job.id, job.model_id, error.message)
        await self._ledger.move(job, S.FAILED, error_code=error.code, error_message=error.message)

    async def _ref_switched(self, job: Job, previous: str | None) -> None:
        if previous == job.commit:
            return
        for listener in self._ref_listeners:
            try:
                await listener(job.model_id, previous, job.commit)
            except Exception:  # the switch happened; a listener's failure must not undo it
                logger.exception("Recording the revision switch of %s failed", job.model_id)

    async def halt(self, job: Job) -> None:
        """Stop the job's transfer, if one runs, and wait until it has (the caller holds
        the desk; the task then finds the job moved on and leaves it alone)."""
        task = job.task
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def discard_partials(self, job: Job) -> None:
        """Remove the job's partial files, except those another job is fetching right now
        (a blob shared with another model is theirs to finish)."""
        remove = partial(self._cache.remove_partials_blocking, job.repo_id)
        for file in job.files:
            if file.digest is None:
                await run(self._executor, remove, (file,))
                continue
            async with self._blobs.try_claim(file.digest, repo_id=job.repo_id) as mine:
                if mine:
                    await run(self._executor, remove, (file,))
        job.forget_partial_progress()

    # --- progress and shutdown ---------------------------------------------------------

    async def run_progress_loop(self) -> None:
        """Announce running jobs' progress at most PROGRESS_HZ times a second each, and
        store it every few seconds."""
        ticks = 0
        while True:
            await asyncio.sleep(1 / PROGRESS_HZ)
            ticks += 1
            for job in [j for j in self._ledger.jobs() if j.status == S.DOWNLOADING]:
                job.meter.sample(job.done_bytes)
                self._ledger.announce(job, final=False)
                if ticks % SAVE_EVERY_TICKS == 0:
                    await finish(self._ledger.save(job))

    async def close(self) -> None:
        """Stop every transfer; statuses stay, so the next start resumes them."""
        running = [job for job in self._ledger.jobs() if job.task is not None]
        for job in running:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(j.task for j in running if j.task), return_exceptions=True)
        for job in running:
            with contextlib.suppress(DepotError):
                await self._ledger.save(job)
