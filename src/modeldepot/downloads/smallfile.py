"""Fetching a file no bigger than one segment: one GET, hashed as written, no checkpoint.

Most of a large file's machinery costs a fixed amount per file: a HEAD through every
redirect to learn the size and ETag, a hasher thread, a checkpoint ticker, the final
checkpoint's two fsyncs, a new connection. For a repository of hundreds of files of some
tens of KB that cost is most of the time (issue 9), so such a file is fetched like this:

* one ``GET`` of the file's URL; redirects (the hub's 302 to its CDN) are followed hop by
  hop on the worker thread, each hop checked by the same ``SourcePolicy`` as ``resolve``
  (RELIABILITY.md 7), the token sent to the hub's origin only (8), loops and over-long
  chains refused (9);
* on a kept-alive connection borrowed from the job's ``ConnectionPool``;
* the answer must be a 200 with the manifest's size (the hub's ``X-Linked-Size`` on the
  redirect, or the Content-Length), unencoded; a different declared size is
  ``CHECKSUM_MISMATCH`` at once (22);
* the body goes through ``rangeget.read_body`` (stall and trickle detection, bandwidth
  buckets, abort) into the partial file, and is hashed in order as it is written;
* no checkpoint: a retry, or a resume after a crash, starts the file from byte 0, which
  re-fetches at most one segment, as a resume of a large file may;
* a digest that is not the manifest's -> None (the caller fetches once more, then fails);
  else fsync and rename onto ``blobs/{hash}``; the folder's fsync is left to the caller,
  who does it once for many files before linking any of them.

A refused redirect target (perhaps an expired signed URL) is asked for once more from
the hub, which signs a fresh one, before the refusal is believed (44).
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from modeldepot.blocking import run, run_abortable
from modeldepot.downloads.hashing import new_hasher
from modeldepot.downloads.limiter import TokenBucket, take_all
from modeldepot.downloads.rangeget import (
    Aborted,
    Connection,
    ConnectionPool,
    ReadOptions,
    read_body,
)
from modeldepot.downloads.segments import Segment
from modeldepot.downloads.sources import (
    MAX_REDIRECTS,
    LinkRequest,
    SourcePolicy,
    SourceRefused,
    auth_headers,
    response_refusal,
)
from modeldepot.errors import (
    ChecksumMismatch,
    DepotError,
    RedirectError,
    TransferInterrupted,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from modeldepot.ids import make_digest
from modeldepot.store.partial import PartialFile
from modeldepot.upstream import safe_url

REDIRECTS = frozenset({301, 302, 303, 307, 308})
REDIRECT_BODY_LIMIT = 64 * 1024
"""A redirect's body is read up to this (so its connection serves the next request)."""


@dataclass(frozen=True)
class SmallFileSource:
    """Where a small file comes from and how the transfer reaches it."""

    url: str
    what: str
    """The file's path in the repository, for messages."""
    policy: SourcePolicy
    token: str | None
    pool: ConnectionPool
    buckets: tuple[TokenBucket, ...]
    stall_timeout: float


@dataclass(frozen=True)
class SmallFileTarget:
    """What the bytes must be, and where they go."""

    size: int
    algorithm: str
    expected_hex: str | None
    partial: PartialFile[Any]
    blobs_dir: Path


