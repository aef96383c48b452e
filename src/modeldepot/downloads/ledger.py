"""The ledger: every download job in memory, and the one place a job's status changes.

* **One desk per model.** Every action on a model (start, pause, resume, cancel, update,
  the scheduler starting it, a transfer reporting its outcome) holds the model's desk
  lock while it decides and acts, so concurrent requests on one model are ordered and
  each sees the status the previous one produced.
* **Stored before visible.** A transition is written to the database first (under the
  job's save lock, so a progress save can never overwrite a newer status with an older
  one) and only then applied in memory, announced (``model_download_progress``, final)
  and re-judged by the availability service. No answer ever shows a state that a crash
  right after would lose.
* **Waiting, not polling.** :meth:`Ledger.wait` returns when a job reaches a final state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.downloads import repo
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.state import DownloadStatus
from modeldepot.errors import DownloadNotFound
from modeldepot.events import DownloadProgress, EventBus

StatusListener = Callable[[str], Awaitable[None]]


class Ledger:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> None:
        self._sessions = sessions
        self._bus = bus
        self._jobs: dict[str, Job] = {}
        self._latest: dict[str, Job] = {}
        self._desks: dict[str, asyncio.Lock] = {}
        self._listeners: list[StatusListener] = []
        self.seq = 0

    def on_status_change(self, listener: StatusListener) -> None:
        """``listener(model_id)`` after each transition (availability re-judges the model)."""
        self._listeners.append(listener)

    # --- looking up --------------------------------------------------------------------

    def desk(self, model_id: str) -> asyncio.Lock:
        """The lock every action on ``model_id`` holds while it decides and acts."""
        lock = self._desks.get(model_id)
        if lock is None:
            lock = self._desks[model_id] = asyncio.Lock()
        return lock

    def latest(self, model_id: str) -> Job | None:
        return self._latest.get(model_id)

    def active(self, model_id: str) -> Job | None:
        job = self._latest.get(model_id)
        return job if job is not None and job.status.is_active else None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def get(self, download_id: str) -> Job | None:
        return self._jobs.get(download_id)

    def remember(self, job: Job) -> None:
        """Index a job (loaded at start-up or just stored); older finished ones are let go."""
        previous = self._latest.get(job.model_id)
        if previous is not None and previous.id != job.id and previous.status.is_terminal:
            self._jobs.pop(previous.id, None)
        self._jobs[job.id] = job
        if previous is None or job.seq >= previous.seq:
            self._latest[job.model_id] = job
        if job.status.is_terminal:
            job.finished.set()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # --- changing ----------------------------------------------------------------------

    async def add(self, job: Job) -> None:
        """Store a new job, then make it visible (the caller holds the model's desk)."""
        await self.save(job)
        self.remember(job)
        self.announce(job)
        await self._notify(job.model_id)

    async def move(self, job: Job, status: DownloadStatus, **changes: Any) -> None:
        """Transition ``job`` to ``status`` with field ``changes``: stored, then applied,
        then announced. The caller holds the model's desk and has planned the move.

        Raises:
            IllegalTransition: the move is not in the table (a bug in the caller).
        """
        async with job.save_lock:
            preview = replace(job, **changes)
            if preview.status != status:
                preview.move_to(status)
            await self._store(preview)
            for name in ("status", "started_at", "finished_at", *changes):
                setattr(job, name, getattr(preview, name))
        if status != DownloadStatus.DOWNLOADING:
            job.meter.reset()
        if job.status.is_terminal:
            job.finished.set()
        self.announce(job)
        await self._notify(job.model_id)

    async def save(self, job: Job) -> None:
        """Store the job's fields as they are now (progress, priority, retries)."""
        async with job.save_lock:
            await self._store(job)

    async def _store(self, job: Job) -> None:
        async with self._sessions() as session, session.begin():
            await repo.save(session, job.to_row())

    def announce(self, job: Job, *, final: bool = True) -> None:
        self._bus.publish(DownloadProgress.build(job, final=final))

    async def _notify(self, model_id: str) -> None:
        for listener in self._listeners:
            await listener(model_id)

    # --- waiting -----------------------------------------------------------------------

    async def wait(self, download_id: str) -> Job:
        """Wait until the job ``download_id`` is completed, failed or cancelled.

        Raises:
            DownloadNotFound: no such job is known to this process.
        """
        job = self._jobs.get(download_id)
        if job is None:
            raise DownloadNotFound(
                f"No download '{download_id}'", details={"download_id": download_id}
            )
        await job.finished.wait()
        return job
