"""The pagination primitives (issue 10): page maths, in-memory sorting, the query
dependency, and ``page_select`` on a real SQLite and a real PostgreSQL database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modeldepot.api.pagination import (
    Order,
    Page,
    PageRequest,
    Pagination,
    page_query,
    page_select,
    sort_and_page,
)
from modeldepot.db import UtcDateTime, create_engine


def request(page: int = 1, limit: int = 20, sort: str = "id", order: str = "asc") -> PageRequest:
    return PageRequest(page=page, limit=limit, sort=sort, order=Order(order))


# --- page maths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "limit", "total", "pages", "has_next", "has_prev"),
    [
        (1, 20, 0, 0, False, False),  # empty: no page holds anything
        (1, 20, 1, 1, False, False),
        (1, 20, 20, 1, False, False),
        (1, 20, 21, 2, True, False),
        (2, 20, 21, 2, False, True),
        (3, 20, 21, 2, False, True),  # past the end
        (2, 1, 3, 3, True, True),
        (1, 100, 150, 2, True, False),
        (8, 20, 150, 8, False, True),  # the seed's example: 150 items, 8 pages
    ],
)
def test_pagination_maths(
    page: int, limit: int, total: int, pages: int, has_next: bool, has_prev: bool
) -> None:
    got = Pagination.of(request(page=page, limit=limit), total)
    assert got.model_dump() == {
        "page": page,
        "limit": limit,
        "total": total,
        "pages": pages,
        "has_next": has_next,
        "has_prev": has_prev,
    }


def test_page_request_offset_and_slice() -> None:
    items = list(range(45))
    assert request(page=1).offset == 0
    assert request(page=3).offset == 40
    assert request(page=1).slice(items) == list(range(20))
    assert request(page=3).slice(items) == [40, 41, 42, 43, 44]
    assert request(page=4).slice(items) == []
    assert request(page=2, limit=7).slice(tuple(items)) == list(range(7, 14))


def test_page_of_items_serialises_data_and_pagination() -> None:
    page = Page[int](data=[1, 2], pagination=Pagination.of(request(limit=2), 5))
    assert page.model_dump() == {
        "data": [1, 2],
        "pagination": {
            "page": 1,
            "limit": 2,
            "total": 5,
            "pages": 3,
            "has_next": True,
            "has_prev": False,
        },
    }


# --- in-memory sorting --------------------------------------------------------------------

Item = tuple[str, float | None]
ITEMS: list[Item] = [("d", 2.0), ("a", None), ("c", 1.0), ("e", 2.0), ("b", None), ("f", 3.0)]
KEYS = {"id": lambda i: i[0], "size": lambda i: i[1]}


def _ids(items: list[Item]) -> list[str]:
    return [i[0] for i in items]


def test_sort_and_page_puts_none_last_in_asc_and_first_in_desc_ties_by_id() -> None:
    asc, _ = sort_and_page(ITEMS, request(sort="size"), keys=KEYS, tie=lambda i: i[0])
    desc, _ = sort_and_page(ITEMS, request(sort="size", order="desc"), keys=KEYS, tie=KEYS["id"])
    assert _ids(asc) == ["c", "d", "e", "f", "a", "b"]
    assert _ids(desc) == ["a", "b", "f", "d", "e", "c"]  # ties stay ascending by id


def test_sort_and_page_pages_through_every_item_exactly_once() -> None:
    for sort, order, limit in itertools.product(("id", "size"), ("asc", "desc"), (1, 2, 4)):
        whole, _ = sort_and_page(
            ITEMS, request(sort=sort, order=order, limit=100), KEYS, KEYS["id"]
        )
        pages = []
        for page in (1, 2, 3, 4, 5, 6, 7):
            items, pagination = sort_and_page(
                iter(ITEMS),
                request(page=page, limit=limit, sort=sort, order=order),
                KEYS,
                KEYS["id"],
            )
            assert pagination.total == len(ITEMS)
            assert pagination.pages == -(-len(ITEMS) // limit)
            pages.extend(items)
        assert pages == whole, (sort, order, limit)
        assert sorted(_ids(whole)) == sorted(_ids(ITEMS))


def test_sort_and_page_past_the_end_is_empty_with_totals() -> None:
    items, pagination = sort_and_page(ITEMS, request(page=9, limit=5), KEYS, KEYS["id"])
    assert items == []
    assert (pagination.total, pagination.pages, pagination.has_next, pagination.has_prev) == (
        6,
        2,
        False,
        True,
    )


# --- the query dependency -----------------------------------------------------------------


def test_page_query_refuses_a_default_sort_it_does_not_offer() -> None:
    with pytest.raises(ValueError, match="default sort"):
        page_query(("model_id",), "size")


async def test_page_query_reads_defaults_validates_and_documents_the_choices() -> None:
    app = FastAPI()
    reader = Depends(page_query(("name", "size"), "name"))

    @app.get("/things")
    async def things(page: PageRequest = reader) -> dict[str, Any]:
        return {"page": page.page, "limit": page.limit, "sort": page.sort, "order": page.order}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        default = (await client.get("/things")).json()
        chosen = (await client.get("/things?page=3&limit=100&sort=size&order=desc")).json()
        refused = {
            query: (await client.get(f"/things?{query}")).status_code
            for query in (
                "page=0",
                "page=1000001",
                "page=x",
                "limit=0",
                "limit=101",
                "sort=colour",
                "sort=",
                "order=up",
            )
        }
        edge = (await client.get("/things?page=1000000&limit=1")).status_code
        document = (await client.get("/openapi.json")).json()

    assert default == {"page": 1, "limit": 20, "sort": "name", "order": "asc"}
    assert chosen == {"page": 3, "limit": 100, "sort": "size", "order": "desc"}
    assert set(refused.values()) == {422}, refused
    assert edge == 200
    parameters = {p["name"]: p for p in document["paths"]["/things"]["get"]["parameters"]}
    assert set(parameters) == {"page", "limit", "sort", "order"}
    assert all(p["in"] == "query" and p["description"] for p in parameters.values())
    assert parameters["sort"]["schema"]["enum"] == ["name", "size"]
    assert parameters["sort"]["schema"]["default"] == "name"
    assert parameters["limit"]["schema"]["maximum"] == 100
    order_schema = document["components"]["schemas"]["Order"]
    assert order_schema["enum"] == ["asc", "desc"]


# --- page_select on real databases --------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "pagination_things"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = [
    {"id": n, "kind": kind, "size": size, "seen_at": None if size is None else T0 + timedelta(n)}
    for n, kind, size in [
        (7, "a", 30),
        (2, "b", None),
        (5, "a", 10),
        (1, "b", 30),
        (9, "a", None),
        (3, "c", 20),
        (8, "b", 10),
        (4, "c", None),
        (6, "a", 30),
    ]
]
COLUMNS = {"id": Thing.id, "kind": Thing.kind, "size": Thing.size, "seen_at": Thing.seen_at}


@pytest.fixture
async def sessions(
    database: dict[str, Any], tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = database.get("database_url", f"sqlite+aiosqlite:///{tmp_path / 'things.db'}")
    engine: AsyncEngine = create_engine(url, schema=database.get("database_schema"))
    try:
        async with engine.begin() as connection:
            if "database_schema" in database:  # dropped by the fixture afterwards
                await connection.exec_driver_sql(f'create schema "{database["database_schema"]}"')
            await connection.run_sync(_Base.metadata.create_all)
            await connection.execute(Thing.__table__.insert(), ROWS)
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def _in_memory(req: PageRequest, rows: list[dict[str, Any]]) -> tuple[list[int], Pagination]:
    keys = {name: (lambda r, name=name: r[name]) for name in COLUMNS}
    items, pagination = sort_and_page(rows, req, keys=keys, tie=lambda r: r["id"])
    return [r["id"] for r in items], pagination


async def test_page_select_sorts_and_pages_in_sql_as_in_memory(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        size_asc, _ = await page_select(
            session, select(Thing), request(sort="size", limit=100), COLUMNS, Thing.id
        )
        size_desc, _ = await page_select(
            session, select(Thing), request(sort="size", order="desc"), COLUMNS, Thing.id
        )
        for sort, order, limit in itertools.product(COLUMNS, ("asc", "desc"), (2, 4, 100)):
            for page in (1, 2, 3, 4, 5, 6):
                req = request(page=page, limit=limit, sort=sort, order=order)
                things, pagination = await page_select(
                    session, select(Thing), req, COLUMNS, Thing.id
                )
                assert ([t.id for t in things], pagination) == _in_memory(req, ROWS), req

    # NULLs last in asc and first in desc on both backends; ties by id, ascending.
    assert [t.id for t in size_asc] == [5, 8, 3, 1, 6, 7, 2, 4, 9]
    assert [t.id for t in size_desc] == [2, 4, 9, 1, 6, 7, 3, 5, 8]
    assert all(isinstance(t, Thing) for t in size_asc)


async def test_page_select_counts_the_filtered_statement_and_replaces_its_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    statement = select(Thing).where(Thing.kind == "a").order_by(Thing.size.desc())
    async with sessions() as session:
        first, first_page = await page_select(
            session, statement, request(limit=3, sort="size"), COLUMNS, Thing.id
        )
        beyond, beyond_page = await page_select(
            session, statement, request(page=5, limit=3, sort="size"), COLUMNS, Thing.id
        )
        columns, _ = await page_select(
            session,
            select(Thing.id, Thing.kind).where(Thing.kind != "a"),
            request(sort="kind", order="desc"),
            COLUMNS,
            Thing.id,
        )
        one_column, _ = await page_select(
            session, select(Thing.kind).distinct(), request(sort="kind"), COLUMNS, Thing.kind
        )
        empty, empty_page = await page_select(
            session, select(Thing).where(Thing.kind == "z"), request(sort="id"), COLUMNS, Thing.id
        )

    assert [t.id for t in first] == [5, 6, 7]
    assert first_page == Pagination(
        page=1, limit=3, total=4, pages=2, has_next=True, has_prev=False
    )
    assert beyond == []
    assert (beyond_page.total, beyond_page.pages, beyond_page.has_prev) == (4, 2, True)
    assert [tuple(row) for row in columns] == [(3, "c"), (4, "c"), (1, "b"), (2, "b"), (8, "b")]
    assert one_column == ["a", "b", "c"]
    assert empty == []
    assert empty_page == Pagination(
        page=1, limit=20, total=0, pages=0, has_next=False, has_prev=False
    )
