"""Queries of the catalogue domain: storing manifests and the resolution state of models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modeldepot.catalog.manifest import Manifest, ManifestFile, ManifestSource
from modeldepot.catalog.models import ManifestFileRow, ManifestRow, ModelSourceState


@dataclass(frozen=True)
class StoredManifest:
    """A repository's full file list at a commit, as stored."""

    source: ManifestSource
    repo_id: str
    commit: str
    files: tuple[ManifestFile, ...]
    resolved_at: datetime


async def save_manifest(session: AsyncSession, manifest: Manifest) -> int:
    """Store ``manifest`` unless the same repository commit is stored already; return its id.

    Models sharing a repository (or replicas sharing a database) may store the same commit
    at the same moment: the loser of the unique constraint reads the winner's row.
    """
    existing = await _find_row(session, manifest.repo_id, manifest.commit)
    if existing is not None and manifest.source != "url":
        return existing.id
    if existing is not None:
        # A URL "commit" is derived from URL + pin; its size may be learnt later.
        await session.delete(existing)
        await session.flush()
    row = ManifestRow(
        source=manifest.source,
        repo_id=manifest.repo_id,
        commit_hash=manifest.commit,
        resolved_at=manifest.resolved_at,
        files=[ManifestFileRow(path=f.path, size=f.size, digest=f.digest) for f in manifest.files],
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        winner = await _find_row(session, manifest.repo_id, manifest.commit)
        if winner is None:
            raise
        return winner.id
    return row.id


async def _find_row(session: AsyncSession, repo_id: str, commit: str) -> ManifestRow | None:
    return await session.scalar(
        select(ManifestRow).where(ManifestRow.repo_id == repo_id, ManifestRow.commit_hash == commit)
    )


async def load_manifest(session: AsyncSession, manifest_id: int) -> StoredManifest | None:
    row = await session.get(ManifestRow, manifest_id)
    return None if row is None else _to_stored(row)


async def find_manifest(session: AsyncSession, repo_id: str, commit: str) -> StoredManifest | None:
    row = await _find_row(session, repo_id, commit)
    return None if row is None else _to_stored(row)


async def get_source_state(session: AsyncSession, model_id: str) -> ModelSourceState | None:
    return await session.get(ModelSourceState, model_id)


async def all_source_states(session: AsyncSession) -> list[ModelSourceState]:
    return list(await session.scalars(select(ModelSourceState)))


async def upsert_source_state(session: AsyncSession, state: ModelSourceState) -> None:
    await session.merge(state)


def _to_stored(row: ManifestRow) -> StoredManifest:
    source: ManifestSource = "url" if row.source == "url" else "hub"
    return StoredManifest(
        source=source,
        repo_id=row.repo_id,
        commit=row.commit_hash,
        files=tuple(ManifestFile(path=f.path, size=f.size, digest=f.digest) for f in row.files),
        resolved_at=row.resolved_at,
    )
