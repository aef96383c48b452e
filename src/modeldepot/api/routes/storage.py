"""``/models/storage``: what the models directory holds and the room left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX
from modeldepot.store.schemas import ModelStorage, StorageResponse

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["storage"])


class StoragePage(StorageResponse):
    """``models_storage``: one page; ``storage_summary``: every model. The unmanaged
    repositories and the cleanup suggestions are whole on every page."""

    pagination: Pagination


SORT_KEYS: dict[str, Callable[[ModelStorage], Any]] = {
    "model_id": lambda m: m.model_id,
    "size_gb": lambda m: m.size_bytes,
    "last_accessed": lambda m: m.last_accessed,
    "usage_frequency": lambda m: m.usage_frequency,
    "last_modified": lambda m: m.last_modified,
}
StoragePageQuery = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "model_id"))]


@router.get("/storage", response_model=StoragePage, responses=error_responses(422))
async def storage(services: ServicesDep, page: StoragePageQuery) -> StoragePage:
    """Capacity, per-model sizes (a page at a time), unmanaged repositories and cleanup
    suggestions."""
    report = await services.cleanup.storage_report()
    models, pagination = sort_and_page(
        report.models_storage, page, keys=SORT_KEYS, tie=lambda m: m.model_id
    )
    return StoragePage(
        storage_summary=report.storage_summary,
        models_storage=models,
        cleanup_suggestions=report.cleanup_suggestions,
        unmanaged_repositories=report.unmanaged_repositories,
        pagination=pagination,
    )
