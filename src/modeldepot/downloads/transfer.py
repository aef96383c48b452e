"""Fetching one file: segmented range requests, verified while written, promoted atomically.

The hub's ``resolve`` URL is followed hop by hop (``sources.resolve``) to the CDN; the
bytes are then fetched from the final URL as concurrent ``Range`` requests guarded by
``If-Range`` with the ETag the plan was made for. Each chunk is charged to the bandwidth
buckets, written with ``pwrite`` at its offset, and the sequential prefix is hashed in a
thread as it grows. Faults and what happens (RELIABILITY.md):

* 200 to a ranged request, same ETag -> the server ignores Range: the file restarts from 0
  on one connection, never appending (10); a different ETag -> the file changed: restart
  from 0 for the new ETag (13);
* 206 with a Content-Range that is not the one asked for -> nothing written, retried (11);
* a body cut short, a reset, more bytes than declared, or no byte for ``stall_timeout``
  -> the connection is dropped and its segment continues on a new one (14, 17, 20);
* the digest differs from the manifest -> the partial is discarded and fetched once more,
  then ``CHECKSUM_MISMATCH`` (15, 22); ENOSPC -> ``DISK_FULL`` (25);
* a redirect target (a signed CDN URL) refused with 401/403/410, or 400 "expired" -> the
  file's ``SourceLink`` asks the hub once for a fresh URL (single flight over the file's
  connections) and the segment continues where it was; a fresh URL refused again is a
  real refusal (44). No retry is counted for a renewal.

A file no bigger than one segment (``min_segment``) is fetched with a single GET instead
(``downloads/smallfile.py``): per file, the machinery above costs more than the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.client
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modeldepot.blocking import run, run_abortable
from modeldepot.catalog.manifest import ManifestFile
from modeldepot.downloads.hashing import TrailingHasher
from modeldepot.downloads.limiter import TokenBucket, take_all
from modeldepot.downloads.rangeget import (
    Aborted,
    Connection,
    ConnectionPool,
    ReadOptions,
    read_body,
)
from modeldepot.downloads.segments import Segment, SegmentPlan
from modeldepot.downloads.smallfile import SmallFile, SmallFileSource, SmallFileTarget
from modeldepot.downloads.sources import (
    LinkRequest,
    ResolvedSource,
    SourceLink,
    SourcePolicy,
    SourceRefused,
    auth_headers,
    resolve,
    response_refusal,
)
from modeldepot.errors import (
    ChecksumMismatch,
    DepotError,
    TransferInterrupted,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from modeldepot.ids import make_digest, parse_digest
from modeldepot.store.partial import PartialFile

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _RestartFile(Exception):
    """Control flow: throw the partial away and fetch the file from byte 0."""

    def __init__(self, *, etag: str | None, single_connection: bool) -> None:
        super().__init__("restart file")
        self.etag = etag
        self.single_connection = single_connection


class ConnectionSlots:
    """A counting limit on open connections whose size can change while in use."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = asyncio.Condition()

    async def set_limit(self, limit: int) -> None:
        async with self._cond:
            self._limit = limit
            self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: self._used < self._limit)
            self._used += 1
        try:
            yield
        finally:
            async with self._cond:
                self._used -= 1
                self._cond.notify()


@dataclass
class TransferSettings:
    connections_per_file: int
    min_segment: int = 8 * 1024 * 1024
    stall_timeout: float = 30.0
    checkpoint_interval: float = 1.0
    read_timeout: float = 30.0


@dataclass
class TransferContext:
    """What every file transfer of a job shares."""

    client: httpx.AsyncClient
    policy: SourcePolicy
    token: str | None
    buckets: tuple[TokenBucket, ...]
    slots: ConnectionSlots
    settings: TransferSettings
    on_transient: Callable[[DepotError, int], Awaitable[None]]
    on_recovered: Callable[[], None]
    executor: Executor
    pool: ConnectionPool = field(default_factory=ConnectionPool)
    """Kept-alive connections the job's small files borrow (closed when the job ends)."""


