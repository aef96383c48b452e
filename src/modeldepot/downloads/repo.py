"""Queries of the downloads domain."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modeldepot.downloads.models import DownloadRow
from modeldepot.downloads.state import DownloadStatus

NOT_TERMINAL = [s.value for s in DownloadStatus if not s.is_terminal]


async def save(session: AsyncSession, row: DownloadRow) -> None:
    await session.merge(row)


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


async def max_seq(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(DownloadRow.seq), 0))) or 0)
