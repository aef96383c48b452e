"""``/models/usage`` (extension) and ``/models/analytics`` (the seed's analytics).

Generation apps report what they do with a model; the analytics add it up per UTC day.
The fixed paths (``/analytics/cleanup``, ``/analytics/performance``) are declared before
``/analytics/{model_id}``: a catalogue id ``cleanup`` or ``performance`` cannot be asked
for by this route (its status and storage still show it).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from modeldepot.analytics.performance import PerformanceResponse, performance
from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.usage.analytics import AnalyticsResponse, Period
from modeldepot.usage.schemas import UsageReport, UsageReportResult

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["usage"])

PeriodQuery = Annotated[
    Period | None,
    Query(
        description="day (today), week (7 days), month (30 days, the default) or year "
        "(365 days), each ending today (UTC); not with start_date/end_date"
    ),
]


def _iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD`` is a day here (pydantic would read ``0`` as 1970-01-01)."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
Day = Annotated[date, BeforeValidator(_iso_day)]
StartQuery = Annotated[Day | None, Query(description="First UTC day (YYYY-MM-DD), included")]
EndQuery = Annotated[
    Day | None, Query(description="Last UTC day (YYYY-MM-DD), included; default today")
]


@router.post(
    "/usage", response_model=UsageReportResult, responses=error_responses(400, 404, 409, 422)
)
async def report_usage(report: UsageReport, services: ServicesDep) -> UsageReportResult:
    """Record a batch of usage events (1 to 1000): generations started, completed (with
    their duration) or failed, models loaded or unloaded. Answered once stored; an
    ``event_id`` seen before is counted as a duplicate and ignored. Feeds ``last_used``,
    ``usage_frequency``, ``average_generation_time`` and ``is_loaded`` of the status, and
    the analytics. 409 ``FEATURE_DISABLED`` while ``features.usage_analytics`` is off."""
    return await services.usage.record(report.events)


@router.get("/analytics", response_model=AnalyticsResponse, responses=error_responses(422))
async def analytics(
    services: ServicesDep,
    period: PeriodQuery = None,
    start_date: StartQuery = None,
    end_date: EndQuery = None,
) -> AnalyticsResponse:
    """Usage of every catalogue model over a range of UTC days: uses, uses per day,
    generation time, success rate, a row per day of the last 30 days (zeros included),
    the busiest hours, and a summary."""
    span = services.usage.date_range(period, start_date, end_date)
    return await services.usage.analytics(sorted(services.catalog.entries), span)


@router.get(
    "/analytics/performance", response_model=PerformanceResponse, responses=error_responses()
)
async def performance_analytics(services: ServicesDep) -> PerformanceResponse:
    """Per model: 7-day against 30-day generation times (stable, improving, degrading),
    a score, issues and recommendations from real generation times, health checks and
    revisions; and the system's download and health record over 30 days."""
    statuses = await services.availability.all_statuses()
    return await performance(services.sessions, statuses, now=datetime.now(UTC))


@router.get(
    "/analytics/{model_id:path}",
    response_model=AnalyticsResponse,
    responses=error_responses(404, 422),
)
async def model_analytics(
    model_id: ModelIdPath,
    services: ServicesDep,
    period: PeriodQuery = None,
    start_date: StartQuery = None,
    end_date: EndQuery = None,
) -> AnalyticsResponse:
    """One model's usage, in the same shape as ``/models/analytics``."""
    entry = services.catalog.get(model_id)
    span = services.usage.date_range(period, start_date, end_date)
    return await services.usage.analytics([entry.id], span)