class SmallFile:
    """One small file's transfer; ``run`` returns its digest once the blob is renamed."""

    def __init__(
        self,
        source: SmallFileSource,
        target: SmallFileTarget,
        *,
        slots: Callable[[], contextlib.AbstractAsyncContextManager[None]],
        on_transient: Callable[[DepotError, int], Awaitable[None]],
        on_recovered: Callable[[], None],
        executor: Executor,
    ) -> None:
        self.source = source
        self.target = target
        self._slots = slots
        self._on_transient = on_transient
        self._on_recovered = on_recovered
        self._executor = executor
        self.segment = Segment(0, target.size)
        self.last_byte_at: float | None = None

    @property
    def done_bytes(self) -> int:
        return self.segment.done

    async def run(self) -> str:
        """Fetch, verify, promote; return the ``algorithm:hex`` digest.

        Raises:
            ChecksumMismatch: the bytes differ from the manifest twice in a row.
            UpstreamError, UnsafeSource, StorageError: as classified by the caller.
        """
        partial = self.target.partial
        try:
            for _attempt in range(2):  # a checksum mismatch is fetched once more
                digest = await self._with_retries()
                if digest is not None:
                    return digest
            raise ChecksumMismatch(
                f"{self.source.what}: the downloaded bytes do not match the manifest's "
                f"{self.target.algorithm} (fetched twice)",
                details={"path": self.source.what},
            )
        except ChecksumMismatch:
            await run(self._executor, partial.discard)
            raise
        finally:
            partial.close()

    async def _with_retries(self) -> str | None:
        failures = 0
        renewed = False
        while True:
            try:
                async with self._slots():
                    digest = await self._attempt()
            except SourceRefused as refused:
                if renewed:  # refused again, right after the hub issued the URL
                    raise refused.error from None
                renewed = True  # not a failure: the next attempt gets a fresh URL
                continue
            except DepotError as error:
                failures += 1
                await self._on_transient(error, failures)  # raises: permanent or exhausted
                continue
            if failures:
                self._on_recovered()
            return digest

    async def _attempt(self) -> str | None:
        """One attempt on a worker thread; cancelling it aborts the read at once. An
        attempt that does not finish keeps nothing (the next one starts at byte 0), so its
        bytes stop counting as progress."""
        self.segment = Segment(0, self.target.size)
        attempt = _Attempt()
        try:
            return await run_abortable(self._executor, attempt.abort, self._fetch_blocking, attempt)
        except Aborted as exc:
            self.segment = Segment(0, self.target.size)
            raise TransferInterrupted(f"{self.source.what}: connection aborted") from exc
        except BaseException:
            self.segment = Segment(0, self.target.size)  # a next attempt starts at byte 0
            raise

    # --- worker thread ---------------------------------------------------------------

    def _fetch_blocking(self, attempt: _Attempt) -> str | None:
        """GET (following redirects), write and hash, verify, promote."""
        target = self.target
        response, conn = self._open(attempt)
        hasher = new_hasher(target.algorithm, target.size)

        def write(data: memoryview, offset: int) -> None:
            hasher.update(data)  # in order: one segment, read from its start
            target.partial.write(data, offset)

        buckets = self.source.buckets
        options = ReadOptions(
            stall_timeout=self.source.stall_timeout,
            limited=any(b.limited for b in buckets),
            throttle=lambda n: take_all(buckets, n, conn.stop),
            write=write,
            on_written=self._written,
        )
        try:
            target.partial.open_empty()
            read_body(conn, response, self.segment, options)
        except DepotError as error:
            error.message = f"{self.source.what}: {error.message}"
            raise
        finally:
            self.source.pool.give_back(conn)  # closed instead unless read to its end
        hexdigest = hasher.hexdigest()
        if target.expected_hex is not None and hexdigest != target.expected_hex:
            return None
        target.partial.promote(target.blobs_dir / hexdigest, sync_dir=False)
        return make_digest(target.algorithm, hexdigest)

    def _written(self) -> None:
        self.last_byte_at = time.time()

    def _open(self, attempt: _Attempt) -> tuple[http.client.HTTPResponse, Connection]:
        """Follow redirects from the file's URL, each hop checked, to a 200 of the file's
        size; the caller reads the body and gives the connection back.

        Raises:
            UnsafeSource, RedirectError, UpstreamError, ChecksumMismatch, SourceRefused,
            Aborted.
        """
        url, seen, redirected = self.source.url, set[str](), False
        for _hop in range(MAX_REDIRECTS + 1):
            self.source.policy.check_blocking(url)
            if url in seen:
                raise RedirectError("Redirect loop", details={"url": safe_url(url)})
            seen.add(url)
            conn = attempt.use(self.source.pool.take(url))
            response = self._send(url, conn)
            try:
                self._check_declared_size(response.headers.get("x-linked-size"))
                if response.status not in REDIRECTS:
                    self._check_answer(response, LinkRequest(url, 0, redirected))
                    return response, conn
            except BaseException:
                conn.close()
                raise
            location = response.headers.get("location")
            _drain(response)
            self.source.pool.give_back(conn)
            if not location:
                raise UpstreamProtocolError(
                    "Redirect without a Location", details={"url": safe_url(url)}
                )
            url, redirected = urljoin(url, location), True
        raise RedirectError(f"More than {MAX_REDIRECTS} redirects", details={"url": safe_url(url)})

    def _send(self, url: str, conn: Connection) -> http.client.HTTPResponse:
        source = self.source
        headers = {"Accept-Encoding": "identity", "User-Agent": "modeldepot"} | auth_headers(
            url, hub_url=source.policy.hub_url, token=source.token
        )
        try:
            return conn.request(url, headers, timeout=source.stall_timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{source.what}: the server did not answer") from exc
        except (OSError, http.client.HTTPException) as exc:
            if conn.stop.is_set():
                raise Aborted from exc
            raise TransferInterrupted(f"{source.what}: connection failed ({exc})") from exc

    def _check_answer(self, response: http.client.HTTPResponse, request: LinkRequest) -> None:
        if response.status >= 400:
            raise response_refusal(request, response, what=self.source.what)
        if response.status != 200:
            raise UpstreamProtocolError(
                f"{self.source.what}: unexpected answer {response.status}",
                details={"url": safe_url(request.url)},
            )
        self._check_declared_size(response.headers.get("content-length"))
        if (response.headers.get("content-encoding") or "identity") != "identity":
            raise UpstreamProtocolError(f"{self.source.what}: unexpected content encoding")

    def _check_declared_size(self, declared: str | None) -> None:
        if declared is not None and declared.isdigit() and int(declared) != self.target.size:
            raise ChecksumMismatch(
                f"{self.source.what}: the server announces {declared} bytes, the manifest "
                f"{self.target.size}",
                details={"path": self.source.what},
            )


class _Attempt:
    """The connection an attempt uses right now, so that another thread can abort it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aborted = False
        self._conn: Connection | None = None

    def use(self, conn: Connection) -> Connection:
        """Raises: Aborted (the connection is closed) when the attempt was aborted."""
        with self._lock:
            if not self._aborted:
                self._conn = conn
                return conn
        conn.close()
        raise Aborted

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            conn = self._conn
        if conn is not None:
            conn.abort()


def _drain(response: http.client.HTTPResponse) -> None:
    """Read a short body to its end, so that its connection can serve the next request
    (a long one is left: the connection is then closed, not reused)."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        if response.length is None or response.length <= REDIRECT_BODY_LIMIT:
            response.read(REDIRECT_BODY_LIMIT)
