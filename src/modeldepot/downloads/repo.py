"""Queries of the downloads domain.

A job row is written with one INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL
both have it): saving never races itself into a duplicate key, whoever saves first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from modeldepot.downloads.models import DownloadRow
from modeldepot.downloads.state import DownloadStatus

NOT_TERMINAL = [s.value for s in DownloadStatus if not s.is_terminal]


async def save(session: AsyncSession, row: DownloadRow) -> None:
    """Insert or update the row of one job."""
    values: dict[str, Any] = {
        column.key: getattr(row, column.key) for column in inspect(DownloadRow).column_attrs
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(DownloadRow).values(**values)
    changed = {key: statement.excluded[key] for key in values if key != "id"}
    await session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=changed))


async def unfinished(session: AsyncSession) -> list[DownloadRow]:
    """Jobs that were queued, running, verifying or paused when the service stopped."""
    query = select(DownloadRow).where(DownloadRow.status.in_(NOT_TERMINAL))
    return list(await session.scalars(query.order_by(DownloadRow.seq)))


async def latest_per_model(session: AsyncSession) -> list[DownloadRow]:
    newest = (
        select(DownloadRow.model_id, func.max(DownloadRow.seq).label("seq"))
        .group_by(DownloadRow.model_id)
        .subquery()
    )
    query = select(DownloadRow).join(
        newest, (DownloadRow.model_id == newest.c.model_id) & (DownloadRow.seq == newest.c.seq)
    )
    return list(await session.scalars(query))


async def get(session: AsyncSession, download_id: str) -> DownloadRow | None:
    return await session.get(DownloadRow, download_id)


async def max_seq(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(DownloadRow.seq), 0))) or 0)
