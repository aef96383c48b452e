"""Running one download job: which files are needed, fetching them, publishing the revision.

Files already in the snapshot, or whose blob already exists (shared with another
revision or model), are linked without a byte of traffic. A blob that another job is
fetching right now is waited for, then linked: it is fetched once (RELIABILITY.md 28).
The ref moves to the new commit only when every file verified, so a model is never
reported available from unverified bytes.

What a file costs beyond its bytes is paid once per batch where durability allows
(issue 9, many small files): each blob is fsynced before its rename, but the renames of
the files finishing together share one fsync of ``blobs/`` (``LinkBatch``), done before
any of them is linked; before the ref moves, ``blobs/`` and the snapshot's folders are
fsynced once more, so a ref never names links or blobs a crash could lose. Progress is
stored at most once a second, not per file (the disk, not the row, says which files are
done). Up to ``SMALL_FILES_IN_PARALLEL`` small files (one request each) are in flight, on
connections kept alive across files, besides ``FILES_IN_PARALLEL`` segmented ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from modeldepot.blocking import run
from modeldepot.catalog.manifest import ManifestFile
from modeldepot.catalog.schemas import CatalogEntry, HubSource
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.retry import RetryPolicy, is_transient
from modeldepot.downloads.transfer import FileFetch, TransferContext
from modeldepot.errors import DepotError, InsufficientStorage, StorageError
from modeldepot.store.cache import HubCache
from modeldepot.store.layout import RepoLayout
from modeldepot.store.service import disk_space
from modeldepot.units import GB

logger = logging.getLogger(__name__)
FILES_IN_PARALLEL = 4
SMALL_FILES_IN_PARALLEL = 16
SAVE_INTERVAL = 1.0
"""Seconds between two stores of a job's progress while files complete."""


