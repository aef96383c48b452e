"""The hub cache: the one owner of the models directory.

One :class:`HubCache` is built by the composition root. Every service asks it what is
installed for a catalogue entry, takes its per-repository locks, and changes the cache only
through it. The tree of paths is drawn in ``store/layout.py``; who changes what::

    <models_dir>/
    ├── .locks/                          huggingface_hub's and instance.py's: never touched
    └── models--{org}--{name}/           lock(repo_id) orders everything that changes it
        ├── blobs/{hash}                 written by the download engine through
        │                                store/partial.py (verified, then renamed over
        │                                whatever was there: that is how a repair replaces
        │                                bad bytes), or adopt_blob from another repository;
        │                                removed: prune_revision (no other snapshot links
        │                                it), remove_blob (never before what replaces it
        │                                is verified), remove_planned (cleanup: a model's
        │                                ref, snapshots and the blobs only they link, or
        │                                the whole folder when nothing else is left)
        ├── blobs/{hash}.modeldepot-partial[.json]
        │                                a download in progress; removed: remove_partials,
        │                                collect_orphans (start-up)
        ├── refs/{revision}              switch_ref (atomic rename), only once every file
        │                                of the commit verified
        ├── snapshots/{commit}/{path}    link_file (atomic symlink; an entry linking out of
        │                                the root is replaced, never followed), link_files
        │                                (many, after one fsync of blobs/ made their renames
        │                                durable), remove_snapshot_entry; prune_revision
        │                                removes a whole commit; sync_snapshot makes it
        │                                durable before switch_ref names it
        └── .*.tmp, .*.tmp-link          left by a writer that died: sweep_temp_files,
                                         collect_orphans

What is installed for an entry, one rule for every service (:meth:`HubCache.installed`):

    commit    what ``refs/{revision}`` names; for a commit-pinned revision, the commit if
              its snapshot exists. None: nothing installed, and then the model is never
              available, however complete a snapshot is (huggingface_hub finds snapshots
              through the ref; see availability/judge.py)
    manifest  the files of that commit: the stored hub manifest, else one derived from the
              blob names the cache holds (``scan.manifest_for_entry``), else None
    latest    the newest resolved manifest of the tracked revision, for comparison

Blocking work runs off the event loop. Readers are plain ``async`` methods. Each writer
comes twice: ``name()`` runs it on a worker thread and, if the caller is cancelled, lets it
finish before the cancellation goes through (a half-done ref switch or prune is never
abandoned); ``name_blocking()`` is for code already on a worker thread (the download runner
links files there). Writers do not take the repository's lock (``asyncio.Lock`` is not
reentrant): a caller that decides from what is on disk and then acts (a blob judged present
is linked; a blob judged unused is removed) holds ``lock(repo_id)`` across both.

Every write stays inside the root: a path whose folder resolves outside it (a linked
``refs/``, ``blobs/``, ``snapshots/`` or repository folder) raises ``UnsafePath`` before
anything is written or removed (RELIABILITY.md 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from modeldepot.blocking import finish
from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.errors import DepotError
from modeldepot.files import fsync_dir
from modeldepot.ids import is_commit_hash
from modeldepot.store import prune, removal
from modeldepot.store.layout import PARTIAL_SUFFIX, RepoLayout, contain, sweep_temp_files
from modeldepot.store.locks import RepoLocks
from modeldepot.store.partial import translate_os_error
from modeldepot.store.removal import RemovalPlan
from modeldepot.store.scan import (
    Completeness,
    FileObservation,
    RepoOnDisk,
    completeness,
    list_repos,
    manifest_for_entry,
    observe_snapshot,
    refs_pointing_at,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Installed:
    """What is installed for one catalogue entry (see the module docstring for the rule)."""

    entry: CatalogEntry
    layout: RepoLayout
    commit: str | None
    manifest: Manifest | None
    latest: Manifest | None

    @property
    def expected(self) -> Manifest | None:
        """The files the model should have: the installed commit's, or with nothing
        installed the newest resolved commit's (what a download would fetch)."""
        return self.manifest if self.commit is not None else self.latest


