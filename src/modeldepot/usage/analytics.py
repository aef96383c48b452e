"""Usage analytics (``GET /models/analytics[/{model_id}]``), added up in SQL.

The figures come from the hourly roll-ups (``usage_hours``), written with the events and
kept after the raw events are pruned; every day and hour is a UTC one.

- The range: ``period`` (``day``: today; ``week``: the last 7 days; ``month``: the last
  30; ``year``: the last 365, each ending today), or ``start_date`` / ``end_date``
  (inclusive; one alone: the other is 29 days away, or today), never both. Default: month.
  Any length: the cost is that of the data in it, and only 30 daily rows are listed.
- A *use* is a generation that ended (completed or failed). ``uses_per_day``: uses over
  the days of the range. ``average_generation_time``: mean duration of the completed
  generations. ``success_rate``: completed over ended (null without uses).
- ``last_30_days_usage``: one row per day of the last 30 days of the range (fewer if the
  range is shorter), days without use included with 0.
- ``peak_usage_hours``: the (at most 5) UTC hours of the day with the most uses in the
  range, busiest first (ties: earlier hour first).
- ``summary``: over the models listed; ``average_success_rate`` is weighted (completed
  over ended across them); ``most_used_model`` / ``least_used_model`` among the models
  used in the range (ties: the smaller id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.errors import InvalidInput
from modeldepot.usage.tables import UsageHourRow

DAILY_ROWS = 30
PEAK_HOURS = 5


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    year = "year"


PERIOD_DAYS = {Period.day: 1, Period.week: 7, Period.month: 30, Period.year: 365}


@dataclass(frozen=True)
class DateRange:
    """UTC days, both ends included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def last_days(self, count: int) -> list[date]:
        first = max(self.start, days_before(self.end, count - 1))
        return [first + timedelta(days=n) for n in range((self.end - first).days + 1)]


def days_before(day: date, count: int) -> date:
    """``day`` minus ``count`` days, never before the first representable day."""
    return day - timedelta(days=min(count, (day - date.min).days))


def resolve_range(
    period: Period | None, start: date | None, end: date | None, *, today: date
) -> DateRange:
    """The days a query covers (see the module docstring).

    Raises:
        InvalidInput: ``period`` with dates, or ``start_date`` after ``end_date``.
    """
    if period is not None and (start is not None or end is not None):
        raise InvalidInput(
            "Give either period or start_date/end_date, not both",
            details={"period": period.value},
        )
    if start is None and end is None:
        days = PERIOD_DAYS[period or Period.month]
        return DateRange(days_before(today, days - 1), today)
    if start is None:
        assert end is not None
        start = days_before(end, PERIOD_DAYS[Period.month] - 1)
    if end is None:
        end = today
    if start > end:
        raise InvalidInput(
            f"start_date {start} is after end_date {end}",
            details={"start_date": start.isoformat(), "end_date": end.isoformat()},
        )
    return DateRange(start, end)


class DayUsage(BaseModel):
    date: date
    uses: int = Field(description="Generations that ended that UTC day")
    avg_time: float | None = Field(
        description="Mean duration of that day's completed generations, seconds"
    )


class ModelAnalytics(BaseModel):
    model_id: str
    total_uses: int = Field(description="Generations that ended (completed or failed)")
    uses_per_day: float = Field(description="total_uses over the days of the range")
    average_generation_time: float | None = Field(
        description="Mean duration of the completed generations, seconds; null: none"
    )
    success_rate: float | None = Field(description="Completed over ended; null: no use")
    last_30_days_usage: list[DayUsage] = Field(
        description="The last 30 days of the range, one row per UTC day, zeros included"
    )
    peak_usage_hours: list[int] = Field(
        description="Up to 5 UTC hours (0-23) with the most uses, busiest first"
    )
    # --- extensions -------------------------------------------------------------------
    completed: int
    failed: int
    started: int = Field(description="generation_started events reported in the range")
    last_used: datetime | None = Field(description="The newest use in the range")


class AnalyticsSummary(BaseModel):
    total_generations: int
    total_models_used: int
    average_success_rate: float | None = Field(
        description="Completed over ended across the models (weighted); null: no use"
    )
    most_used_model: str | None
    least_used_model: str | None = Field(description="Among the models used in the range")


class AnalyticsRange(BaseModel):
    start_date: date
    end_date: date
    days: int
    time_zone: str = "UTC"


class AnalyticsResponse(BaseModel):
    models: dict[str, ModelAnalytics]
    summary: AnalyticsSummary
    range: AnalyticsRange = Field(description="The UTC days covered (extension)")


@dataclass
class _Totals:
    completed: int = 0
    failed: int = 0
    started: int = 0
    seconds: float = 0.0
    timed: int = 0
    last: datetime | None = None
    days: dict[date, tuple[int, float, int]] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)


