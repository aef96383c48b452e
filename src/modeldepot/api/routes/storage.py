"""``/models/storage``: what the models directory holds and the room left."""

from __future__ import annotations

from fastapi import APIRouter

from modeldepot.api.deps import StorageDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX
from modeldepot.store.schemas import StorageResponse

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["storage"])


@router.get("/storage", response_model=StorageResponse, responses=error_responses())
async def storage(service: StorageDep) -> StorageResponse:
    """Capacity, per-model sizes, unmanaged repositories and cleanup suggestions."""
    return await service.report()
