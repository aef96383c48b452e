"""Performance analytics (``GET /models/analytics/performance``): trends from real
generation times, health checks and revisions, and the system's download and health record.

Per model, over UTC days (the last 7 and the last 30, today included), from the usage
roll-ups:

- ``last_7_days_avg`` / ``last_30_days_avg``: mean duration of completed generations,
  seconds (null: none).
- ``trend``: with at least :data:`MIN_GENERATIONS` completed generations in both windows,
  the ratio 7-day / 30-day mean: at most ``0.9`` (10 % faster) ``improving``, at least
  ``1.1`` (10 % slower) ``degrading``, else ``stable``; fewer: ``insufficient_data``.
- ``current_score`` (0 to 1): the product of the 7-day success rate (completed over ended;
  else the 30-day one), the newest health check's integrity and performance scores (a
  corrupted model scores 0), and ``min(1, 30-day mean / 7-day mean)`` (slower lately scores
  lower); a missing part counts 1.
- ``performance_issues`` and ``recommendations``: sentences from those figures, the newest
  health check (state, read throughput against the model's usual one) and the status
  (an update available, never checked).

``system_performance``, over the last 30 days: ``download_success_rate`` (completed over
completed and failed; cancelled ones do not count), ``average_download_speed_mbps`` (bytes
fetched over the time from start to finish of completed downloads, 10^6 bytes/s),
``health_check_success_rate`` (checks that found the model healthy over finished checks),
and ``overall_score``, the mean of those rates and the models' mean ``current_score``.
Nulls mean "nothing to measure yet", never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.schemas import ModelStatus
from modeldepot.downloads.models import DownloadRow
from modeldepot.health.models import HealthCheckRow
from modeldepot.usage.analytics import DateRange, daily_totals

MIN_GENERATIONS = 5
IMPROVING, DEGRADING = 0.9, 1.1
LOW_SUCCESS = 0.9
SLOW_READ = 0.5
WINDOW_DAYS = 30

Trend = Literal["stable", "improving", "degrading", "insufficient_data"]


class ModelPerformance(BaseModel):
    current_score: float | None = Field(description="0 to 1 (see the module docs)")
    trend: Trend
    last_7_days_avg: float | None = Field(description="Mean generation time, seconds")
    last_30_days_avg: float | None = Field(description="Mean generation time, seconds")
    performance_issues: list[str]
    recommendations: list[str]
    # --- extensions -------------------------------------------------------------------
    generations_7_days: int = Field(description="Completed generations, last 7 days")
    generations_30_days: int
    success_rate_7_days: float | None
    success_rate_30_days: float | None
    last_health_check: datetime | None
    overall_health: str | None = Field(description="The newest finished check's verdict")
    read_mbps: float | None = Field(description="Read throughput of the newest check")


class SystemPerformance(BaseModel):
    overall_score: float | None
    download_success_rate: float | None
    average_download_speed_mbps: float | None
    health_check_success_rate: float | None
    # --- extensions -------------------------------------------------------------------
    downloads_completed: int
    downloads_failed: int
    health_checks: int
    window_days: int = WINDOW_DAYS


class PerformanceResponse(BaseModel):
    performance_trends: dict[str, ModelPerformance]
    system_performance: SystemPerformance


@dataclass
class _Window:
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    timed: int = 0

    @property
    def mean(self) -> float | None:
        return self.seconds / self.timed if self.timed else None

    @property
    def success(self) -> float | None:
        ended = self.completed + self.failed
        return self.completed / ended if ended else None


@dataclass(frozen=True)
class _Check:
    at: datetime | None
    overall: str | None
    integrity: float | None
    performance: float | None
    read_mbps: float | None
    baseline_read_mbps: float | None


async def measured_download_speed(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime
) -> float | None:
    """Bytes/s of the downloads completed over the last ``WINDOW_DAYS`` days (None: none)."""
    async with sessions() as session:
        _completed, _failed, speed = await download_record(
            session, now - timedelta(days=WINDOW_DAYS)
        )
    return speed


async def performance(
    sessions: async_sessionmaker[AsyncSession],
    statuses: Mapping[str, ModelStatus],
    *,
    now: datetime,
) -> PerformanceResponse:
    """Trends of every model of ``statuses`` and the system's record (module docs)."""
    today = now.date()
    since = datetime.combine(today - timedelta(days=WINDOW_DAYS - 1), datetime.min.time(), UTC)
    async with sessions() as session:
        week, month = await _windows(session, today)
        checks = await _latest_checks(session, since)
        system = await _system(session, since)
    trends = {
        model_id: _model(
            model_id,
            status,
            week.get(model_id, _Window()),
            month.get(model_id, _Window()),
            checks.get(model_id),
        )
        for model_id, status in sorted(statuses.items())
    }
    scores = [t.current_score for t in trends.values() if t.current_score is not None]
    parts = [
        value
        for value in (
            system.download_success_rate,
            system.health_check_success_rate,
            sum(scores) / len(scores) if scores else None,
        )
        if value is not None
    ]
    system.overall_score = round(sum(parts) / len(parts), 3) if parts else None
    return PerformanceResponse(performance_trends=trends, system_performance=system)


