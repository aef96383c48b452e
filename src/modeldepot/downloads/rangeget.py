"""The hot path of every download: one blocking ranged GET, read straight into a buffer.

Each connection of a transfer runs this on a worker thread with the standard library's
``http.client``: ``read1`` into a preallocated 1 MiB buffer and ``pwrite`` it at its offset,
both releasing the GIL, so a few Python operations move up to a megabyte (an async client pays
per 32-64 KiB chunk on the event loop, which capped us far below the network). Requests
go only to URLs checked by ``sources`` (``resolve``, or a small file's redirect hops);
the connection is kept alive between segments of the same worker, and a job's small files
borrow theirs from a ``ConnectionPool``, so a file costs no new TCP connection. A
connection is dropped after anything unusual; a request that fails on a kept-alive one
before any answer (the server closed it while idle) is sent once more on a new one.

Stalls: a socket timeout catches silence; a throughput window catches trickles (fewer
than ``min_bytes`` in ``stall_timeout``). Cancellation: ``abort()`` from another thread
sets a flag and shuts the socket down, so a blocked read returns at once.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi

from modeldepot.downloads.segments import Segment
from modeldepot.errors import TransferInterrupted, UpstreamTimeout

BUFFER = 1024 * 1024
LIMITED_READ = 64 * 1024  # smaller reads when a bandwidth limit applies: smoother pacing
FLUSH_INTERVAL = 0.25
STALL_MIN_BYTES = 16 * 1024


class Aborted(Exception):
    """The transfer was paused, cancelled or shut down while this read was running."""


@dataclass
class ReadOptions:
    stall_timeout: float
    limited: bool
    throttle: Callable[[int], None]
    write: Callable[[memoryview, int], None]
    on_written: Callable[[], None]


Origin = tuple[str, str, int]
_STALE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.BadStatusLine)
"""How a request fails when the server closed a kept-alive connection while it was idle
(``RemoteDisconnected`` is both a reset and a bad status line)."""


def url_origin(url: str) -> Origin:
    parts = urlsplit(url)
    return (
        parts.scheme,
        parts.hostname or "",
        parts.port or (443 if parts.scheme == "https" else 80),
    )


class Connection:
    """One worker's keep-alive connection; used by one thread at a time."""

    def __init__(self) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._origin: Origin | None = None
        self.stop = threading.Event()

    @property
    def origin(self) -> Origin | None:
        return self._origin

    @property
    def reusable(self) -> bool:
        """Open, not aborted, and its last answer read to the end."""
        response = self._response
        return (
            self._conn is not None
            and not self.stop.is_set()
            and (response is None or (response.isclosed() and not response.will_close))
        )

    def abort(self) -> None:
        """From any thread: make the running read fail now."""
        self.stop.set()
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # The response first: a response the server marked "Connection: close" is no
        # longer tracked by its HTTPConnection, and its file keeps the socket open until
        # closed (left to the garbage collector, the socket is reported as leaked).
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                response.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, url: str, headers: Mapping[str, str], *, timeout: float
    ) -> http.client.HTTPResponse:
        """Send a GET and read the answer's head (the body is left to the caller).

        Raises:
            OSError, http.client.HTTPException: the connection is closed first.
        """
        parts = urlsplit(url)
        origin = url_origin(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = self._conn is not None and self._origin == origin
        try:
            return self._send(origin, path, headers, timeout)
        except _STALE:
            if not kept or self.stop.is_set():
                raise
        return self._send(origin, path, headers, timeout)  # once more, on a new connection

    def _send(
        self, origin: Origin, path: str, headers: Mapping[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        if self._conn is None or self._origin != origin:
            self.close()
            self._conn = _connect(origin, timeout)
            self._origin = origin
        try:
            if self._conn.sock is None:
                self._conn.connect()
            # abort() shuts down the socket it finds; one that came before the socket
            # existed left only the flag: heed it here, or a silent server holds this
            # thread until the stall timeout.
            if self.stop.is_set():
                self.close()
                raise Aborted
            self._conn.request("GET", path, headers=dict(headers))
            self._response = self._conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return self._response


class ConnectionPool:
    """Idle keep-alive connections by origin, lent to one thread at a time (thread-safe).

    The small files of a job are one request each: borrowing a connection the previous
    file left open saves a TCP handshake (and a TLS one) per file.
    """

    def __init__(self, *, max_idle: int = 64) -> None:
        self._idle: dict[Origin, list[Connection]] = {}
        self._lock = threading.Lock()
        self._max_idle = max_idle
        self._closed = False

    def take(self, url: str) -> Connection:
        """An idle connection to the origin of ``url``, else a new (unconnected) one."""
        with self._lock:
            idle = self._idle.get(url_origin(url))
            connection = idle.pop() if idle else Connection()
        connection.stop.clear()
        return connection

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for the next borrower if it can serve one, else close it."""
        origin = connection.origin
        with self._lock:
            if not self._closed and origin is not None and connection.reusable:
                idle = self._idle.setdefault(origin, [])
                if len(idle) < self._max_idle:
                    idle.append(connection)
                    return
        connection.close()

    def close(self) -> None:
        """Close every idle connection; connections given back later are closed too."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _connect(origin: tuple[str, str, int], timeout: float) -> http.client.HTTPConnection:
    scheme, host, port = origin
    if scheme == "https":
        context = ssl.create_default_context(cafile=certifi.where())
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def read_body(
    connection: Connection,
    response: http.client.HTTPResponse,
    segment: Segment,
    options: ReadOptions,
) -> None:
    """Blocking: fill ``segment`` from ``response``; leaves the connection reusable only
    when the body was read to its end.

    Raises:
        TransferInterrupted: cut short, stalled, trickling or reset.
        UpstreamTimeout: no byte for ``stall_timeout``.
        Aborted: ``connection.abort()`` was called.
    """
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    reader = _Reader(connection, response, segment, options, view)
    try:
        reader.run()
    except Aborted:
        connection.close()
        raise
    except TimeoutError as exc:
        connection.close()
        raise UpstreamTimeout(
            f"no data for {options.stall_timeout:g} s, replacing the connection"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        if connection.stop.is_set():
            raise Aborted from exc
        raise TransferInterrupted(f"connection failed ({exc.__class__.__name__})") from exc
    except BaseException:
        connection.close()  # never reuse a connection whose response is half read
        raise
    finally:
        view.release()
    if not response.isclosed() or response.will_close:
        connection.close()  # body left unread (segment shrank) or server closes anyway


class _Reader:
    def __init__(
        self,
        connection: Connection,
        response: http.client.HTTPResponse,
        segment: Segment,
        options: ReadOptions,
        view: memoryview,
    ) -> None:
        self.connection = connection
        self.response = response
        self.segment = segment
        self.options = options
        self.view = view
        self.filled = 0
        self.flushed_at = time.monotonic()
        self.window_start = self.flushed_at
        self.window_bytes = 0

    def run(self) -> None:
        step = LIMITED_READ if self.options.limited else len(self.view)
        while True:
            if self.connection.stop.is_set():
                raise Aborted
            want = min(step, len(self.view) - self.filled, self._room())
            if want <= 0:
                break
            n = self._read_some(want)
            if not n:
                break
            self.options.throttle(n)
            self.filled += n
            self.segment.received = self.filled
            self._check_trickle(n)
            now = time.monotonic()
            if self.filled == len(self.view) or now - self.flushed_at >= FLUSH_INTERVAL:
                self._flush(now)
        self._flush(time.monotonic())
        if not self.segment.complete:
            raise TransferInterrupted("the server closed the body early")

    def _read_some(self, want: int) -> int:
        """At most one system call (a slow link still shows progress), straight into the
        buffer when the body has a Content-Length (every 206 has): no allocation, no copy.
        ``HTTPResponse.readinto`` would block until the buffer is full; chunked bodies go
        through ``read1``."""
        response = self.response
        target = self.view[self.filled : self.filled + want]
        if response.chunked or response.length is None or response.fp is None:
            chunk = response.read1(want)
            target[: len(chunk)] = chunk
            return len(chunk)
        n = response.fp.readinto1(target[: min(want, response.length)]) if response.length else 0
        response.length -= n
        if response.length == 0 or n == 0:
            response.close()  # body complete (or cut): as http.client does at its end
        return n

    def _room(self) -> int:
        # Read fresh: another connection may have stolen the tail of this segment.
        return self.segment.end - self.segment.offset - self.filled

    def _check_trickle(self, n: int) -> None:
        self.window_bytes += n
        now = time.monotonic()
        if now - self.window_start < self.options.stall_timeout:
            return
        if self.window_bytes < STALL_MIN_BYTES:
            raise TransferInterrupted(
                f"under {STALL_MIN_BYTES} bytes in {self.options.stall_timeout:g} s, "
                "replacing the connection"
            )
        self.window_start, self.window_bytes = now, 0

    def _flush(self, now: float) -> None:
        allowed = min(self.filled, self.segment.end - self.segment.offset)
        if allowed > 0:
            self.options.write(self.view[:allowed], self.segment.offset)
            self.segment.done += allowed
            self.options.on_written()
        self.filled = 0
        self.segment.received = 0
        self.flushed_at = now
