"""``/models/download``: start, pause, resume, cancel and re-prioritise; progress; queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from modeldepot.api.deps import DownloadsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.downloads.schemas import (
    ActiveDownload,
    ActiveDownloadsResponse,
    ManageRequest,
    ManageResponse,
    ProgressResponse,
)

router = APIRouter(prefix=f"{API_PREFIX}/models/download", tags=["downloads"])


@router.post(
    "/manage",
    response_model=ManageResponse,
    responses=error_responses(400, 404, 409, 422, 503, 507),
)
async def manage(request: ManageRequest, downloads: DownloadsDep) -> ManageResponse:
    """``start`` (409 ``DOWNLOAD_IN_PROGRESS`` with the running download's id if one
    exists; 507 ``INSUFFICIENT_STORAGE`` when it would not fit), ``pause``, ``resume``,
    ``cancel``, ``set_priority`` and ``update`` (priority, bandwidth limit, retries)."""
    return await downloads.manage(request)


@router.get(
    "/progress/{model_id:path}",
    response_model=ProgressResponse,
    responses=error_responses(404, 422),
)
async def progress(model_id: ModelIdPath, downloads: DownloadsDep) -> ProgressResponse:
    """Progress of the model's newest download (404 ``DOWNLOAD_NOT_FOUND`` if none)."""
    return downloads.progress(model_id)


class ActiveDownloadsPage(ActiveDownloadsResponse):
    """``active_downloads``: one page; ``total_active`` and ``total_bandwidth_usage_mbps``:
    every active download."""

    pagination: Pagination


Ranked = tuple[int, ActiveDownload]
"""A download and its place in the run order (running first, then the queue)."""

SORT_KEYS: dict[str, Callable[[Ranked], Any]] = {
    "queue": lambda r: r[0],
    "model_id": lambda r: r[1].model_id,
    "status": lambda r: r[1].status.value,
    "priority": lambda r: r[1].priority.rank,  # asc: critical first
    "progress_percent": lambda r: r[1].progress_percent,
    "speed_mbps": lambda r: r[1].speed_mbps,
    "eta_seconds": lambda r: r[1].eta_seconds,
}
ActivePage = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "queue"))]


@router.get("/active", response_model=ActiveDownloadsPage, responses=error_responses(422))
async def active(downloads: DownloadsDep, page: ActivePage) -> ActiveDownloadsPage:
    """Active downloads a page at a time; by default (``sort=queue``) running downloads
    first, then the queue in the order it will run. ``priority`` sorts critical first."""
    answer = downloads.active()
    ranked, pagination = sort_and_page(
        enumerate(answer.active_downloads), page, keys=SORT_KEYS, tie=lambda r: r[1].model_id
    )
    return ActiveDownloadsPage(
        active_downloads=[entry for _rank, entry in ranked],
        total_active=answer.total_active,
        total_bandwidth_usage_mbps=answer.total_bandwidth_usage_mbps,
        pagination=pagination,
    )