async def _windows(
    session: AsyncSession, today: date
) -> tuple[dict[str, _Window], dict[str, _Window]]:
    first_week = today - timedelta(days=6)
    month = DateRange(today - timedelta(days=WINDOW_DAYS - 1), today)
    week_windows: dict[str, _Window] = {}
    month_windows: dict[str, _Window] = {}
    for row in await daily_totals(session, month):
        targets = [month_windows.setdefault(row.model_id, _Window())]
        if row.day >= first_week:
            targets.append(week_windows.setdefault(row.model_id, _Window()))
        for window in targets:
            window.completed += row.completed
            window.failed += row.failed
            window.seconds += row.seconds
            window.timed += row.timed
    return week_windows, month_windows


async def _latest_checks(session: AsyncSession, since: datetime) -> dict[str, _Check]:
    c = HealthCheckRow
    newest = (
        select(c.model_id, func.max(c.finished_at).label("at"))
        .where(c.status == "completed", c.finished_at.is_not(None))
        .group_by(c.model_id)
        .subquery()
    )
    rows = await session.scalars(
        select(c).join(newest, (c.model_id == newest.c.model_id) & (c.finished_at == newest.c.at))
    )
    found: dict[str, _Check] = {}
    for row in rows:
        measured = row.measurements or {}
        found[row.model_id] = _Check(
            at=row.finished_at,
            overall=row.overall_health,
            integrity=row.integrity_score,
            performance=row.performance_score,
            read_mbps=_number(measured.get("read_mbps")),
            baseline_read_mbps=_number(measured.get("baseline_read_mbps")),
        )
    return found


async def download_record(session: AsyncSession, since: datetime) -> tuple[int, int, float | None]:
    """Completed and failed downloads finished since ``since``, and the completed ones'
    speed: bytes fetched over the time from start to finish, bytes/s (None: none)."""
    d = DownloadRow
    finished = await session.execute(
        select(d.status, d.done_bytes, d.started_at, d.finished_at).where(
            d.finished_at >= since, d.status.in_(["COMPLETED", "FAILED"])
        )
    )
    completed = failed = 0
    fetched, seconds = 0, 0.0
    for status, done, started, finished_at in finished:
        if status == "FAILED":
            failed += 1
            continue
        completed += 1
        if started is not None and finished_at is not None and done:
            fetched += int(done)
            seconds += max((finished_at - started).total_seconds(), 0.0)
    return completed, failed, fetched / seconds if seconds > 0 else None


