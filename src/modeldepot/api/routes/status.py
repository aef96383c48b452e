"""``/models/status/detailed``: every model's availability, or one model's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from modeldepot.api.deps import AvailabilityDep, CatalogDep
from modeldepot.api.envelope import ERROR_RESPONSES
from modeldepot.api.routes import API_PREFIX
from modeldepot.availability.schemas import DetailedStatusResponse, ModelStatus

router = APIRouter(prefix=f"{API_PREFIX}/models/status", tags=["status"], responses=ERROR_RESPONSES)


@router.get("/detailed", response_model=DetailedStatusResponse)
async def detailed_status(availability: AvailabilityDep) -> DetailedStatusResponse:
    """Status of every catalogue model, with a summary."""
    return await availability.detailed()


@router.get("/detailed/{model_id:path}", response_model=ModelStatus)
async def model_status(
    model_id: Annotated[str, Path(description="Catalogue model id")],
    availability: AvailabilityDep,
    catalog: CatalogDep,
    refresh: Annotated[
        bool, Query(description="Re-resolve the source from the hub first (bounded wait)")
    ] = False,
) -> ModelStatus:
    """Status of one model. Ids that break the id rule are 422, unknown ids 404."""
    if refresh:
        await catalog.refresh(model_id)
        return await availability.recompute(model_id)
    return await availability.status(model_id)
