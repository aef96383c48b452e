"""``/models/revisions`` (extension): installed and kept revisions, update, rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from modeldepot.api.deps import RevisionsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.revisions.schemas import (
    RevisionsResponse,
    RollbackRequest,
    RollbackResponse,
    UpdateRequest,
    UpdateResponse,
)

router = APIRouter(prefix=f"{API_PREFIX}/models/revisions", tags=["revisions"])


@router.post(
    "/{model_id:path}/update",
    response_model=UpdateResponse,
    responses=error_responses(400, 404, 409, 422, 503, 507),
)
async def update(
    model_id: ModelIdPath, revisions: RevisionsDep, request: UpdateRequest | None = None
) -> UpdateResponse:
    """Download the tracked revision's newest commit beside the installed one; the ref
    switches only when every file verified, and the old commit is kept for
    ``storage.revision_grace_hours``. 409 ``MODEL_NOT_INSTALLED``, ``DOWNLOAD_IN_PROGRESS``."""
    return await revisions.update(model_id, request or UpdateRequest())


@router.post(
    "/{model_id:path}/rollback",
    response_model=RollbackResponse,
    responses=error_responses(400, 404, 409, 422),
)
async def rollback(
    model_id: ModelIdPath, revisions: RevisionsDep, request: RollbackRequest | None = None
) -> RollbackResponse:
    """Switch back to a kept revision (default: the newest previous one) after checking it
    is complete on disk. 409 ``REVISION_UNAVAILABLE``, ``MODEL_NOT_INSTALLED``, ``CONFLICT``
    (a download of the model is under way, or the catalogue pins a commit)."""
    return await revisions.rollback(model_id, request or RollbackRequest())


@router.get(
    "/{model_id:path}", response_model=RevisionsResponse, responses=error_responses(404, 422)
)
async def list_revisions(
    model_id: ModelIdPath,
    revisions: RevisionsDep,
    refresh: Annotated[
        bool, Query(description="Ask the hub for the newest commit first (bounded wait)")
    ] = False,
) -> RevisionsResponse:
    """Current, kept, removed and untracked revisions of a model, and the hub's newest."""
    return await revisions.revisions(model_id, refresh=refresh)