class BlobRegistry:
    """Blobs being fetched right now, by digest: the second asker waits for the first.

    Each fetcher writes the partial file in its own repository's ``blobs/``; clean-up of a
    partial (cancel, permanent failure) removes it only while no fetcher of the same
    repository holds that digest, and keeps new fetchers of that repository out meanwhile.
    """

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self._owners: dict[str, str] = {}  # digest -> repository whose partial is written
        self._cleaning: dict[tuple[str, str], asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def claim(self, digest: str | None, *, repo_id: str) -> AsyncIterator[Path | None]:
        """Yield the blob another job fetched meanwhile, or None: then the caller fetches
        it and calls ``publish``; if it fails, the next waiter takes over."""
        if digest is None:
            yield None
            return
        while True:
            if (cleaning := self._cleaning.get((repo_id, digest))) is not None:
                await cleaning.wait()
                continue
            other = await self._wait_for_other(digest)
            if other is not None:
                yield other
                return
            if (repo_id, digest) not in self._cleaning and digest not in self._inflight:
                break
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        self._owners[digest] = repo_id
        try:
            yield None
        finally:
            if self._inflight.get(digest) is future:
                del self._inflight[digest]
                self._owners.pop(digest, None)
            if not future.done():
                future.cancel()

    @contextlib.asynccontextmanager
    async def try_claim(self, digest: str | None, *, repo_id: str) -> AsyncIterator[bool]:
        """For clean-up: yield True when the partial of ``digest`` in ``repo_id`` is
        nobody's (no fetcher of that repository holds the digest; one of another
        repository writes elsewhere), keeping that repository's fetchers out meanwhile."""
        key = (repo_id, digest or "")
        if digest is None or self._owners.get(digest) == repo_id or key in self._cleaning:
            yield False
            return
        done = self._cleaning[key] = asyncio.Event()
        try:
            yield True
        finally:
            del self._cleaning[key]
            done.set()

    async def _wait_for_other(self, digest: str) -> Path | None:
        while (pending := self._inflight.get(digest)) is not None:
            await asyncio.wait({pending})  # raises only if *we* are cancelled
            if not pending.cancelled():
                return pending.result()
        return None

    def publish(self, digest: str, blob: Path) -> None:
        future = self._inflight.get(digest)
        if future is not None and not future.done():
            future.set_result(blob)


@dataclass
class _Link:
    path: str
    digest: str
    done: bool = False
    error: DepotError | None = None


class LinkBatch:
    """Verified blobs waiting to be linked into one snapshot, committed in groups: the
    first waiter runs one fsync of ``blobs/`` and links every blob renamed so far; those
    that arrive meanwhile go in the next group (group commit)."""

    def __init__(self, *, cache: HubCache, repo_id: str, commit: str, executor: Executor):
        self._cache = cache
        self._repo_id = repo_id
        self._commit = commit
        self._executor = executor
        self._waiting: list[_Link] = []
        self._lock = asyncio.Lock()

    async def link(self, path: str, digest: str) -> None:
        """Return once the blob's name is durable and ``path`` links to it.

        Raises:
            StorageError, UnsafePath: the folder fsync or this link failed.
        """
        item = _Link(path, digest)
        self._waiting.append(item)
        async with self._lock:
            if not item.done:
                group, self._waiting = self._waiting, []
                # run() lets the thread finish even if we are cancelled: the group's
                # outcome is always recorded for its other members.
                await run(self._executor, self._commit_blocking, group)
        if item.error is not None:
            raise item.error
        if not item.done:  # the group's commit crashed (a bug): never claim the link
            raise StorageError(f"Linking {path} failed")

    def _commit_blocking(self, group: list[_Link]) -> None:
        errors: list[DepotError | None]
        try:
            errors = self._cache.link_files_blocking(
                self._repo_id, commit=self._commit, links=[(i.path, i.digest) for i in group]
            )
        except DepotError as failure:
            errors = [failure] * len(group)
        for item, error in zip(group, errors, strict=True):
            item.error, item.done = error, True


@dataclass
class SpaceCheck:
    models_dir: Path
    reserve_bytes: int
    quota_bytes: int
    used_bytes: Callable[[], int]

    make_room: Callable[[int, InsufficientStorage], Awaitable[None]] | None = None
    """Frees space or raises InsufficientStorage (see DownloadService.on_short_of_space)."""

    async def secure(self, needed: int, executor: Executor) -> None:
        """Make sure ``needed`` more bytes fit, making room if a limit would be crossed.

        Raises:
            InsufficientStorage: they do not fit and no room could be made.
        """
        try:
            await run(executor, self.ensure, needed)
        except InsufficientStorage as short:
            if self.make_room is None:
                raise
            await self.make_room(needed, short)
            await run(executor, self.ensure, needed)

    def ensure(self, needed: int) -> None:
        """Raises InsufficientStorage when ``needed`` more bytes would break a limit."""
        free = disk_space(self.models_dir).free
        if needed + self.reserve_bytes > free:
            raise InsufficientStorage(
                f"Not enough disk space: {needed / GB:.2f} GB needed plus "
                f"{self.reserve_bytes / GB:.2f} GB reserve, {free / GB:.2f} GB free",
                details={"needed_bytes": needed, "free_bytes": free},
            )
        if self.quota_bytes and self.used_bytes() + needed > self.quota_bytes:
            raise InsufficientStorage(
                f"The storage quota of {self.quota_bytes / GB:.2f} GB would be exceeded",
                details={"needed_bytes": needed, "quota_bytes": self.quota_bytes},
            )


def file_url(entry: CatalogEntry, *, endpoint: str, commit: str, path: str) -> str:
    source = entry.parsed_source()
    if isinstance(source, HubSource):
        return f"{endpoint}/{source.repo_id}/resolve/{commit}/{quote(path)}"
    return entry.source


@dataclass
class JobRunner:
    """Everything a job needs; ``run`` does the work and raises on failure."""

    job: Job
    entry: CatalogEntry
    cache: HubCache
    endpoint: str
    context: TransferContext
    blobs: BlobRegistry
    space: SpaceCheck
    on_file_done: Callable[[], Awaitable[None]]
    _links: LinkBatch | None = None
    _saved_at: float = 0.0

    @property
    def layout(self) -> RepoLayout:
        return self.cache.layout(self.job.repo_id)

    @property
    def links(self) -> LinkBatch:
        if self._links is None:
            self._links = LinkBatch(
                cache=self.cache,
                repo_id=self.job.repo_id,
                commit=self.job.commit,
                executor=self.context.executor,
            )
        return self._links

    async def run(self) -> None:
        # Under the repository's lock: the revision sweep cannot remove what we link here.
        async with self.cache.lock(self.job.repo_id):
            pending = await run(self.context.executor, self._link_present_files)
        needed = sum(f.size or 0 for f in pending)
        await self.space.secure(needed, self.context.executor)
        limits = {
            True: asyncio.Semaphore(SMALL_FILES_IN_PARALLEL),
            False: asyncio.Semaphore(FILES_IN_PARALLEL),
        }
        min_segment = self.context.settings.min_segment

        async def fetch(file: ManifestFile) -> None:
            await self._fetch_file(file, limit=limits[(file.size or 0) <= min_segment])

        try:
            async with asyncio.TaskGroup() as group:
                for file in pending:
                    group.create_task(fetch(file))
        except* DepotError as failures:
            raise failures.exceptions[0] from None
        finally:
            self.context.pool.close()

    def publish_ref(self) -> str | None:
        """Blocking: make the snapshot durable, then point the tracked ref at the job's
        commit (every file verified); return the commit it pointed at."""
        self.cache.sync_snapshot_blocking(self.job.repo_id, self.job.commit)
        return self.cache.switch_ref_blocking(
            self.job.repo_id, revision=self.job.revision, commit=self.job.commit
        )

    def _link_present_files(self) -> list[ManifestFile]:
        """Blocking: link files whose verified blob exists; return the ones to fetch."""
        pending = []
        for file in self.job.files:
            if self._present(file):
                self.job.verified[file.path] = file.size or 0
            else:
                pending.append(file)
        return pending

    def _present(self, file: ManifestFile) -> bool:
        if file.digest is None or file.size is None or file.digest in self.job.refetch:
            return False
        blob = self.layout.blob_path(file.digest)
        try:
            if blob.stat().st_size != file.size:
                return False
        except OSError:
            return False
        self.cache.link_file_blocking(
            self.job.repo_id, commit=self.job.commit, path=file.path, digest=file.digest
        )
        return True

    async def _fetch_file(self, file: ManifestFile, *, limit: asyncio.Semaphore) -> None:
        """Fetch one file while holding a place in ``limit``, then (the place already
        given to the next file) wait for its link's group commit."""
        async with self.blobs.claim(file.digest, repo_id=self.job.repo_id) as other_blob:
            async with limit:
                if other_blob is not None and await run(
                    self.context.executor, self._adopt, file, other_blob
                ):
                    await self._mark_verified(file)
                    return
                if await run(self.context.executor, self._present, file):
                    await self._mark_verified(file)
                    return
                url = file_url(
                    self.entry, endpoint=self.endpoint, commit=self.job.commit, path=file.path
                )
                blobs_dir = self.layout.blobs_dir
                fetch = FileFetch(self.context, url=url, file=file, blobs_dir=blobs_dir)
                self.job.fetches[file.path] = fetch
                digest = await fetch.run()
            await self.links.link(file.path, digest)
            self.blobs.publish(digest, self.layout.blob_path(digest))
            self.job.last_byte_at = fetch.last_byte_at or self.job.last_byte_at
            await self._mark_verified(file)

    def _adopt(self, file: ManifestFile, blob: Path) -> bool:
        """Blocking: hard-link (else copy) a blob another job just verified into our repo."""
        if file.digest is None:
            return False
        self.cache.adopt_blob_blocking(self.job.repo_id, file.digest, blob)
        return self._present(file)

    async def _mark_verified(self, file: ManifestFile) -> None:
        self.job.verified[file.path] = file.size or 0
        self.job.partial.pop(file.path, None)
        if file.digest in self.job.refetch:
            self.job.refetch = self.job.refetch - {file.digest}
        now = time.monotonic()
        if now - self._saved_at >= SAVE_INTERVAL:
            self._saved_at = now
            await self.on_file_done()


def make_retry_handler(
    job: Job, policy: RetryPolicy, on_change: Callable[[], None]
) -> Callable[[DepotError, int], Awaitable[None]]:
    """The job's decision for a failed attempt: raise (fail) or wait and try again."""

    async def handle(error: DepotError, attempt: int) -> None:
        if not is_transient(error) or attempt > job.max_retries:
            raise error
        logger.info("Download %s: attempt %d failed: %s", job.id, attempt, error.message)
        job.retry_count = attempt
        job.error_message = error.message
        job.error_code = error.code
        on_change()
        await asyncio.sleep(policy.delay(attempt, error))

    return handle
