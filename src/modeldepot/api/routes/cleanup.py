"""Cleanup (the seed's ``/models/analytics/cleanup`` and ``/models/cleanup``) and pins.

This router is included before the usage router: ``/models/analytics/cleanup`` must be
matched before ``/models/analytics/{model_id}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.cleanup.schemas import (
    CLEANUP_ID_PATTERN,
    CleanupRecommendations,
    CleanupRequest,
    CleanupResult,
    Pin,
    PinList,
    PinRequest,
)

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["storage"])


@router.get(
    "/analytics/cleanup",
    response_model=CleanupRecommendations,
    responses=error_responses(422),
)
async def cleanup_recommendations(
    services: ServicesDep,
    storage_threshold_gb: Annotated[
        float | None,
        Query(
            ge=0,
            le=1_000_000,
            description="Recommend only enough models (least recently used first) to bring "
            "usage under this many GB (10^9 bytes), 0 to 1,000,000; none if already under",
        ),
    ] = None,
    min_unused_days: Annotated[
        int, Query(ge=0, le=3650, description="Unused for at least this many days, 0 to 3650")
    ] = 30,
) -> CleanupRecommendations:
    """Models worth removing, from real usage: never a pinned, loaded, downloading or
    waited-for one. Savings count a blob two candidates share once."""
    return await services.cleanup.recommendations(
        storage_threshold_gb=storage_threshold_gb, min_unused_days=min_unused_days
    )


@router.post("/cleanup", response_model=CleanupResult, responses=error_responses(400, 404, 422))
async def cleanup(request: CleanupRequest, services: ServicesDep) -> CleanupResult:
    """Remove unused models (``auto``) or the ones named (``manual``), never a protected
    one; ``dry_run`` answers exactly what the same request would do. Removed models
    announce ``model_availability_change``. Admin only."""
    return await services.cleanup.cleanup(request)


@router.get(
    "/cleanup/{cleanup_id}", response_model=CleanupResult, responses=error_responses(404, 422)
)
async def cleanup_result(
    cleanup_id: Annotated[str, Path(pattern=CLEANUP_ID_PATTERN)], services: ServicesDep
) -> CleanupResult:
    """A cleanup made earlier (dry runs and automatic ones included), by its id."""
    return await services.cleanup.get(cleanup_id)


@router.get("/pins", response_model=PinList, responses=error_responses())
async def pins(services: ServicesDep) -> PinList:
    """Pinned models: never cleanup candidates, never evicted for the quota."""
    return services.pins.pins()


@router.put("/pins/{model_id:path}", response_model=Pin, responses=error_responses(400, 404, 422))
async def pin(model_id: ModelIdPath, request: PinRequest, services: ServicesDep) -> Pin:
    """Pin a model (a repeat updates the reason; body ``{}`` for none)."""
    return await services.pins.pin(model_id, request.reason)


@router.delete("/pins/{model_id:path}", status_code=204, responses=error_responses(404, 422))
async def unpin(model_id: ModelIdPath, services: ServicesDep) -> Response:
    """Unpin a model (204 whether or not it was pinned)."""
    await services.pins.unpin(model_id)
    return Response(status_code=204)