async def usage_analytics(
    sessions: async_sessionmaker[AsyncSession], model_ids: Sequence[str], span: DateRange
) -> AnalyticsResponse:
    """Every model of ``model_ids`` (in that order), used or not, over ``span``."""
    totals = await _query(sessions, model_ids, span)
    daily = span.last_days(DAILY_ROWS)
    models = {
        model_id: _model(model_id, totals.get(model_id, _Totals()), span, daily)
        for model_id in model_ids
    }
    return AnalyticsResponse(
        models=models,
        summary=_summary(list(models.values())),
        range=AnalyticsRange(start_date=span.start, end_date=span.end, days=span.days),
    )


@dataclass(frozen=True)
class DayTotals:
    """One model's generations on one UTC day, added up from its hourly roll-ups."""

    model_id: str
    day: date
    completed: int
    failed: int
    started: int
    seconds: float
    timed: int
    last: datetime | None


async def daily_totals(
    session: AsyncSession, span: DateRange, where: Sequence[ColumnElement[bool]] = ()
) -> list[DayTotals]:
    """Per model and UTC day of ``span`` (and ``where``), in SQL (a group-by)."""
    h = UsageHourRow
    rows = await session.execute(
        select(
            h.model_id,
            h.day,
            func.sum(h.completed),
            func.sum(h.failed),
            func.sum(h.started),
            func.sum(h.duration_sum),
            func.sum(h.duration_count),
            func.max(h.last_at),
        )
        .where(h.day >= span.start, h.day <= span.end, *where)
        .group_by(h.model_id, h.day)
    )
    return [
        DayTotals(
            model_id=model_id,
            day=day,
            completed=int(completed),
            failed=int(failed),
            started=int(started),
            seconds=float(seconds),
            timed=int(timed),
            last=last,  # aware UTC: max() keeps the column's UtcDateTime type
        )
        for model_id, day, completed, failed, started, seconds, timed, last in rows
    ]


async def _query(
    sessions: async_sessionmaker[AsyncSession], model_ids: Sequence[str], span: DateRange
) -> dict[str, _Totals]:
    h = UsageHourRow
    where: list[ColumnElement[bool]] = []
    if len(model_ids) == 1:  # one model's page: its primary-key prefix
        where.append(h.model_id == model_ids[0])
    wanted = set(model_ids)
    totals: dict[str, _Totals] = defaultdict(_Totals)
    async with sessions() as session:
        by_day = await daily_totals(session, span, where)
        for row in by_day:
            if row.model_id not in wanted:
                continue
            t = totals[row.model_id]
            t.completed += row.completed
            t.failed += row.failed
            t.started += row.started
            t.seconds += row.seconds
            t.timed += row.timed
            if row.last is not None:
                t.last = row.last if t.last is None else max(t.last, row.last)
            t.days[row.day] = (row.completed + row.failed, row.seconds, row.timed)
        by_hour = await session.execute(
            select(h.model_id, h.hour, func.sum(h.completed + h.failed))
            .where(h.day >= span.start, h.day <= span.end, *where)
            .group_by(h.model_id, h.hour)
        )
        for model_id, hour, uses in by_hour:
            if model_id in wanted and uses:
                totals[model_id].hours[int(hour)] = int(uses)
    return totals


def _model(model_id: str, t: _Totals, span: DateRange, daily: list[date]) -> ModelAnalytics:
    uses = t.completed + t.failed
    rows = []
    for day in daily:
        count, seconds, timed = t.days.get(day, (0, 0.0, 0))
        rows.append(
            DayUsage(date=day, uses=count, avg_time=round(seconds / timed, 3) if timed else None)
        )
    peaks = sorted(t.hours.items(), key=lambda item: (-item[1], item[0]))[:PEAK_HOURS]
    return ModelAnalytics(
        model_id=model_id,
        total_uses=uses,
        uses_per_day=round(uses / span.days, 4),
        average_generation_time=round(t.seconds / t.timed, 3) if t.timed else None,
        success_rate=round(t.completed / uses, 4) if uses else None,
        last_30_days_usage=rows,
        peak_usage_hours=[hour for hour, _count in peaks],
        completed=t.completed,
        failed=t.failed,
        started=t.started,
        last_used=t.last,
    )


def _summary(models: list[ModelAnalytics]) -> AnalyticsSummary:
    used = sorted((m for m in models if m.total_uses), key=lambda m: (-m.total_uses, m.model_id))
    ended = sum(m.total_uses for m in used)
    completed = sum(m.completed for m in used)
    least = min(used, key=lambda m: (m.total_uses, m.model_id)) if used else None
    return AnalyticsSummary(
        total_generations=ended,
        total_models_used=len(used),
        average_success_rate=round(completed / ended, 4) if ended else None,
        most_used_model=used[0].model_id if used else None,
        least_used_model=least.model_id if least else None,
    )
