"""The catalogue service: which models exist, and each one's newest resolved manifest.

Resolution runs in the background (at start-up and every ``hub_refresh_interval_minutes``)
with bounded concurrency; readers never wait on the hub. Results and errors are stored in
the database, so a restart without network still knows every model's files, and kept in
memory, so status requests cost no query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.blocking import finish
from modeldepot.catalog import repo
from modeldepot.catalog.manifest import Manifest, select_files
from modeldepot.catalog.models import ModelSourceState
from modeldepot.catalog.repo import StoredManifest
from modeldepot.catalog.resolver import SourceResolver
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.errors import ModelNotFound, UpstreamError
from modeldepot.ids import validate_model_id
from modeldepot.singleflight import SingleFlight

logger = logging.getLogger(__name__)

ManifestListener = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ManifestState:
    """What is known about a model's source: its newest manifest and the last failure."""

    manifest: Manifest | None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    error_code: str | None = None
    error: str | None = None
    resolving: bool = False


class CatalogService:
    """Catalogue entries plus their resolved manifests (in memory, backed by the database)."""

    def __init__(
        self,
        *,
        entries: Mapping[str, CatalogEntry],
        resolver: SourceResolver,
        sessions: async_sessionmaker[AsyncSession],
        concurrency: int,
    ) -> None:
        self._entries = dict(entries)
        self._resolver = resolver
        self._sessions = sessions
        self._states: dict[str, ManifestState] = {m: ManifestState(None) for m in self._entries}
        self._limit = asyncio.Semaphore(concurrency)
        self._resolving: SingleFlight[str, ManifestState] = SingleFlight("resolve")
        self._listeners: list[ManifestListener] = []

    # --- entries -------------------------------------------------------------------------

    @property
    def entries(self) -> Mapping[str, CatalogEntry]:
        return self._entries

    def get(self, model_id: str) -> CatalogEntry:
        """The entry for ``model_id``.

        Raises:
            InvalidModelId: the id breaks the id rule.
            ModelNotFound: no such model in the catalogue.
        """
        validate_model_id(model_id)
        try:
            return self._entries[model_id]
        except KeyError:
            raise ModelNotFound(model_id) from None

    def on_manifest_change(self, listener: ManifestListener) -> None:
        self._listeners.append(listener)

    # --- manifests -----------------------------------------------------------------------

    def state(self, model_id: str) -> ManifestState:
        self.get(model_id)
        return self._states[model_id]

    async def manifest_for_commit(self, model_id: str, commit: str) -> Manifest | None:
        """The stored manifest of ``model_id`` at ``commit`` (e.g. an older installed one)."""
        entry = self.get(model_id)
        current = self._states[model_id].manifest
        if current is not None and current.commit == commit:
            return current
        async with self._sessions() as session:
            stored = await repo.find_manifest(session, entry.repo_id, commit)
        return None if stored is None else _model_view(entry, stored)

    async def load(self) -> None:
        """Fill the in-memory states from the database (start-up)."""
        async with self._sessions() as session:
            for row in await repo.all_source_states(session):
                entry = self._entries.get(row.model_id)
                if entry is None or row.source != entry.source or row.revision != entry.revision:
                    continue  # the catalogue entry changed since: resolve afresh
                stored = None
                if row.latest_manifest_id is not None:
                    stored = await repo.load_manifest(session, row.latest_manifest_id)
                self._states[row.model_id] = ManifestState(
                    manifest=None if stored is None else _model_view(entry, stored),
                    last_attempt_at=row.last_attempt_at,
                    last_success_at=row.last_success_at,
                    error_code=row.last_error_code,
                    error=row.last_error,
                )

    async def refresh(self, model_id: str) -> ManifestState:
        """Resolve ``model_id`` now (joining a resolution already running).

        Raises:
            ModelNotFound, InvalidModelId: see :meth:`get`.
        """
        self.get(model_id)
        return await self._resolving.run(model_id, lambda: self._refresh(model_id))

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(model_id) for model_id in self._entries))

    async def run_refresh_loop(self, interval_seconds: float) -> None:
        """Refresh every model now and then every ``interval_seconds``, until cancelled."""
        while True:
            await finish(self.refresh_all())  # bounded by the hub timeout
            await asyncio.sleep(interval_seconds)

    async def _refresh(self, model_id: str) -> ManifestState:
        entry = self._entries[model_id]
        async with self._limit:
            self._states[model_id] = replace(self._states[model_id], resolving=True)
            attempt = datetime.now(UTC)
            try:
                manifest = await self._resolver.resolve(entry)
            except UpstreamError as exc:
                logger.warning("Resolving %s failed: %s", model_id, exc.message)
                state = replace(
                    self._states[model_id],
                    last_attempt_at=attempt,
                    error_code=exc.code,
                    error=exc.message,
                    resolving=False,
                )
                await self._persist(entry, state, manifest=None)
            else:
                state = ManifestState(
                    manifest=None, last_attempt_at=attempt, last_success_at=attempt
                )
                stored = await self._persist(entry, state, manifest=manifest)
                state = replace(
                    state, manifest=None if stored is None else _model_view(entry, stored)
                )
        changed = self._states[model_id].manifest != state.manifest
        self._states[model_id] = state
        if changed:
            for listener in self._listeners:
                await listener(model_id)
        return state

    async def _persist(
        self, entry: CatalogEntry, state: ManifestState, *, manifest: Manifest | None
    ) -> StoredManifest | None:
        """Record the attempt; return the manifest exactly as stored (shared with others)."""
        async with self._sessions() as session, session.begin():
            existing = await repo.get_source_state(session, entry.id)
            manifest_id = existing.latest_manifest_id if existing else None
            if existing and (
                existing.source != entry.source or existing.revision != entry.revision
            ):
                manifest_id = None
            if manifest is not None:
                manifest_id = await repo.save_manifest(session, manifest)
            await repo.upsert_source_state(
                session,
                ModelSourceState(
                    model_id=entry.id,
                    latest_manifest_id=manifest_id,
                    source=entry.source,
                    revision=entry.revision,
                    last_attempt_at=state.last_attempt_at,
                    last_success_at=state.last_success_at,
                    last_error_code=state.error_code,
                    last_error=state.error,
                ),
            )
            if manifest is None or manifest_id is None:
                return None
            return await repo.load_manifest(session, manifest_id)


def _model_view(entry: CatalogEntry, stored: StoredManifest) -> Manifest:
    """The part of a repository manifest that ``entry`` selects."""
    return Manifest(
        model_id=entry.id,
        source=stored.source,
        repo_id=stored.repo_id,
        revision=entry.revision,
        commit=stored.commit,
        files=select_files(
            stored.files,
            allow_patterns=entry.allow_patterns,
            ignore_patterns=entry.ignore_patterns,
        ),
        resolved_at=stored.resolved_at,
    )
