"""``/models/fallback``: what to use when the model asked for is not there yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX
from modeldepot.fallback.queue_schemas import (
    QUEUE_ID_PATTERN,
    ClaimRequest,
    QueueEntry,
    QueueRequest,
    QueueResponse,
    QueueStatus,
)
from modeldepot.fallback.schemas import SuggestRequest, SuggestResponse
from modeldepot.ids import MODEL_ID_PATTERN

router = APIRouter(prefix=f"{API_PREFIX}/models/fallback", tags=["fallback"])


@router.post("/suggest", response_model=SuggestResponse, responses=error_responses(400, 409, 422))
async def suggest(request: SuggestRequest, services: ServicesDep) -> SuggestResponse:
    """Catalogue models that can stand in for ``requested_model``, best first, with a
    strategy (use one now, queue and wait, download, relax the requirements). A model
    outside the catalogue is answered too (``requested_model_status`` null). Announced on
    the WebSocket as ``fallback_suggestion`` while the requested model is not available.
    409 ``FEATURE_DISABLED`` while ``features.intelligent_fallback`` is off."""
    return await services.fallback.suggest(request)


QueueIdPath = Annotated[str, Path(pattern=QUEUE_ID_PATTERN, description="queue_ + 16 hex")]
SORT_KEYS: dict[str, Callable[[QueueEntry], Any]] = {
    "created_at": lambda e: e.created_at,
    "model_id": lambda e: e.model_id,
    "status": lambda e: e.status.value,
    "priority": lambda e: e.priority.rank,
}
QueuePageQuery = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "created_at"))]


class QueuePage(BaseModel):
    data: list[QueueEntry]
    pagination: Pagination


@router.post(
    "/queue",
    response_model=QueueResponse,
    responses=error_responses(400, 404, 409, 422, 503, 507),
)
async def queue(request: QueueRequest, services: ServicesDep) -> QueueResponse:
    """Hold a generation request until its model is available (starting its download at
    the entry's priority if none is running). READY at once if the model is available.
    An optional ``callback`` URL is POSTed the entry when it turns READY, EXPIRED or
    FAILED (retried; checked by the downloads' SSRF policy: 422 ``UNSAFE_SOURCE``). 409
    ``FEATURE_DISABLED`` while ``features.intelligent_fallback`` is off."""
    return await services.queue.enqueue(request)


@router.get("/queue", response_model=QueuePage, responses=error_responses(422))
async def queue_entries(
    services: ServicesDep,
    page: QueuePageQuery,
    model_id: Annotated[str | None, Query(pattern=MODEL_ID_PATTERN)] = None,
    status: QueueStatus | None = None,
) -> QueuePage:
    """Wait-queue entries, a page at a time (extension), optionally of one model or status."""
    entries = await services.queue.entries(model_id=model_id, status=status)
    data, pagination = sort_and_page(entries, page, keys=SORT_KEYS, tie=lambda e: e.queue_id)
    return QueuePage(data=data, pagination=pagination)


@router.get("/queue/{queue_id}", response_model=QueueEntry, responses=error_responses(404, 422))
async def queue_entry(queue_id: QueueIdPath, services: ServicesDep) -> QueueEntry:
    """One entry: its state, position and estimate (extension)."""
    return await services.queue.get(queue_id)


@router.post(
    "/queue/{queue_id}/claim",
    response_model=QueueEntry,
    responses=error_responses(400, 404, 409, 422),
)
async def claim(queue_id: QueueIdPath, request: ClaimRequest, services: ServicesDep) -> QueueEntry:
    """Take a READY entry to run its request: exactly one caller gets it, any other 409
    ``QUEUE_ENTRY_NOT_READY`` (extension; body ``{}``)."""
    return await services.queue.claim(queue_id, worker=request.worker)


@router.delete(
    "/queue/{queue_id}", response_model=QueueEntry, responses=error_responses(404, 409, 422)
)
async def cancel(queue_id: QueueIdPath, services: ServicesDep) -> QueueEntry:
    """Withdraw a WAITING or READY entry (extension); 409 once it ended."""
    return await services.queue.cancel(queue_id)
