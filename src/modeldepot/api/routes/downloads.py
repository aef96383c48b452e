"""``/models/download``: start, pause, resume, cancel and re-prioritise; progress; queue."""

from __future__ import annotations

from fastapi import APIRouter

from modeldepot.api.deps import DownloadsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.downloads.schemas import (
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


@router.get("/active", response_model=ActiveDownloadsResponse, responses=error_responses())
async def active(downloads: DownloadsDep) -> ActiveDownloadsResponse:
    """Running downloads first, then the queue in the order it will run."""
    return downloads.active()
