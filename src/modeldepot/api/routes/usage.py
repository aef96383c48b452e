"""``/models/usage`` (extension): generation apps report what they do with a model."""

from __future__ import annotations

from fastapi import APIRouter

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX
from modeldepot.usage.schemas import UsageReport, UsageReportResult

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["usage"])


@router.post("/usage", response_model=UsageReportResult, responses=error_responses(400, 404, 422))
async def report_usage(report: UsageReport, services: ServicesDep) -> UsageReportResult:
    """Record a batch of usage events (1 to 1000): generations started, completed (with
    their duration) or failed, models loaded or unloaded. Answered once stored; an
    ``event_id`` seen before is counted as a duplicate and ignored. Feeds ``last_used``,
    ``usage_frequency``, ``average_generation_time`` and ``is_loaded`` of the status."""
    return await services.usage.record(report.events)
