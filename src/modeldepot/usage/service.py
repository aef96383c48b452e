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
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.errors import FeatureDisabled, ModelNotFound, StorageError
from modeldepot.usage.analytics import (
    AnalyticsResponse,
    DateRange,
    Period,
    resolve_range,
    usage_analytics,
)
from modeldepot.usage.schemas import (
    GENERATIONS,
    UsageEvent,
    UsageEventType,
    UsageReportResult,
)
from modeldepot.usage.tables import UsageHourRow, UsageRow

logger = logging.getLogger(__name__)

WINDOW_DAYS = 30
LOADED_TTL = timedelta(hours=24)
PRUNE_SLICE = 10_000
RETENTION_EVERY = timedelta(hours=6)
_EVENTS = cast(Table, UsageRow.__table__)
UsageListener = Callable[[str], Awaitable[None]]


@dataclass
class _ModelUsage:
    last_used: datetime | None = None
    uses_by_day: dict[date, int] = field(default_factory=dict)
    completed_by_day: dict[date, tuple[float, int]] = field(default_factory=dict)
    loaded: dict[str, bool] = field(default_factory=dict)  # client -> loaded
    last_seen: dict[str, datetime] = field(default_factory=dict)  # client -> newest event
    total_uses: int = 0  # every generation that ended, ever (roll-ups outlive the events)

    def apply(
        self, kind: UsageEventType, at: datetime, client: str, duration: float | None
    ) -> None:
        day = at.date()
        if kind in GENERATIONS:
            self.last_used = at if self.last_used is None else max(self.last_used, at)
            self.uses_by_day[day] = self.uses_by_day.get(day, 0) + 1
            self.total_uses += 1
        if kind is UsageEventType.generation_completed and duration is not None:
            total, count = self.completed_by_day.get(day, (0.0, 0))
            self.completed_by_day[day] = (total + duration, count + 1)
        self.see(kind, at, client)

    def see(self, kind: UsageEventType, at: datetime, client: str) -> None:
        """What the event says about the client and whether it has the model loaded."""
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
        enabled: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``enabled()``: whether reports are accepted (``features.usage_analytics``)."""
        self._sessions = sessions
        self._enabled = enabled
        self._model_ids = model_ids
        self._clock = clock
        self._usage: dict[str, _ModelUsage] = {}
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[UsageListener] = []

    def on_change(self, listener: UsageListener) -> None:
        self._listeners.append(listener)

    async def load(self) -> None:
        """Rebuild the figures from the database: the window and the totals from the
        hourly roll-ups (they outlive the raw events), the loaded states from the events of
        the last ``LOADED_TTL``."""
        now = self._clock()
        first_day = now.date() - timedelta(days=WINDOW_DAYS - 1)
        ended = UsageHourRow.completed + UsageHourRow.failed
        async with self._sessions() as session:
            totals = await session.execute(
                select(
                    UsageHourRow.model_id, func.sum(ended), func.max(UsageHourRow.last_at)
                ).group_by(UsageHourRow.model_id)
            )
            for model_id, uses, last in totals:
                usage = self._model(model_id)
                usage.total_uses = int(uses or 0)
                usage.last_used = last  # aware UTC (UtcDateTime)
            days = await session.execute(
                select(
                    UsageHourRow.model_id,
                    UsageHourRow.day,
                    func.sum(ended),
                    func.sum(UsageHourRow.duration_sum),
                    func.sum(UsageHourRow.duration_count),
                )
                .where(UsageHourRow.day >= first_day)
                .group_by(UsageHourRow.model_id, UsageHourRow.day)
            )
            for model_id, day, uses, seconds, count in days:
                usage = self._model(model_id)
                usage.uses_by_day[day] = int(uses or 0)
                if count:
                    usage.completed_by_day[day] = (float(seconds or 0.0), int(count))
            states = await session.execute(
                select(UsageRow.model_id, UsageRow.type, UsageRow.at, UsageRow.client)
                .where(UsageRow.at >= now - LOADED_TTL)
                .order_by(UsageRow.at, UsageRow.seq)
            )
            for model_id, kind, at, client in states:
                self._model(model_id).see(UsageEventType(kind), at, client)

    async def prune(self, retention_days: int) -> int:
        """Delete the raw events older than ``retention_days``; return how many. The
        figures stay: they come from the roll-ups written with the events."""
        cutoff = self._clock() - timedelta(days=retention_days)
        deleted = 0
        while True:  # in slices: a year of events must not hold one huge transaction
            async with self._sessions.begin() as session:
                oldest = (
                    select(UsageRow.seq)
                    .where(UsageRow.at < cutoff)
                    .order_by(UsageRow.seq)
                    .limit(PRUNE_SLICE)
                    .scalar_subquery()
                )
                result = await session.execute(delete(UsageRow).where(UsageRow.seq.in_(oldest)))
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < PRUNE_SLICE:
                return deleted

    def date_range(self, period: Period | None, start: date | None, end: date | None) -> DateRange:
        """The UTC days an analytics query covers (``analytics.resolve_range``)."""
        return resolve_range(period, start, end, today=self._clock().date())

    async def analytics(self, model_ids: Sequence[str], span: DateRange) -> AnalyticsResponse:
        """Usage of ``model_ids`` over ``span``, added up in SQL (``usage/analytics.py``)."""
        return await usage_analytics(self._sessions, model_ids, span)

    async def run_retention_loop(self, retention_days: int) -> None:
        """Prune at start-up, then every ``RETENTION_EVERY``."""
        while True:
            try:
                deleted = await self.prune(retention_days)
            except SQLAlchemyError as exc:
                logger.warning("Pruning old usage events failed (tried again later): %s", exc)
            else:
                if deleted:
                    logger.info(
                        "Deleted %d usage events older than %d days", deleted, retention_days
                    )
            await asyncio.sleep(RETENTION_EVERY.total_seconds())

    def total_uses(self, model_id: str) -> int:
        """Every generation of the model that ended, ever."""
        usage = self._usage.get(model_id)
        return 0 if usage is None else usage.total_uses

    def is_loaded(self, model_id: str) -> bool:
        usage = self._usage.get(model_id)
        return usage is not None and bool(usage.figures(self._clock())["is_loaded"])

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
            FeatureDisabled: ``features.usage_analytics`` is off (nothing stored).
            ModelNotFound: an event names a model outside the catalogue (nothing stored).
            StorageError: the database refused the write (nothing stored).
        """
        if not self._enabled():
            raise FeatureDisabled(
                "Usage analytics are switched off (features.usage_analytics): nothing was recorded"
            )
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
            except SQLAlchemyError:
                # The database's own words (its SQL, the values) go to the log only.
                logger.exception("Storing %d usage reports failed", len(batch))
                error = StorageError("Could not store the usage report (the log has details)")
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
            # One statement, executed over every row: SQLAlchemy sends it in pages
            # ("insertmanyvalues"), under each backend's parameter limit, and compiles it
            # once (a statement per batch size would fill its cache).
            statement = (
                insert(_EVENTS)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(_EVENTS.c.event_id)
            )
            result = await session.execute(statement, list(rows.values()))
            stored = set(result.scalars())
            hours = _hourly([rows[event_id] for event_id in stored])
            if hours:
                await session.execute(_add_hours(insert), hours)
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


