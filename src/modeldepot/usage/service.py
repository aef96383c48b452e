"""Usage events in (group-committed, idempotent), per-model figures out.

``record`` validates a batch against the catalogue, then joins the next write: every batch
waiting while a write runs goes into the following one, in one transaction (cheap under
many small reports, and a report is answered only once it is durable). An ``event_id``
already stored is a duplicate: counted, not applied again.

The figures a status carries (a ``StatusContributor``), kept in memory, rebuilt from the
database at start-up and updated by each write:

- ``last_used``: the newest generation that ended (completed or failed);
- ``usage_frequency``: generations that ended in the last ``WINDOW_DAYS`` (30) UTC days,
  today included, divided by 30: uses per day;
- ``average_generation_time``: the mean ``duration_seconds`` of the completed generations
  in that window (null when none);
- ``is_loaded``: some client's newest ``model_loaded`` / ``model_unloaded`` for the model
  is ``model_loaded`` and that client reported anything about it in the last
  ``LOADED_TTL`` (24 h): an app that crashed without saying ``model_unloaded`` does not
  keep the model "loaded" (and so protected from cleanup) for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime
from modeldepot.errors import ModelNotFound, StorageError
from modeldepot.usage.schemas import (
    GENERATIONS,
    UsageEvent,
    UsageEventType,
    UsageReportResult,
)

logger = logging.getLogger(__name__)

WINDOW_DAYS = 30
LOADED_TTL = timedelta(hours=24)
UsageListener = Callable[[str], Awaitable[None]]


class UsageRow(Base):
    __tablename__ = "usage_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    model_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    client: Mapped[str] = mapped_column(String(64))
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    peak_vram_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass
class _ModelUsage:
    last_used: datetime | None = None
    uses_by_day: dict[date, int] = field(default_factory=dict)
    completed_by_day: dict[date, tuple[float, int]] = field(default_factory=dict)
    loaded: dict[str, bool] = field(default_factory=dict)  # client -> loaded
    last_seen: dict[str, datetime] = field(default_factory=dict)  # client -> newest event

    def apply(
        self, kind: UsageEventType, at: datetime, client: str, duration: float | None
    ) -> None:
        day = at.date()
        if kind in GENERATIONS:
            self.last_used = at if self.last_used is None else max(self.last_used, at)
            self.uses_by_day[day] = self.uses_by_day.get(day, 0) + 1
        if kind is UsageEventType.generation_completed and duration is not None:
            total, count = self.completed_by_day.get(day, (0.0, 0))
            self.completed_by_day[day] = (total + duration, count + 1)
        seen = self.last_seen.get(client)
        if seen is None or at >= seen:
            self.last_seen[client] = at
        if kind is UsageEventType.model_loaded:
            self.loaded[client] = True
        elif kind is UsageEventType.model_unloaded:
            self.loaded[client] = False

    def figures(self, now: datetime) -> dict[str, Any]:
        first_day = now.date() - timedelta(days=WINDOW_DAYS - 1)
        uses = sum(n for day, n in self.uses_by_day.items() if day >= first_day)
        total = count = 0.0
        for day, (seconds, n) in self.completed_by_day.items():
            if day >= first_day:
                total, count = total + seconds, count + n
        loaded = any(
            is_loaded and now - self.last_seen[client] <= LOADED_TTL
            for client, is_loaded in self.loaded.items()
        )
        return {
            "last_used": self.last_used,
            "usage_frequency": round(uses / WINDOW_DAYS, 4),
            "average_generation_time": round(total / count, 3) if count else None,
            "is_loaded": loaded,
        }


@dataclass
class _Waiting:
    events: list[UsageEvent]
    done: asyncio.Future[tuple[int, int]]


class UsageService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        model_ids: Callable[[], Collection[str]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._model_ids = model_ids
        self._clock = clock
        self._usage: dict[str, _ModelUsage] = {}
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[UsageListener] = []

    def on_change(self, listener: UsageListener) -> None:
        self._listeners.append(listener)

    async def load(self) -> None:
        """Rebuild the figures from the database (the window, and the loaded states)."""
        now = self._clock()
        since = datetime.combine(
            now.date() - timedelta(days=WINDOW_DAYS - 1), datetime.min.time(), UTC
        )
        recent = min(since, now - LOADED_TTL)
        async with self._sessions() as session:
            newest = await session.execute(
                select(UsageRow.model_id, func.max(UsageRow.at))
                .where(UsageRow.type.in_([k.value for k in GENERATIONS]))
                .group_by(UsageRow.model_id)
            )
            rows = await session.execute(
                select(
                    UsageRow.model_id,
                    UsageRow.type,
                    UsageRow.at,
                    UsageRow.client,
                    UsageRow.duration_seconds,
                )
                .where(UsageRow.at >= recent)
                .order_by(UsageRow.at, UsageRow.seq)
            )
            for model_id, kind, at, client, duration in rows:
                self._model(model_id).apply(UsageEventType(kind), _utc(at), client, duration)
            for model_id, last in newest:
                self._model(model_id).last_used = _utc(last)

    def last_use(self, model_id: str) -> tuple[datetime | None, float]:
        """The model's last use and uses per day (what storage tiers are made of)."""
        usage = self._usage.get(model_id)
        if usage is None:
            return None, 0.0
        figures = usage.figures(self._clock())
        return figures["last_used"], figures["usage_frequency"]

    def contribute(self, model_id: str, fields: dict[str, Any]) -> None:
        usage = self._usage.get(model_id)
        if usage is not None:
            fields.update(usage.figures(self._clock()))

    async def record(self, events: list[UsageEvent]) -> UsageReportResult:
        """Store ``events`` (durably, before answering) and update the figures.

        Raises:
            ModelNotFound: an event names a model outside the catalogue (nothing stored).
            StorageError: the database refused the write (nothing stored).
        """
        known = self._model_ids()
        for event in events:
            if event.model_id not in known:
                raise ModelNotFound(event.model_id)
        waiting = _Waiting(events, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        accepted, duplicates = await asyncio.shield(waiting.done)
        return UsageReportResult(success=True, accepted=accepted, duplicates=duplicates)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                changed = await self._write(batch)
            except SQLAlchemyError as exc:
                error = StorageError(f"Could not store the usage report: {exc}")
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(error)
                continue
            for model_id in sorted(changed):
                for listener in self._listeners:
                    try:
                        await listener(model_id)
                    except Exception:  # a listener's failure must not lose the reports
                        logger.exception("Usage listener failed for %s", model_id)

    async def _write(self, batch: list[_Waiting]) -> set[str]:
        now = self._clock()
        rows: dict[str, dict[str, Any]] = {}
        for waiting in batch:
            for event in waiting.events:
                rows.setdefault(
                    event.event_id,
                    {
                        "event_id": event.event_id,
                        "model_id": event.model_id,
                        "type": event.type.value,
                        # A reporter's clock ahead of ours: the time it reached us.
                        "at": min(event.at or now, now).astimezone(UTC),
                        "client": event.client,
                        "duration_seconds": event.duration_seconds,
                        "parameters": event.parameters.model_dump(exclude_none=True)
                        if event.parameters
                        else None,
                        "peak_vram_gb": event.peak_vram_gb,
                        "received_at": now,
                    },
                )
        async with self._sessions.begin() as session:
            insert = (
                postgresql_insert
                if session.get_bind().dialect.name == "postgresql"
                else sqlite_insert
            )
            statement = (
                insert(UsageRow)
                .values(list(rows.values()))
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(UsageRow.event_id)
            )
            stored = set((await session.execute(statement)).scalars())
        changed: set[str] = set()
        claimed: set[str] = set()
        for waiting in batch:
            accepted = 0
            for event in waiting.events:
                if event.event_id in stored and event.event_id not in claimed:
                    claimed.add(event.event_id)
                    accepted += 1
                    row = rows[event.event_id]
                    self._model(event.model_id).apply(
                        event.type, row["at"], event.client, event.duration_seconds
                    )
                    changed.add(event.model_id)
            if not waiting.done.done():
                waiting.done.set_result((accepted, len(waiting.events) - accepted))
        return changed

    def _model(self, model_id: str) -> _ModelUsage:
        return self._usage.setdefault(model_id, _ModelUsage())


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
