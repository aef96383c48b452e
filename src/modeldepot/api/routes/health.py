"""``/models/health``: health of every model or one, check requests, check lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from modeldepot.api.deps import HealthDep, RepairsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.health.repair import RepairRecord, RepairRequest, RepairResponse
from modeldepot.health.schemas import (
    HealthCheckPublic,
    HealthCheckRequest,
    HealthCheckStarted,
    HealthResponse,
)

router = APIRouter(prefix=f"{API_PREFIX}/models/health", tags=["health"])


@router.get("", response_model=HealthResponse, responses=error_responses())
async def all_health(health: HealthDep) -> HealthResponse:
    """Health of every catalogue model and a system summary."""
    return await health.overview()


@router.get(
    "/checks/{check_id}", response_model=HealthCheckPublic, responses=error_responses(404, 422)
)
async def get_check(
    check_id: Annotated[str, Path(description="Id returned by a check request")],
    health: HealthDep,
) -> HealthCheckPublic:
    """A check run (extension): 422 ``INVALID_CHECK_ID``, 404 ``CHECK_NOT_FOUND``."""
    return await health.get_check(check_id)


@router.get(
    "/repairs/{repair_id}", response_model=RepairRecord, responses=error_responses(404, 422)
)
async def get_repair(
    repair_id: Annotated[str, Path(description="Id returned by a repair request")],
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