class FileFetch:
    """Downloads one manifest file into ``blobs/``; ``run`` returns its final digest."""

    def __init__(
        self, ctx: TransferContext, *, url: str, file: ManifestFile, blobs_dir: Path
    ) -> None:
        if file.size is None:
            raise UpstreamProtocolError(f"Size of {file.path} is unknown")
        self.ctx = ctx
        self.url = url
        self.file = file
        self.size = file.size
        self.blobs_dir = blobs_dir
        algorithm, hexdigest = parse_digest(file.digest) if file.digest else ("sha256", None)
        self.algorithm = algorithm
        self.expected_hex = hexdigest
        key = hexdigest or "unpinned-" + _path_key(url, file.path)
        self.partial = PartialFile(blobs_dir, key, self.size, read_progress=_read_plan)
        self.plan = SegmentPlan(size=self.size)
        self._last_byte_at: float | None = None
        self._hasher: TrailingHasher | None = None
        self._link: SourceLink | None = None
        self._small = self._small_file() if self.size <= ctx.settings.min_segment else None

    def _small_file(self) -> SmallFile:
        ctx = self.ctx
        source = SmallFileSource(
            url=self.url,
            what=self.file.path,
            policy=ctx.policy,
            token=ctx.token,
            pool=ctx.pool,
            buckets=ctx.buckets,
            stall_timeout=ctx.settings.stall_timeout,
        )
        target = SmallFileTarget(
            size=self.size,
            algorithm=self.algorithm,
            expected_hex=self.expected_hex,
            partial=self.partial,
            blobs_dir=self.blobs_dir,
        )
        return SmallFile(
            source,
            target,
            slots=ctx.slots.slot,
            on_transient=ctx.on_transient,
            on_recovered=ctx.on_recovered,
            executor=ctx.executor,
        )

    @property
    def done_bytes(self) -> int:
        return self._small.done_bytes if self._small is not None else self.plan.done_bytes

    @property
    def last_byte_at(self) -> float | None:
        return self._small.last_byte_at if self._small is not None else self._last_byte_at

    @property
    def durable_bytes(self) -> int:
        """Bytes on disk that the last checkpoint counts (what a next attempt keeps)."""
        return self.partial.durable_bytes

    async def run(self) -> str:
        """Fetch, verify and promote; return the ``algorithm:hex`` digest of the blob.

        The blob is renamed into ``blobs/`` with its bytes durable; making that rename
        durable (an fsync of the folder) before anything links the blob is the caller's
        job, so that one fsync serves many files.

        Raises:
            ChecksumMismatch: the bytes differ from the manifest twice in a row.
            UpstreamError, UnsafeSource, StorageError: as classified by the caller.
        """
        if self._small is not None:
            return await self._small.run()
        source = await self._resolve()
        self._check_declared(source)
        self._link = SourceLink(source, renew=self._renewed_source)
        try:
            digest = await self._fetch_and_verify(source)
            if digest is None:
                await run(self.ctx.executor, self.partial.discard)
                digest = await self._fetch_and_verify(source, fresh=True)
            if digest is None:
                raise ChecksumMismatch(
                    f"{self.file.path}: the downloaded bytes do not match the manifest's "
                    f"{self.algorithm} (fetched twice)",
                    details={"path": self.file.path},
                )
        except ChecksumMismatch:
            await run(self.ctx.executor, self.partial.discard)
            raise
        finally:
            self.partial.close()
        return digest

    async def _resolve(self) -> ResolvedSource:
        attempt = 0
        while True:
            try:
                source = await resolve(
                    self.ctx.client,
                    self.url,
                    policy=self.ctx.policy,
                    token=self.ctx.token,
                    what=self.file.path,
                )
            except DepotError as error:
                attempt += 1
                await self.ctx.on_transient(error, attempt)  # raises: permanent or exhausted
            else:
                if attempt:
                    self.ctx.on_recovered()
                return source

    async def _renewed_source(self) -> ResolvedSource:
        """A fresh URL for the file (its signed CDN URL expired), same size expected."""
        source = await self._resolve()
        self._check_declared(source)
        return source

    @property
    def link(self) -> SourceLink:
        if self._link is None:
            raise RuntimeError("FileFetch.run has not resolved the file yet")
        return self._link

    def _check_declared(self, source: ResolvedSource) -> None:
        if source.size is not None and source.size != self.size:
            raise ChecksumMismatch(
                f"{self.file.path}: the server announces {source.size} bytes, the manifest "
                f"{self.size}",
                details={"path": self.file.path},
            )

    async def _fetch_and_verify(self, source: ResolvedSource, *, fresh: bool = False) -> str | None:
        """Download everything; return the digest if it matches the manifest, else None."""
        etag = source.etag
        plan = None if fresh else await run(self.ctx.executor, self.partial.open, etag=etag)
        if fresh:
            await run(self.ctx.executor, self.partial.open, etag=None)
        settings = self.ctx.settings
        self.plan = plan or SegmentPlan.create(
            self.size, connections=settings.connections_per_file, min_segment=settings.min_segment
        )
        self.plan.rebalance(
            connections=settings.connections_per_file, min_segment=settings.min_segment
        )
        single = not source.accepts_ranges and self.plan.done_bytes == 0 and self.size > 0
        for _restart in range(3):
            try:
                hexdigest = await self._download(etag=etag, single=single)
            except _RestartFile as restart:
                etag, single = restart.etag, restart.single_connection
                await run(self.ctx.executor, self.partial.truncate)
                self.plan.reset()
                continue
            if self.expected_hex is not None and hexdigest != self.expected_hex:
                return None
            digest = make_digest(self.algorithm, hexdigest)
            blob = self.blobs_dir / parse_digest(digest)[1]
            await run(
                self.ctx.executor, functools.partial(self.partial.promote, blob, sync_dir=False)
            )
            return digest
        raise UpstreamProtocolError(f"{self.file.path} kept changing upstream while downloading")

    async def _download(self, *, etag: str | None, single: bool) -> str:
        hasher = TrailingHasher(self.partial.fd, algorithm=self.algorithm, size=self.size)
        self._hasher = hasher
        hashing = asyncio.create_task(run(self.ctx.executor, hasher.run))
        try:
            async with asyncio.TaskGroup() as group:
                workers = 1 if single else self.ctx.settings.connections_per_file
                done = asyncio.Event()
                group.create_task(self._checkpoint_loop(etag, hasher, done))
                fetchers = [
                    group.create_task(self._worker(etag=etag, single=single, hasher=hasher))
                    for _ in range(max(1, min(workers, self.plan.open_segments)))
                ]
                try:
                    await asyncio.gather(*fetchers)
                finally:
                    done.set()  # the ticker finishes its write, then stops
        except* _RestartFile as group_error:
            raise group_error.exceptions[0] from None
        except* DepotError as group_error:
            raise group_error.exceptions[0] from None
        finally:
            hasher.advance(self.plan.contiguous_prefix())
            if not self.plan.complete:
                hasher.stop()
            with contextlib.suppress(DepotError, OSError):
                await run(self.ctx.executor, self.partial.checkpoint, self.plan, etag=etag)
            result = await hashing
        if result is None:
            raise TransferInterrupted(f"{self.file.path}: hashing stopped early")
        return result

    async def _checkpoint_loop(
        self, etag: str | None, hasher: TrailingHasher, done: asyncio.Event
    ) -> None:
        """Checkpoint every interval until ``done``; a write in progress is never abandoned
        (an abandoned thread could recreate a checkpoint after the file was promoted or
        discarded)."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ctx.settings.checkpoint_interval):
                    await done.wait()
            if done.is_set():
                return
            hasher.advance(self.plan.contiguous_prefix())
            # blocking.run waits for the thread even when cancelled: a checkpoint is never
            # written after the caller has moved on (and perhaps deleted the partial file).
            await run(self.ctx.executor, self.partial.checkpoint, self.plan, etag=etag)

    async def _worker(self, *, etag: str | None, single: bool, hasher: TrailingHasher) -> None:
        # Steal only from a connection with two full segments still unread: the piece it
        # keeps and the piece taken are both worth a request of their own.
        min_split = self.ctx.settings.min_segment
        conn = Connection()
        try:
            while (segment := self.plan.take(min_split=min_split)) is not None:
                try:
                    await self._fetch_with_retries(segment, etag=etag, single=single, conn=conn)
                finally:
                    self.plan.release(segment)
                hasher.advance(self.plan.contiguous_prefix())
        finally:
            conn.close()
        if self.size == 0:
            hasher.advance(0)

    async def _fetch_with_retries(
        self, segment: Segment, *, etag: str | None, single: bool, conn: Connection
    ) -> None:
        failures = 0  # attempts in a row that brought no new byte
        while not segment.complete:
            before = segment.done
            try:
                async with self.ctx.slots.slot():
                    await self._fetch_segment(segment, etag=etag, single=single, conn=conn)
            except SourceRefused as refused:
                # Not a failure: continue with a fresh URL (what renew raises is final).
                await self.link.renew(refused)
            except DepotError as error:
                failures = 1 if segment.done > before else failures + 1
                await self.ctx.on_transient(error, failures)  # raises: permanent or exhausted
            else:
                if failures:
                    self.ctx.on_recovered()

    async def _fetch_segment(
        self, segment: Segment, *, etag: str | None, single: bool, conn: Connection
    ) -> None:
        """One request on a worker thread; cancelling it aborts the read at once."""
        request = self.link.request()
        url = request.url
        headers = {"Accept-Encoding": "identity", "User-Agent": "modeldepot"} | auth_headers(
            url, hub_url=self.ctx.policy.hub_url, token=self.ctx.token
        )
        if single:
            segment.done = 0  # without Range every attempt starts at byte 0: overwrite
        else:
            headers["Range"] = f"bytes={segment.offset}-{segment.end - 1}"
            if etag and not etag.startswith("W/"):
                headers["If-Range"] = etag
        conn.stop.clear()
        try:
            await run_abortable(
                self.ctx.executor,
                conn.abort,
                self._fetch_blocking,
                request,
                headers,
                segment,
                conn,
                (etag, single),
            )
        except Aborted as exc:
            raise TransferInterrupted(f"{self.file.path}: connection aborted") from exc

    def _fetch_blocking(
        self,
        request: LinkRequest,
        headers: dict[str, str],
        segment: Segment,
        conn: Connection,
        validation: tuple[str | None, bool],
    ) -> None:
        """Worker thread: request, check, read the body into the partial file."""
        etag, single = validation
        response = self._send(request, headers, conn)
        try:
            self._check_response(response, segment, request=request, etag=etag, single=single)
        except BaseException:
            conn.close()
            raise
        buckets = self.ctx.buckets
        options = ReadOptions(
            stall_timeout=self.ctx.settings.stall_timeout,
            limited=any(b.limited for b in buckets),
            throttle=lambda n: take_all(buckets, n, conn.stop),
            write=self.partial.write,
            on_written=self._written,
        )
        try:
            read_body(conn, response, segment, options)
        except DepotError as error:
            error.message = f"{self.file.path}: {error.message}"
            raise

    def _send(
        self, request: LinkRequest, headers: dict[str, str], conn: Connection
    ) -> http.client.HTTPResponse:
        """Worker thread: send the request and read the answer's head, reporting both to
        the link (it judges refusals only once the answers of its URL are in)."""
        link = self.link
        link.request_sent(request.generation)
        status: int | None = None
        try:
            response = conn.request(request.url, headers, timeout=self.ctx.settings.stall_timeout)
            status = response.status
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.file.path}: the server did not answer") from exc
        except (OSError, http.client.HTTPException) as exc:
            if conn.stop.is_set():
                raise Aborted from exc
            raise TransferInterrupted(f"{self.file.path}: connection failed ({exc})") from exc
        finally:
            accepted = status is not None and 200 <= status < 300
            link.request_answered(request.generation, accepted=accepted)
        return response

    def _written(self) -> None:
        """Worker thread, after each write: the hasher and the disk writeback follow the
        written prefix closely (the prefix counts only bytes already written; a plan
        changing meanwhile on the loop thread can only make it look shorter)."""
        self._last_byte_at = time.time()
        prefix = self.plan.contiguous_prefix()
        self.partial.written_prefix(prefix)
        if self._hasher is not None:
            self._hasher.advance(prefix)
            self.partial.release_behind(self._hasher.hashed)

    def _check_response(
        self,
        response: http.client.HTTPResponse,
        segment: Segment,
        *,
        request: LinkRequest,
        etag: str | None,
        single: bool,
    ) -> None:
        status = response.status
        headers = response.headers
        new_etag = headers.get("etag")
        if status == 200 and not single:
            if segment.offset == 0 and segment.end == self.size and len(self.plan.segments) == 1:
                return  # asked for everything, got everything: fine
            changed = bool(etag and new_etag and new_etag != etag)
            raise _RestartFile(etag=new_etag if changed else etag, single_connection=not changed)
        if status == 200 and single:
            return
        if status != 206:
            raise response_refusal(request, response, what=self.file.path)
        content_range = headers.get("content-range") or ""
        match = _CONTENT_RANGE.match(content_range)
        if (
            match is None
            or int(match.group(1)) != segment.offset
            or int(match.group(2)) > segment.end - 1
            or match.group(3) not in ("*", str(self.size))
        ):
            raise UpstreamProtocolError(
                f"{self.file.path}: the server sent a different range than asked for",
                details={"content_range": content_range},
            )
        if (headers.get("content-encoding") or "identity") != "identity":
            raise UpstreamProtocolError(f"{self.file.path}: unexpected content encoding")


def _path_key(url: str, path: str) -> str:
    return hashlib.sha256(f"{url}\n{path}".encode()).hexdigest()


def _read_plan(data: Any, size: int) -> SegmentPlan | None:
    return SegmentPlan.from_json(data, size=size)
