"""``/models/status/detailed``: every model's availability, or one model's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from modeldepot.api.deps import AvailabilityDep, CatalogDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.availability.schemas import DetailedStatusResponse, ModelStatus

router = APIRouter(prefix=f"{API_PREFIX}/models/status", tags=["status"])
JSON = "application/json"


@router.get("/detailed", response_model=DetailedStatusResponse, responses=error_responses())
async def detailed_status(availability: AvailabilityDep) -> Response:
    """Status of every catalogue model, with a summary."""
    # Served as the body the service keeps serialised (issue 9: no validation and
    # serialisation of a hundred models per request); the schema is response_model's.
    return Response(await availability.detailed_json(), media_type=JSON)


@router.get(
    "/detailed/{model_id:path}", response_model=ModelStatus, responses=error_responses(404, 422)
)
async def model_status(
    model_id: ModelIdPath,
    availability: AvailabilityDep,
    catalog: CatalogDep,
    refresh: Annotated[
        bool, Query(description="Re-resolve the source from the hub first (bounded wait)")
    ] = False,
) -> Response | ModelStatus:
    """Status of one model. Ids that break the id rule are 422, unknown ids 404."""
    if refresh:
        await catalog.refresh(model_id)
        return await availability.recompute(model_id)
    return Response(await availability.status_json(model_id), media_type=JSON)
