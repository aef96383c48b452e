"""``/models/status/detailed``: every model's availability (a page of it), or one model's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from modeldepot.api.deps import AvailabilityDep, CatalogDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import Order, PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.availability.schemas import DetailedStatusResponse, ModelStatus
from modeldepot.availability.service import ListedStatus, Listing

router = APIRouter(prefix=f"{API_PREFIX}/models/status", tags=["status"])
JSON = "application/json"


class DetailedStatusPage(DetailedStatusResponse):
    """``models``: one page, keyed by id in the page's order; ``summary``: every model."""

    pagination: Pagination


SORT_KEYS: dict[str, Callable[[ListedStatus], Any]] = {
    "model_id": lambda e: e.status.model_id,
    "availability_status": lambda e: e.status.availability_status.value,
    "size_mb": lambda e: e.status.size_mb,
    "last_used": lambda e: e.status.last_used,
    "download_progress": lambda e: e.status.download_progress,
}
StatusPage = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "model_id"))]


@router.get("/detailed", response_model=DetailedStatusPage, responses=error_responses(422))
async def detailed_status(availability: AvailabilityDep, page: StatusPage) -> Response:
    """Status of every catalogue model, a page at a time, with a summary of them all."""
    # Served from the members the service keeps serialised (issue 9: no validation and
    # serialisation of a hundred models per request); the schema is response_model's.
    listing = await availability.listing()
    if page.sort == "model_id" and page.order is Order.asc:
        # The listing's own order: the default page is a slice, not a sort.
        entries, pagination = page.slice(listing.entries), Pagination.of(page, len(listing.entries))
    else:
        entries, pagination = sort_and_page(
            listing.entries, page, keys=SORT_KEYS, tie=lambda e: e.status.model_id
        )
    return Response(_page_body(entries, listing, pagination), media_type=JSON)


def _page_body(entries: Sequence[ListedStatus], listing: Listing, pagination: Pagination) -> bytes:
    return b"".join(
        (
            b'{"models":{',
            b",".join(entry.member for entry in entries),
            b'},"summary":',
            listing.summary,
            b',"pagination":',
            pagination.model_dump_json().encode(),
            b"}",
        )
    )


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