class HubCache:
    """The models directory: what is installed, the repository locks, and every write."""

    def __init__(self, *, models_dir: Path, catalog: CatalogService) -> None:
        self._root = models_dir
        self._catalog = catalog
        self.locks = RepoLocks()

    @property
    def root(self) -> Path:
        return self._root

    def lock(self, repo_id: str) -> asyncio.Lock:
        """The lock of one repository (event loop only)."""
        return self.locks.get(repo_id)

    def layout(self, repo_id: str) -> RepoLayout:
        """Paths of one repository, for reading (raises UnsafePath for a hostile id)."""
        return RepoLayout(self._root, repo_id)

    # --- what is installed -------------------------------------------------------------

    async def installed(self, entry_or_id: CatalogEntry | str) -> Installed:
        """What is installed for a catalogue entry.

        Raises:
            InvalidModelId, ModelNotFound: an id the catalogue does not know.
        """
        entry = self._entry(entry_or_id)
        layout = self.layout(entry.repo_id)
        latest = self._catalog.state(entry.id).manifest
        commit = await anyio.to_thread.run_sync(layout.read_ref, entry.revision)
        manifest = None if commit is None else await self.manifest_for(entry, commit)
        return Installed(
            entry=entry, layout=layout, commit=commit, manifest=manifest, latest=latest
        )

    async def installed_commit(self, entry: CatalogEntry) -> str | None:
        """Only the installed commit (see :meth:`installed`), without loading a manifest."""
        layout = self.layout(entry.repo_id)
        return await anyio.to_thread.run_sync(layout.read_ref, entry.revision)

    async def manifest_for(self, entry: CatalogEntry, commit: str) -> Manifest | None:
        """The files of ``entry`` at ``commit``: stored hub manifest, else derived from the
        cache, else None (the one fallback rule)."""
        stored = await self._catalog.manifest_for_commit(entry.id, commit)
        if stored is not None:
            return stored
        layout = self.layout(entry.repo_id)
        return await anyio.to_thread.run_sync(manifest_for_entry, layout, entry, commit)

    async def observe(self, installed: Installed) -> tuple[FileObservation, ...]:
        """Presence and size of each expected file, in the snapshot of the installed commit
        or, with nothing installed, of the expected commit (where a download links files
        before it switches the ref)."""
        if installed.expected is None:
            return ()
        return await anyio.to_thread.run_sync(_observe_blocking, installed)

    async def observe_many(
        self, entries: Sequence[CatalogEntry]
    ) -> list[tuple[Installed, tuple[FileObservation, ...]]]:
        """:meth:`installed` and :meth:`observe` of many entries, in two hops to a worker
        thread rather than two per entry (a status listing of a hundred models, issue 9)."""
        layouts = [self.layout(entry.repo_id) for entry in entries]
        commits = await anyio.to_thread.run_sync(
            lambda: [
                layout.read_ref(entry.revision)
                for layout, entry in zip(layouts, entries, strict=True)
            ]
        )
        installed = [
            Installed(
                entry=entry,
                layout=layout,
                commit=commit,
                manifest=None if commit is None else await self.manifest_for(entry, commit),
                latest=self._catalog.state(entry.id).manifest,
            )
            for entry, layout, commit in zip(entries, layouts, commits, strict=True)
        ]
        files = await anyio.to_thread.run_sync(
            lambda: [_observe_blocking(item) for item in installed]
        )
        return list(zip(installed, files, strict=True))

    async def completeness(self, entry: CatalogEntry, commit: str) -> Completeness | None:
        """Whether ``snapshots/{commit}`` holds every file of its manifest with the right
        size; None when the manifest of that commit is unknown."""
        manifest = await self.manifest_for(entry, commit)
        if manifest is None:
            return None
        layout = self.layout(entry.repo_id)
        return await anyio.to_thread.run_sync(completeness, layout, commit, manifest.files)

    async def snapshot_commits(self, repo_id: str) -> list[str]:
        return await anyio.to_thread.run_sync(self.layout(repo_id).snapshot_commits)

    async def refs_pointing_at(self, repo_id: str, commit: str) -> list[str]:
        """Every ref of the repository (ours or another tool's) that names ``commit``."""
        return await anyio.to_thread.run_sync(refs_pointing_at, self.layout(repo_id), commit)

    def repositories_blocking(self) -> list[RepoOnDisk]:
        """Blocking: every repository folder, managed or not, with its size and refs."""
        return list_repos(self._root)

    # --- changing the cache ------------------------------------------------------------

    async def link_file(self, repo_id: str, *, commit: str, path: str, digest: str) -> Path:
        """See :meth:`link_file_blocking`."""
        return await _finish_off_loop(
            partial(self.link_file_blocking, repo_id, commit=commit, path=path, digest=digest)
        )

    def link_file_blocking(self, repo_id: str, *, commit: str, path: str, digest: str) -> Path:
        """Make ``snapshots/{commit}/{path}`` a relative link to the blob of ``digest``.

        Raises:
            UnsafePath: invalid commit, path or digest, or the link would land outside.
            StorageError: the file system refused the link.
        """
        return self.layout(repo_id).link_snapshot_file(commit, path, digest)

    def link_files_blocking(
        self, repo_id: str, *, commit: str, links: Sequence[tuple[str, str]]
    ) -> list[DepotError | None]:
        """Make the blobs just renamed into ``blobs/`` durable with one fsync of that
        directory, then link each ``(path, digest)`` into ``snapshots/{commit}``; return,
        per link, None or the error that prevented it. (A link is never created to a blob
        whose name a crash could still lose, and many files share one directory fsync.)

        Raises:
            UnsafePath: ``blobs/`` resolves outside the root.
            StorageError: the directory cannot be made durable (nothing was linked).
        """
        layout = self.layout(repo_id)
        contain(self._root, layout.blobs_dir)
        try:
            fsync_dir(layout.blobs_dir)
        except OSError as exc:
            raise translate_os_error(exc, "storing verified files") from exc
        results: list[DepotError | None] = []
        for path, digest in links:
            try:
                layout.link_snapshot_file(commit, path, digest)
            except DepotError as error:
                results.append(error)
            else:
                results.append(None)
        return results

    def sync_snapshot_blocking(self, repo_id: str, commit: str) -> None:
        """fsync ``blobs/`` and every folder of ``snapshots/{commit}``: what the snapshot
        names is on disk before a ref points at it (a crash leaves at worst a partial
        snapshot that no ref names, never a ref naming lost links).

        Raises:
            UnsafePath: a folder resolves outside the root.
            StorageError: the file system refused.
        """
        layout = self.layout(repo_id)
        snapshot = layout.snapshot_dir(commit)
        contain(self._root, snapshot)
        try:
            folders = [layout.blobs_dir, snapshot]
            for parent, names, _files in os.walk(snapshot):
                folders += [Path(parent, name) for name in names]
            for folder in folders:
                if folder.is_dir() and not folder.is_symlink():
                    fsync_dir(folder)
        except OSError as exc:
            raise translate_os_error(exc, "making a snapshot durable") from exc

    async def switch_ref(self, repo_id: str, *, revision: str, commit: str) -> str | None:
        """See :meth:`switch_ref_blocking`."""
        return await _finish_off_loop(
            partial(self.switch_ref_blocking, repo_id, revision=revision, commit=commit)
        )

    def switch_ref_blocking(self, repo_id: str, *, revision: str, commit: str) -> str | None:
        """Point ``refs/{revision}`` at ``commit`` atomically; return the commit it named
        before (None: none). A commit-pinned revision has no ref: nothing is written.

        Raises:
            UnsafePath: invalid revision or commit, or ``refs/`` resolves outside the root.
            StorageError: the file system refused the write.
        """
        if is_commit_hash(revision):
            return None
        layout = self.layout(repo_id)
        previous = layout.read_ref(revision)
        layout.write_ref(revision, commit)
        return previous

    async def prune_revision(self, repo_id: str, commit: str) -> int:
        """Remove ``snapshots/{commit}`` and the blobs only it linked; return bytes freed.
        The caller holds ``lock(repo_id)`` and has made sure no ref names ``commit``.

        Raises:
            UnsafePath, StorageError: see ``store/prune.py::remove_revision``.
        """
        return await _finish_off_loop(partial(self.prune_revision_blocking, repo_id, commit))

    def prune_revision_blocking(self, repo_id: str, commit: str) -> int:
        return prune.remove_revision(self.layout(repo_id), commit)

    async def remove_snapshot_entry(self, repo_id: str, *, commit: str, path: str) -> bool:
        """See :meth:`remove_snapshot_entry_blocking`."""
        return await _finish_off_loop(
            partial(self.remove_snapshot_entry_blocking, repo_id, commit=commit, path=path)
        )

    def remove_snapshot_entry_blocking(self, repo_id: str, *, commit: str, path: str) -> bool:
        """Unlink one snapshot entry (never its target); return whether there was one.

        Raises:
            UnsafePath, StorageError: see ``store/prune.py::remove_snapshot_entry``.
        """
        return prune.remove_snapshot_entry(self.layout(repo_id), commit, path)

    async def remove_blob(self, repo_id: str, digest: str, *, owner: str) -> bool:
        """See :meth:`remove_blob_blocking`."""
        return await _finish_off_loop(
            partial(self.remove_blob_blocking, repo_id, digest, owner=owner)
        )

    def remove_blob_blocking(self, repo_id: str, digest: str, *, owner: str) -> bool:
        """Remove the blob of ``digest`` unless a snapshot other than ``owner``'s links it;
        return whether it was removed.

        Raises:
            UnsafePath, StorageError: see ``store/prune.py::remove_blob``.
        """
        return prune.remove_blob(self.layout(repo_id), digest, owner=owner)

    async def plan_removal(
        self, repo_id: str, revision: str, *, keep: frozenset[str] = frozenset()
    ) -> RemovalPlan:
        """What removing the model tracking ``revision`` would remove
        (``store/removal.py``); changes nothing.

        Raises:
            UnsafePath: a folder of the repository is a link or resolves outside the root.
        """

        layout = self.layout(repo_id)
        return await anyio.to_thread.run_sync(
            partial(removal.plan_removal, layout, revision, keep=keep)
        )

    async def predicted_free_bytes(self, plans: Sequence[RemovalPlan]) -> int:
        """Allocated bytes removing every plan together would give back (a blob
        hard-linked into two of the repositories counted once, and only if both go)."""
        paths = [path for plan in plans for path in plan.paths]
        return await anyio.to_thread.run_sync(removal.predicted_free_bytes, paths)

    async def remove_planned(self, plan: RemovalPlan) -> int:
        """Remove what ``plan`` names; return the allocated bytes released, measured. The
        caller holds ``lock(plan.repo_id)`` and made the plan under it.

        Raises:
            UnsafePath, StorageError: see ``store/removal.py::execute_removal``.
        """
        layout = self.layout(plan.repo_id)
        return await _finish_off_loop(partial(removal.execute_removal, layout, plan))

    async def sweep_temp_files(self, repo_id: str) -> list[Path]:
        """See :meth:`sweep_temp_files_blocking`."""
        return await _finish_off_loop(partial(self.sweep_temp_files_blocking, repo_id))

    def sweep_temp_files_blocking(self, repo_id: str) -> list[Path]:
        """Remove what interrupted atomic writes left in the repository; return what was
        removed. Only when nothing writes there (start-up, or under ``lock(repo_id)``
        with no download of the repository running)."""
        return sweep_temp_files(self.layout(repo_id).path)

    async def remove_partials(self, repo_id: str, files: tuple[ManifestFile, ...]) -> None:
        """See :meth:`remove_partials_blocking`."""
        await _finish_off_loop(partial(self.remove_partials_blocking, repo_id, files))

    def remove_partials_blocking(self, repo_id: str, files: tuple[ManifestFile, ...]) -> None:
        """Remove the partial files and checkpoints of ``files`` (best effort).

        Raises:
            UnsafePath: see ``store/prune.py::remove_partials``.
        """
        prune.remove_partials(self.layout(repo_id), files)

    def adopt_blob_blocking(self, repo_id: str, digest: str, source: Path) -> None:
        """Give the repository its own copy of a verified blob another repository holds
        (a hard link, else a copy), unless it has one. Blocking.

        Raises:
            UnsafePath: ``blobs/`` resolves outside the root.
            StorageError: the file system refused (disk full, read-only...).
        """
        layout = self.layout(repo_id)
        own = layout.blob_path(digest)
        contain(self._root, layout.blobs_dir)
        if own == source or own.exists():
            return
        try:
            own.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, own)
            except OSError:
                shutil.copyfile(source, own)
        except OSError as exc:
            raise translate_os_error(exc, "sharing a blob between models") from exc

    def collect_orphans_blocking(
        self, *, managed: Callable[[str], bool], resuming: Mapping[str, set[str]]
    ) -> None:
        """Start-up, before anything writes: in each managed repository remove the temp
        files of interrupted writes, and partial files that no job will continue
        (``resuming``: repository id -> hex digests fetched again although their blob
        exists) or whose blob was promoted meanwhile. Repositories that are not in the
        catalogue are never touched."""
        for repo_on_disk in list_repos(self._root):
            if not managed(repo_on_disk.repo_id):
                continue
            layout = self.layout(repo_on_disk.repo_id)
            sweep_temp_files(layout.path)
            refetch = resuming.get(repo_on_disk.repo_id)
            for leftover in layout.blobs_dir.glob(f"*{PARTIAL_SUFFIX}*"):
                name = leftover.name.split(PARTIAL_SUFFIX)[0]
                promoted = leftover.with_name(name).exists() and name not in (refetch or ())
                if refetch is None or promoted:
                    with contextlib.suppress(OSError):
                        leftover.unlink()

    def _entry(self, entry_or_id: CatalogEntry | str) -> CatalogEntry:
        if isinstance(entry_or_id, CatalogEntry):
            return entry_or_id
        return self._catalog.get(entry_or_id)


def _observe_blocking(installed: Installed) -> tuple[FileObservation, ...]:
    expected = installed.expected
    if expected is None:
        return ()
    commit = installed.commit or expected.commit
    return observe_snapshot(installed.layout, commit, expected.files)


async def _finish_off_loop(work: Callable[[], T]) -> T:
    """Run a blocking write on a worker thread; a cancelled caller waits for it to end."""
    return await finish(anyio.to_thread.run_sync(work))
