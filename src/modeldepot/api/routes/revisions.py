"""``/models/revisions`` (extension): installed and kept revisions, update, rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from modeldepot.api.deps import RevisionsDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import PageRequest, Pagination, page_query, sort_and_page
from modeldepot.api.routes import API_PREFIX, ModelIdPath
from modeldepot.revisions.schemas import (
    RevisionInfo,
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
    model_id: ModelIdPath, revisions: RevisionsDep, request: UpdateRequest
) -> UpdateResponse:
    """Download the tracked revision's newest commit beside the installed one; the ref
    switches only when every file verified, and the old commit is kept for
    ``storage.revision_grace_hours``. 409 ``MODEL_NOT_INSTALLED``, ``DOWNLOAD_IN_PROGRESS``.
    The body is required, as on every POST (``{}`` for the defaults): a POST must be sent
    as JSON, which a cross-site form cannot do."""
    return await revisions.update(model_id, request)


@router.post(
    "/{model_id:path}/rollback",
    response_model=RollbackResponse,
    responses=error_responses(400, 404, 409, 422),
)
async def rollback(
    model_id: ModelIdPath, revisions: RevisionsDep, request: RollbackRequest
) -> RollbackResponse:
    """Switch back to a kept revision (default: the newest previous one) after checking it
    is complete on disk. 409 ``REVISION_UNAVAILABLE``, ``MODEL_NOT_INSTALLED``, ``CONFLICT``
    (a download of the model is under way, or the catalogue pins a commit)."""
    return await revisions.rollback(model_id, request)


class RevisionsPage(RevisionsResponse):
    """``revisions``: one page (removed revisions stay listed, so the list only grows)."""

    pagination: Pagination


Ranked = tuple[int, RevisionInfo]
"""A revision and its place in the service's order (current, previous, removed,
untracked; the most recently superseded first)."""

SORT_KEYS: dict[str, Callable[[Ranked], Any]] = {
    "state": lambda r: r[0],
    "commit": lambda r: r[1].commit,
    "installed_at": lambda r: r[1].installed_at,
    "superseded_at": lambda r: r[1].superseded_at,
    "removed_at": lambda r: r[1].removed_at,
}
RevisionsPageQuery = Annotated[PageRequest, Depends(page_query(tuple(SORT_KEYS), "state"))]


@router.get("/{model_id:path}", response_model=RevisionsPage, responses=error_responses(404, 422))
async def list_revisions(
    model_id: ModelIdPath,
    revisions: RevisionsDep,
    page: RevisionsPageQuery,
    refresh: Annotated[
        bool, Query(description="Ask the hub for the newest commit first (bounded wait)")
    ] = False,
) -> RevisionsPage:
    """Current, kept, removed and untracked revisions of a model (a page at a time), and
    the hub's newest."""
    answer = await revisions.revisions(model_id, refresh=refresh)
    ranked, pagination = sort_and_page(
        enumerate(answer.revisions), page, keys=SORT_KEYS, tie=lambda r: r[1].commit
    )
    return RevisionsPage(
        **answer.model_dump(exclude={"revisions"}),
        revisions=[info for _rank, info in ranked],
        pagination=pagination,
    )
