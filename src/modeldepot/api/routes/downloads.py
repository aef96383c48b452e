"""``/models/download``: start, pause, resume, cancel and re-prioritise; progress; queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from modeldepot.api.deps import DownloadsDep
from modeldepot.api.envelope import ERROR_RESPONSES
from modeldepot.api.routes import API_PREFIX
from modeldepot.downloads.schemas import (
    ActiveDownloadsResponse,
    ManageRequest,
    ManageResponse,
    ProgressResponse,
)

router = APIRouter(
    prefix=f"{API_PREFIX}/models/download", tags=["downloads"], responses=ERROR_RESPONSES
)


@router.post("/manage", response_model=ManageResponse)
async def manage(request: ManageRequest, downloads: DownloadsDep) -> ManageResponse:
    """``start`` (409 ``DOWNLOAD_IN_PROGRESS`` with the running download's id if one
    exists; 507 ``INSUFFICIENT_STORAGE`` when it would not fit), ``pause``, ``resume``,
    ``cancel``, ``set_priority`` and ``update`` (priority, bandwidth limit, retries)."""
    return await downloads.manage(request)


@router.get("/progress/{model_id:path}", response_model=ProgressResponse)
async def progress(
    model_id: Annotated[str, Path(description="Catalogue model id")], downloads: DownloadsDep
) -> ProgressResponse:
    """Progress of the model's newest download (404 ``DOWNLOAD_NOT_FOUND`` if none)."""
    return downloads.progress(model_id)


@router.get("/active", response_model=ActiveDownloadsResponse)
async def active(downloads: DownloadsDep) -> ActiveDownloadsResponse:
    """Running downloads first, then the queue in the order it will run."""
    return downloads.active()
