"""The wait queue: generation requests held until their model is in.

An entry is ``WAITING`` while its model is not available; queuing for a model that is
neither available nor downloading starts its download at the entry's priority. When the
model becomes available, its waiting entries turn ``READY`` (in priority, then arrival
order) and ``queue_entry_change`` goes out on the WebSocket; the app that runs
generations then claims an entry, exactly once (the claim is one conditional ``UPDATE``:
of two concurrent claims one wins, the other gets 409). An entry ends ``CLAIMED``,
``CANCELLED``, ``EXPIRED`` (waited past ``max_wait_time_minutes``, or READY and not claimed
within ``queue_claim_timeout_minutes``) or ``FAILED`` (its model's download failed; the
entry carries fallback suggestions). Entries live in the database: a restart loses
nothing, and on start-up entries whose model is available turn READY. Ended entries are
kept ``KEEP_ENDED`` (7 days), then forgotten.

Transitions are checked when a download of the model changes state, when the model's
availability changes (a repair, a rollback, files copied in: the queue's loop is woken),
and every :data:`TICK_SECONDS` (expiry; and a backstop for everything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.schemas import AvailabilityStatus
from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.service import CatalogService
from modeldepot.downloads.schemas import DownloadAction, ManageRequest, Priority
from modeldepot.downloads.service import DownloadService
from modeldepot.downloads.state import DownloadStatus
from modeldepot.errors import (
    DownloadInProgress,
    FeatureDisabled,
    InvalidInput,
    QueueEntryNotFound,
    QueueEntryNotReady,
    UpstreamUnavailable,
)
from modeldepot.events import EventBus, QueueEntryChange
from modeldepot.fallback.callbacks import CallbackSender
from modeldepot.fallback.queue_schemas import (
    NOTIFIED,
    OPEN,
    CallbackStatus,
    QueueEntry,
    QueueRequest,
    QueueResponse,
    QueueStatus,
)
from modeldepot.fallback.queue_tables import QueueRow, to_entry

logger = logging.getLogger(__name__)

TICK_SECONDS = 10.0
KEEP_ENDED = timedelta(days=7)
Suggest = Callable[[str], Awaitable[list[dict[str, Any]] | None]]


class WaitQueue:
    def __init__(
        self,
        *,
        catalog: CatalogService,
        availability: AvailabilityService,
        downloads: DownloadService,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        claim_timeout: timedelta,
        suggest: Suggest,
        callbacks: CallbackSender,
        enabled: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``suggest(model_id)``: alternatives for a model whose download failed (None when
        suggestions are off); ``enabled()``: whether new entries are accepted
        (``features.intelligent_fallback``)."""
        self._catalog = catalog
        self._availability = availability
        self._downloads = downloads
        self._bus = bus
        self._sessions = sessions
        self._claim_timeout = claim_timeout
        self._suggest = suggest
        self.callbacks = callbacks
        self._enabled = enabled
        self._clock = clock
        self._lock = asyncio.Lock()  # one transition sweep at a time
        self._seq = 0
        self._waiting_models: set[str] = set()
        self._changed: set[str] = set()  # waited-for models whose availability changed
        self._wake = asyncio.Event()

    async def load(self) -> None:
        async with self._sessions() as session:
            self._seq = int(await session.scalar(select(func.max(QueueRow.seq))) or 0)
            rows = await session.scalars(
                select(QueueRow.model_id).where(QueueRow.status == QueueStatus.WAITING.value)
            )
            self._waiting_models = set(rows)
        await self.tick()

    def is_waited_for(self, model_id: str) -> str | None:
        """A cleanup protection: why the model must stay, or None."""
        return "Waited for by the wait queue" if model_id in self._waiting_models else None

    # --- the seed's operation ----------------------------------------------------------

    async def enqueue(self, request: QueueRequest) -> QueueResponse:
        """Raises ModelNotFound, InvalidModelId; UnsafeSource, InvalidInput (a callback
        URL refused or not resolving); InsufficientStorage and the other errors of starting
        a download (nothing is queued then); FeatureDisabled while
        ``features.intelligent_fallback`` is off."""
        if not self._enabled():
            raise FeatureDisabled(
                "The wait queue takes no new entries while features.intelligent_fallback "
                "is off (entries already queued keep their course)"
            )
        entry = self._catalog.get(request.model_id)
        if request.callback is not None:
            try:
                await self.callbacks.check(request.callback.url)
            except UpstreamUnavailable as exc:
                raise InvalidInput(
                    f"The callback URL cannot be used: {exc.message}",
                    details={"field": "callback.url"},
                ) from exc
        status = await self._availability.status(entry.id)
        started = False
        if not status.is_available and not self._downloads.is_active(entry.id):
            start = ManageRequest(
                model_id=entry.id, action=DownloadAction.start, priority=request.priority
            )
            with contextlib.suppress(DownloadInProgress):  # a race with another start
                answer = await self._downloads.start(start)
                started = answer.download_id is not None
        now = self._clock()
        ready = status.is_available
        async with self._lock:
            self._seq += 1
            row = QueueRow(
                queue_id=f"queue_{secrets.token_hex(8)}",
                seq=self._seq,
                model_id=entry.id,
                request=request.request.model_dump(),
                priority=request.priority.value,
                status=(QueueStatus.READY if ready else QueueStatus.WAITING).value,
                created_at=now,
                wait_until=None
                if request.max_wait_time_minutes is None
                else now + timedelta(minutes=request.max_wait_time_minutes),
                ready_at=now if ready else None,
                claim_until=now + self._claim_timeout if ready else None,
                callback_url=None if request.callback is None else request.callback.url,
                callback_secret=None if request.callback is None else request.callback.secret,
                callback_attempts=0,
            )
            if ready and request.callback is not None:
                row.callback_status = CallbackStatus.PENDING.value
                row.callback_next_at = now
            async with self._sessions.begin() as session:
                session.add(row)
            if not ready:
                self._waiting_models.add(entry.id)
        if ready:
            self._publish(row)
            self.callbacks.wake()
        described = await self._describe(row)
        return QueueResponse(
            success=True,
            queue_id=row.queue_id,
            position=described.position,
            estimated_wait_time_minutes=described.estimated_wait_time_minutes,
            estimated_start_time=described.estimated_start_time,
            status=described.status,
            download_started=started,
        )

    # --- extensions: look, cancel, claim -----------------------------------------------

    async def get(self, queue_id: str) -> QueueEntry:
        return await self._describe(await self._row(queue_id))

    async def entries(
        self, *, model_id: str | None, status: QueueStatus | None
    ) -> list[QueueEntry]:
        query = select(QueueRow).order_by(QueueRow.seq)
        if model_id is not None:
            query = query.where(QueueRow.model_id == model_id)
        if status is not None:
            query = query.where(QueueRow.status == status.value)
        async with self._sessions() as session:
            rows = list((await session.scalars(query)).all())
        return await self._describe_all(rows)

    async def claim(self, queue_id: str, *, worker: str | None = None) -> QueueEntry:
        """Take a READY entry to run it: exactly one caller succeeds.

        Raises:
            QueueEntryNotFound; QueueEntryNotReady (waiting, claimed or ended).
        """
        now = self._clock()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(QueueRow)
                .where(
                    QueueRow.queue_id == queue_id,
                    QueueRow.status == QueueStatus.READY.value,
                )
                .values(
                    status=QueueStatus.CLAIMED.value,
                    ended_at=now,
                    reason=f"Claimed by {worker}" if worker else "Claimed",
                )
            )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            row = await self._row(queue_id)
            raise QueueEntryNotReady(
                f"Queue entry {queue_id} is {row.status}, not READY",
                details={"queue_id": queue_id, "status": row.status},
            )
        row = await self._row(queue_id)
        self._publish(row)
        return await self._describe(row)

    async def cancel(self, queue_id: str) -> QueueEntry:
        """Raises QueueEntryNotFound; QueueEntryNotReady for an entry already ended."""
        row = await self._end(queue_id, QueueStatus.CANCELLED, "Cancelled", only=OPEN)
        return await self._describe(row)

    # --- transitions ---------------------------------------------------------------------

    async def on_download_change(self, model_id: str) -> None:
        if model_id in self._waiting_models:
            await self._advance(model_id)

    async def tick(self) -> None:
        """Expire what is due, turn READY the entries whose model is in, and forget
        entries ended more than ``KEEP_ENDED`` ago."""
        for model_id in sorted(self._waiting_models):
            await self._advance(model_id)
        now = self._clock()
        async with self._sessions.begin() as session:
            await session.execute(delete(QueueRow).where(QueueRow.ended_at < now - KEEP_ENDED))
        async with self._sessions() as session:
            due = list(
                (
                    await session.scalars(
                        select(QueueRow).where(
                            QueueRow.status.in_([s.value for s in OPEN]),
                            (QueueRow.wait_until < now) | (QueueRow.claim_until < now),
                        )
                    )
                ).all()
            )
        for row in due:
            why = (
                "Not claimed within the claim time-out"
                if row.status == QueueStatus.READY.value
                else "Waited longer than max_wait_time_minutes"
            )
            with contextlib.suppress(QueueEntryNotReady):
                await self._end(row.queue_id, QueueStatus.EXPIRED, why, only=OPEN)

    def on_availability_change(self, model_id: str, status: AvailabilityStatus) -> None:
        """Availability listener: a waited-for model that became available is looked at
        by the loop at once."""
        if status is AvailabilityStatus.AVAILABLE and model_id in self._waiting_models:
            self._changed.add(model_id)
            self._wake.set()

    async def run_loop(self) -> None:
        """``tick`` every TICK_SECONDS; in between, advance the models whose
        availability changed as soon as they do."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            if loop.time() >= next_tick:
                await self.tick()
                next_tick = loop.time() + TICK_SECONDS
            changed, self._changed = self._changed, set()
            for model_id in sorted(changed):
                await self._advance(model_id)
            if self._changed:
                continue
            self._wake.clear()  # no await since _changed was read: no wake is lost
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - loop.time())):
                    await self._wake.wait()

    async def _advance(self, model_id: str) -> None:
        # The status as availability keeps it (a download's transitions re-judge the
        # model before this listener runs; the watch loop sees outside changes).
        status = await self._availability.status(model_id)
        if status.is_available:
            await self._turn_ready(model_id)
            return
        job = self._downloads.job(model_id)
        if job is not None and job.status == DownloadStatus.FAILED:
            suggestions = await self._suggest(model_id)
            why = f"The download of {model_id} failed: {job.error_message or job.error_code}"
            for row in await self._open_rows(model_id, QueueStatus.WAITING):
                with contextlib.suppress(QueueEntryNotReady):
                    await self._end(
                        row.queue_id,
                        QueueStatus.FAILED,
                        why,
                        only=frozenset({QueueStatus.WAITING}),
                        suggestions=suggestions,
                    )
            self._waiting_models.discard(model_id)

    async def _turn_ready(self, model_id: str) -> None:
        async with self._lock:
            rows = await self._open_rows(model_id, QueueStatus.WAITING)
            rows.sort(key=lambda r: (Priority(r.priority).rank, r.seq))
            now = self._clock()
            async with self._sessions.begin() as session:
                for row in rows:
                    await session.execute(
                        update(QueueRow)
                        .where(
                            QueueRow.queue_id == row.queue_id,
                            QueueRow.status == QueueStatus.WAITING.value,
                        )
                        .values(
                            status=QueueStatus.READY.value,
                            ready_at=now,
                            claim_until=now + self._claim_timeout,
                            **_notification(now),
                        )
                    )
            self._waiting_models.discard(model_id)
        for row in rows:
            self._publish(await self._row(row.queue_id))
        if rows:
            self.callbacks.wake()

    async def _end(
        self,
        queue_id: str,
        status: QueueStatus,
        reason: str,
        *,
        only: frozenset[QueueStatus],
        suggestions: list[dict[str, Any]] | None = None,
    ) -> QueueRow:
        now = self._clock()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(QueueRow)
                .where(
                    QueueRow.queue_id == queue_id,
                    QueueRow.status.in_([s.value for s in only]),
                )
                .values(
                    status=status.value,
                    reason=reason,
                    ended_at=now,
                    suggestions=suggestions,
                    **(_notification(now) if status in NOTIFIED else {}),
                )
            )
        row = await self._row(queue_id)
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            raise QueueEntryNotReady(
                f"Queue entry {queue_id} is {row.status}: it cannot become {status.value}",
                details={"queue_id": queue_id, "status": row.status},
            )
        self._publish(row)
        if status in NOTIFIED and row.callback_url is not None:
            self.callbacks.wake()
        return row

    # --- reading -----------------------------------------------------------------------

    async def _row(self, queue_id: str) -> QueueRow:
        async with self._sessions() as session:
            row = await session.get(QueueRow, queue_id)
        if row is None:
            raise QueueEntryNotFound(f"No queue entry {queue_id}", details={"queue_id": queue_id})
        return row

    async def _open_rows(self, model_id: str, status: QueueStatus) -> list[QueueRow]:
        async with self._sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(QueueRow).where(
                            QueueRow.model_id == model_id, QueueRow.status == status.value
                        )
                    )
                ).all()
            )

    async def _describe(self, row: QueueRow) -> QueueEntry:
        (entry,) = await self._describe_all([row])
        return entry

    async def _describe_all(self, rows: list[QueueRow]) -> list[QueueEntry]:
        """Entries with positions and estimates: one look at each waited-for model's
        queue and status, however many of its entries are listed."""
        positions: dict[str, int] = {}
        etas: dict[str, float | None] = {}
        for model_id in {r.model_id for r in rows if r.status == QueueStatus.WAITING.value}:
            waiting = await self._open_rows(model_id, QueueStatus.WAITING)
            waiting.sort(key=lambda r: (Priority(r.priority).rank, r.seq))
            positions |= {r.queue_id: n for n, r in enumerate(waiting, start=1)}
            etas[model_id] = (await self._availability.status(model_id)).estimated_download_time
        now = self._clock()
        return [
            to_entry(row, positions.get(row.queue_id), etas.get(row.model_id), now) for row in rows
        ]

    def _publish(self, row: QueueRow) -> None:
        self._bus.publish(
            QueueEntryChange(
                queue_id=row.queue_id,
                model_id=row.model_id,
                status=row.status,
                reason=row.reason,
            )
        )


def _notification(now: datetime) -> dict[str, Any]:
    """Column values that start a new callback notification, for rows with a callback."""
    has_callback = QueueRow.callback_url.is_not(None)
    return {
        "callback_status": case((has_callback, CallbackStatus.PENDING.value), else_=None),
        "callback_attempts": 0,
        "callback_next_at": now,  # read only while PENDING
        "callback_error": None,
        "callback_delivered_at": None,
    }
