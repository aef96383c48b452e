"""Pagination of every list endpoint: the seed's ``page``/``limit``/``sort``/``order`` query
parameters and its ``pagination`` object (issue 10).

The page maths, one rule everywhere::

    offset   = (page - 1) * limit
    pages    = ceil(total / limit)      0 when total is 0 (no page holds anything)
    has_prev = page > 1
    has_next = page < pages

A page past the end is an empty list with the right ``total`` and ``pages``, not an error.
Query parameters out of range (``page`` 1..1,000,000, ``limit`` 1..100), a ``sort`` the
endpoint does not offer or an ``order`` other than ``asc``/``desc`` are 422
``VALIDATION_ERROR`` (FastAPI's query validation, through the envelope's handler).

Sorting is stable and total: ties on the sort field are broken by the tie key (the model id
or the primary key), always ascending, so that every item appears on exactly one page.
``None`` (SQL ``NULL``) sorts after every value in ``asc`` and before every value in
``desc``, in memory (:func:`sort_and_page`) as in SQL (:func:`page_select`), on SQLite as on
PostgreSQL.

Endpoints the seed shows with their own shape keep it and add ``pagination`` beside their
list; new list endpoints answer :class:`Page` (``data`` + ``pagination``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession

from modeldepot.db import select_page, sort_order

T = TypeVar("T")

MAX_PAGE = 1_000_000
"""Beyond any list we hold at 100 a page; bounds the offset a client can ask for."""
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


class Order(StrEnum):
    asc = "asc"
    desc = "desc"


@dataclass(frozen=True)
class PageRequest:
    """One page of a list, as the client asked for it (validated by :func:`page_query`)."""

    page: int
    limit: int
    sort: str
    order: Order

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    @property
    def descending(self) -> bool:
        return self.order is Order.desc

    def slice(self, items: Sequence[T]) -> list[T]:
        """This page of ``items`` (already in the requested order)."""
        return list(items[self.offset : self.offset + self.limit])


class Pagination(BaseModel):
    """The seed's ``pagination`` object."""

    page: int = Field(description="This page, from 1")
    limit: int = Field(description="Items per page asked for (1-100)")
    total: int = Field(description="Items in the whole list")
    pages: int = Field(description="ceil(total / limit); 0 when the list is empty")
    has_next: bool = Field(description="page < pages")
    has_prev: bool = Field(description="page > 1")

    @classmethod
    def of(cls, request: PageRequest, total: int) -> Pagination:
        pages = math.ceil(total / request.limit)
        return cls(
            page=request.page,
            limit=request.limit,
            total=total,
            pages=pages,
            has_next=request.page < pages,
            has_prev=request.page > 1,
        )


class Page(BaseModel, Generic[T]):
    """A new list endpoint's answer: one page of items and where it is in the list."""

    data: list[T]
    pagination: Pagination


def page_query(sort_fields: Sequence[str], default_sort: str) -> Any:
    """A FastAPI dependency reading ``page``, ``limit``, ``sort`` (one of ``sort_fields``,
    an enum in OpenAPI) and ``order``, returning a :class:`PageRequest`.

    Use it as ``Annotated[PageRequest, Depends(page_query(FIELDS, "model_id"))]``.

    Raises:
        ValueError: (at import) ``default_sort`` is not one of ``sort_fields``.
    """
    fields = tuple(sort_fields)
    if default_sort not in fields:
        raise ValueError(f"default sort {default_sort!r} is not one of {fields}")
    sort_type = cast(Any, Literal)[fields]

    # ``async def``: a plain ``def`` dependency costs a thread hop per request (api/deps.py).
    async def read_page(page: int, limit: int, sort: str, order: Order) -> PageRequest:
        return PageRequest(page=page, limit=limit, sort=sort, order=order)

    # The signature is built here because the sort enum differs per endpoint.
    parameters = {
        "page": (
            Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1")],
            1,
        ),
        "limit": (
            Annotated[
                int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (max {MAX_LIMIT})")
            ],
            DEFAULT_LIMIT,
        ),
        "sort": (
            Annotated[
                sort_type,
                Query(
                    description=f"Sort field (default {default_sort}); ties are broken by "
                    "the id, ascending; null values come last in asc, first in desc"
                ),
            ],
            default_sort,
        ),
        "order": (Annotated[Order, Query(description="Sort order")], Order.asc),
    }
    read_page.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
            for name, (annotation, default) in parameters.items()
        ],
        return_annotation=PageRequest,
    )
    return read_page


def sort_and_page(
    items: Iterable[T],
    request: PageRequest,
    keys: Mapping[str, Callable[[T], Any]],
    tie: Callable[[T], Any],
) -> tuple[list[T], Pagination]:
    """Sort an in-memory list by ``keys[request.sort]`` in ``request.order`` (ties by
    ``tie``, ascending; ``None`` last in asc, first in desc) and cut the page out of it.

    Raises:
        KeyError: ``request.sort`` is not in ``keys`` (a programming error: the dependency
            only lets through the fields the endpoint offers).
    """
    key = keys[request.sort]
    ordered = sorted(items, key=tie)
    # Stable (also with reverse=True), so equal keys keep the tie order; a None becomes
    # (True, None), which sorts after every (False, value).
    ordered.sort(key=lambda item: _nulls_high(key(item)), reverse=request.descending)
    return request.slice(ordered), Pagination.of(request, len(ordered))


def _nulls_high(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


async def page_select(
    session: AsyncSession,
    statement: Select[Any],
    request: PageRequest,
    columns: Mapping[str, ColumnElement[Any]],
    tie: ColumnElement[Any],
) -> tuple[list[Any], Pagination]:
    """One page of ``statement``'s rows, sorted and cut in SQL: ``COUNT(*)`` over the
    statement as a subquery, then ``ORDER BY columns[sort] (NULLS LAST in asc, FIRST in
    desc), tie ASC LIMIT limit OFFSET offset``. Any ``ORDER BY`` of ``statement`` is
    replaced.

    Returns the items as ``session.execute`` gives them, except that a statement selecting
    one thing (``select(Row)`` or one column) gives those things (``.scalars()``).

    Raises:
        KeyError: ``request.sort`` is not in ``columns``.
        sqlalchemy.exc.SQLAlchemyError: the database failed (callers translate it).
    """
    order = sort_order(columns[request.sort], descending=request.descending, tie=tie)
    rows, total = await select_page(
        session, statement, order_by=order, offset=request.offset, limit=request.limit
    )
    return rows, Pagination.of(request, total)