def _hourly(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored events added up per model and UTC hour (what ``usage_hours`` gains)."""
    hours: dict[tuple[str, date, int], dict[str, Any]] = {}
    for row in rows:
        at: datetime = row["at"]
        key = (row["model_id"], at.date(), at.hour)
        hour = hours.setdefault(
            key,
            {
                "model_id": key[0],
                "day": key[1],
                "hour": key[2],
                "started": 0,
                "completed": 0,
                "failed": 0,
                "duration_sum": 0.0,
                "duration_count": 0,
                "last_at": None,
            },
        )
        kind = UsageEventType(row["type"])
        if kind is UsageEventType.generation_started:
            hour["started"] += 1
        elif kind in GENERATIONS:
            hour["completed" if kind is UsageEventType.generation_completed else "failed"] += 1
            hour["last_at"] = at if hour["last_at"] is None else max(hour["last_at"], at)
            if kind is UsageEventType.generation_completed and row["duration_seconds"] is not None:
                hour["duration_sum"] += row["duration_seconds"]
                hour["duration_count"] += 1
    return [hour for hour in hours.values() if hour["started"] or hour["last_at"]]


def _add_hours(insert: Any) -> Any:
    """``INSERT ... ON CONFLICT DO UPDATE`` adding an hour's figures to its roll-up row
    (executed over many rows)."""
    statement = insert(UsageHourRow.__table__)
    new, table = statement.excluded, UsageHourRow.__table__.c
    newest = case(
        (table.last_at.is_(None), new.last_at),
        (new.last_at.is_(None), table.last_at),
        (new.last_at > table.last_at, new.last_at),
        else_=table.last_at,
    )
    return statement.on_conflict_do_update(
        index_elements=["model_id", "day", "hour"],
        set_={
            "started": table.started + new.started,
            "completed": table.completed + new.completed,
            "failed": table.failed + new.failed,
            "duration_sum": table.duration_sum + new.duration_sum,
            "duration_count": table.duration_count + new.duration_count,
            "last_at": newest,
        },
    )
