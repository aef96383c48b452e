"""Queries of the health domain: check runs and the quick-check digest cache."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modeldepot.health.integrity import KnownDigest
from modeldepot.health.models import FileDigestRow, HealthCheckRow

_INT64 = 1 << 63


async def save_run(session: AsyncSession, row: HealthCheckRow) -> None:
    await session.merge(row)


async def get_run(session: AsyncSession, check_id: str) -> HealthCheckRow | None:
    return await session.get(HealthCheckRow, check_id)


async def unfinished_runs(session: AsyncSession) -> list[HealthCheckRow]:
    query = select(HealthCheckRow).where(HealthCheckRow.status.in_(["queued", "running"]))
    return list(await session.scalars(query))


async def completed_runs(
    session: AsyncSession, *, check_types: tuple[str, ...], model_id: str | None = None, limit: int
) -> list[HealthCheckRow]:
    """Completed runs of these types, newest first (optionally of one model)."""
    query = select(HealthCheckRow).where(
        HealthCheckRow.status == "completed", HealthCheckRow.check_type.in_(check_types)
    )
    if model_id is not None:
        query = query.where(HealthCheckRow.model_id == model_id)
    query = query.order_by(HealthCheckRow.finished_at.desc()).limit(limit)
    return list(await session.scalars(query))


async def latest_completed_per_model(
    session: AsyncSession, *, check_types: tuple[str, ...]
) -> dict[str, HealthCheckRow]:
    """The newest completed run of these types for every model that has one."""
    query = (
        select(HealthCheckRow)
        .where(HealthCheckRow.status == "completed", HealthCheckRow.check_type.in_(check_types))
        .order_by(HealthCheckRow.finished_at.asc())
    )
    latest: dict[str, HealthCheckRow] = {}
    for row in await session.scalars(query):
        latest[row.model_id] = row
    return latest


async def known_digests(
    session: AsyncSession, *, repo_id: str, commit: str
) -> dict[str, KnownDigest]:
    query = select(FileDigestRow).where(
        FileDigestRow.repo_id == repo_id, FileDigestRow.commit_hash == commit
    )
    return {
        row.path: KnownDigest(row.size, row.mtime_ns, _from_int64(row.inode), row.digest)
        for row in await session.scalars(query)
    }


async def save_digests(
    session: AsyncSession,
    *,
    repo_id: str,
    commit: str,
    digests: Mapping[str, KnownDigest],
    verified_at: datetime,
) -> None:
    """Replace the cached digests of these files (delete + insert: portable upsert)."""
    if not digests:
        return
    await session.execute(
        delete(FileDigestRow).where(
            FileDigestRow.repo_id == repo_id,
            FileDigestRow.commit_hash == commit,
            FileDigestRow.path.in_(list(digests)),
        )
    )
    session.add_all(
        FileDigestRow(
            repo_id=repo_id,
            commit_hash=commit,
            path=path,
            size=known.size,
            mtime_ns=known.mtime_ns,
            inode=_to_int64(known.inode),
            digest=known.digest,
            verified_at=verified_at,
        )
        for path, known in digests.items()
    )


def _to_int64(value: int) -> int:
    """Inode numbers are unsigned 64-bit; BIGINT is signed: store the two's complement."""
    return value - (1 << 64) if value >= _INT64 else value


def _from_int64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
