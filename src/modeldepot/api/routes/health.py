"""``/models/health``: health of every model or one, check requests, check lookup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from modeldepot.api.deps import HealthDep, RepairsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.health.repair import RepairRecord, RepairRequest, RepairResponse
from modeldepot.health.schemas import (
    HealthCheckPublic,
    HealthCheckRequest,
    HealthCheckStarted,
    HealthResponse,
    ModelHealth,
)
from modeldepot.ids import CHECK_ID_PATTERN, REPAIR_ID_PATTERN

router = APIRouter(prefix=f"{API_PREFIX}/models/health", tags=["health"])


class HealthPage(HealthResponse):
    """``models``: one page, keyed by id in the page's order; ``system_health``: every
    model."""

    pagination: Pagination


SORT_KEYS: dict[str, Callable[[ModelHealth], Any]] = {
    "model_id": lambda m: m.model_id,
    "overall_health": lambda m: m.overall_health,
    "integrity_score": lambda m: m.integrity_score,
    "performance_score": lambda m: m.performance_score,
    "last_check": lambda m: m.last_check,
}
HealthPageQuery = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "model_id"))]


@router.get("", response_model=HealthPage, responses=error_responses(422))
async def all_health(health: HealthDep, page: HealthPageQuery) -> HealthPage:
    """Health of every catalogue model, a page at a time, and a summary of them all."""
    overview = await health.overview()
    models, pagination = sort_and_page(
        overview.models.values(), page, keys=SORT_KEYS, tie=lambda m: m.model_id
    )
    return HealthPage(
        models={m.model_id: m for m in models},
        system_health=overview.system_health,
        pagination=pagination,
    )


@router.get(
    "/checks/{check_id}", response_model=HealthCheckPublic, responses=error_responses(404, 422)
)
async def get_check(
    check_id: Annotated[
        str, Path(description="Id returned by a check request", pattern=CHECK_ID_PATTERN)
    ],
    health: HealthDep,
) -> HealthCheckPublic:
    """A check run (extension): 422 ``INVALID_CHECK_ID``, 404 ``CHECK_NOT_FOUND``."""
    return await health.get_check(check_id)


@router.get(
    "/repairs/{repair_id}", response_model=RepairRecord, responses=error_responses(404, 422)
)
async def get_repair(
    repair_id: Annotated[
        str, Path(description="Id returned by a repair request", pattern=REPAIR_ID_PATTERN)
    ],
    repairs: RepairsDep,
) -> RepairRecord:
    """A repair (extension): what it did and how it ended. 422 ``INVALID_REPAIR_ID``, 404
    ``REPAIR_NOT_FOUND``."""
    return await repairs.get(repair_id)


@router.post(
    "/{model_id:path}/check",
    response_model=HealthCheckStarted,
    responses=error_responses(400, 404, 422),
)
async def request_check(
    model_id: ModelIdPath, request: HealthCheckRequest, health: HealthDep
) -> HealthCheckStarted:
    """Start a ``full``, ``integrity`` (quick) or ``performance`` check in the background."""
    return await health.request_check(model_id, request.check_type, force=request.force_check)


@router.post(
    "/{model_id:path}/repair",
    response_model=RepairResponse,
    responses=error_responses(400, 404, 409, 422, 503, 507),
)
async def repair(
    model_id: ModelIdPath, request: RepairRequest, repairs: RepairsDep
) -> RepairResponse:
    """``auto``: verify, re-fetch only the bad files, verify again; ``redownload``: every
    file of the installed commit; ``integrity_fix``: no network, re-link what verifies."""
    return await repairs.repair(model_id, request)


@router.get("/{model_id:path}", response_model=HealthResponse, responses=error_responses(404, 422))
async def model_health(model_id: ModelIdPath, health: HealthDep) -> HealthResponse:
    """Health of one model, in the same shape as the list (422 bad id, 404 unknown)."""
    return await health.model_health(model_id)