async def _system(session: AsyncSession, since: datetime) -> SystemPerformance:
    completed, failed, speed = await download_record(session, since)
    c = HealthCheckRow
    checks = await session.execute(
        select(c.overall_health, func.count())
        .where(c.status == "completed", c.finished_at >= since)
        .group_by(c.overall_health)
    )
    verdicts = {health: int(count) for health, count in checks}
    total_checks = sum(verdicts.values())
    ended = completed + failed
    return SystemPerformance(
        overall_score=None,
        download_success_rate=round(completed / ended, 4) if ended else None,
        average_download_speed_mbps=None if speed is None else round(speed / 1e6, 3),
        health_check_success_rate=round(verdicts.get("healthy", 0) / total_checks, 4)
        if total_checks
        else None,
        downloads_completed=completed,
        downloads_failed=failed,
        health_checks=total_checks,
    )


def _model(
    model_id: str, status: ModelStatus, week: _Window, month: _Window, check: _Check | None
) -> ModelPerformance:
    issues: list[str] = []
    advice: list[str] = []
    trend = _trend(week, month)
    if trend == "degrading" and week.mean is not None and month.mean is not None:
        issues.append(
            f"Generations take {100 * (week.mean / month.mean - 1):.0f}% longer over the last "
            f"7 days ({week.mean:.1f} s) than over 30 days ({month.mean:.1f} s)"
        )
        advice.append(
            "Compare recent generation settings (resolution, steps) and what else uses the GPU"
        )
    ended = week.completed + week.failed
    if ended >= MIN_GENERATIONS and (week.success or 0) < LOW_SUCCESS:
        issues.append(f"{week.failed} of {ended} generations failed in the last 7 days")
    if check is not None:
        _health_findings(model_id, check, issues, advice)
    elif status.is_available:
        advice.append(f"Run a health check (POST /api/v1/models/health/{model_id}/check)")
    if status.update_available:
        advice.append(
            "Consider updating to the latest version "
            f"(POST /api/v1/models/revisions/{model_id}/update)"
        )
    return ModelPerformance(
        current_score=_score(week, month, check),
        trend=trend,
        last_7_days_avg=_round(week.mean),
        last_30_days_avg=_round(month.mean),
        performance_issues=issues,
        recommendations=advice,
        generations_7_days=week.completed,
        generations_30_days=month.completed,
        success_rate_7_days=_round(week.success, 4),
        success_rate_30_days=_round(month.success, 4),
        last_health_check=check.at if check else None,
        overall_health=check.overall if check else None,
        read_mbps=check.read_mbps if check else None,
    )


def _health_findings(model_id: str, check: _Check, issues: list[str], advice: list[str]) -> None:
    if check.overall in ("corrupted", "missing"):
        issues.append(f"The last health check found the model {check.overall}")
        advice.append(f"Repair it (POST /api/v1/models/health/{model_id}/repair)")
    elif check.overall == "degraded":
        issues.append("The last health check found the model degraded")
    if (
        check.read_mbps is not None
        and check.baseline_read_mbps
        and check.read_mbps < SLOW_READ * check.baseline_read_mbps
    ):
        issues.append(
            f"Reading its files ran at {check.read_mbps:.0f} MB/s, under half its usual "
            f"{check.baseline_read_mbps:.0f} MB/s"
        )
        advice.append("Check the disk holding the models (other load, failing drive)")


def _trend(week: _Window, month: _Window) -> Trend:
    recent, usual = week.mean, month.mean
    if week.timed < MIN_GENERATIONS or month.timed < MIN_GENERATIONS or not recent or not usual:
        return "insufficient_data"
    ratio = recent / usual
    if ratio <= IMPROVING:
        return "improving"
    return "degrading" if ratio >= DEGRADING else "stable"


def _score(week: _Window, month: _Window, check: _Check | None) -> float | None:
    parts: list[float] = []
    success = week.success if week.success is not None else month.success
    if success is not None:
        parts.append(success)
    if check is not None:
        if check.overall in ("corrupted", "missing"):
            parts.append(0.0)
        parts += [s for s in (check.integrity, check.performance) if s is not None]
    if week.mean and month.mean:
        parts.append(min(1.0, month.mean / week.mean))
    if not parts:
        return None
    product = 1.0
    for part in parts:
        product *= part
    return round(product, 3)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
