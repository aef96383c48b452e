"""HTTP responses of the local hub as bytes on the wire, with the injected faults applied.

Both servers (hub and CDN) answer through this module: JSON and error bodies, redirects,
and file bodies with Range / If-Range / ETag semantics (RFC 9110). Bodies are streamed from
disk in 1 MiB chunks (a 2 GiB file is never held in memory) and the armed faults
(`modeldepot.testing.faults`) change what is actually sent: cut connections, stalls,
throttling, wrong bytes, wrong Content-Range, extra bytes, gzip bombs.

Faults that must misbehave below HTTP (closing a socket mid-body, writing past
Content-Length) use the connection's asyncio transport, which `modeldepot.testing.server`
exposes to the app in the ASGI scope extension `TRANSPORT_EXTENSION`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import os
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from modeldepot.testing.faults import (
    ChangeETag,
    CutBody,
    ExtraBytes,
    Fault,
    GzipBomb,
    IgnoreRange,
    RecordedRequest,
    Stall,
    Status,
    Throttle,
    Trickle,
    WrongBytes,
    WrongContentRange,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[str, str]]

TRANSPORT_EXTENSION = "modeldepot.localhub.transport"
CHUNK = 1024 * 1024
# Reads smaller than this are done inline: a thread hop costs more than the read.
_THREAD_READ_MIN = 256 * 1024
_DISCONNECT_WAIT_S = 2.0
_F = TypeVar("_F", bound=Fault)


@dataclass
class Exchange:
    """One request being answered: the ASGI channel, its record and its faults."""

    scope: Scope
    receive: Receive
    send: Send
    record: RecordedRequest
    closing: asyncio.Event
    """Set when the hub stops: stalls and trickles end at once."""
    faults: list[Fault] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.record.method

    def header(self, name: str) -> str | None:
        return self.record.headers.get(name)

    def fault(self, kind: type[_F]) -> _F | None:
        """The first armed fault of this kind, if any."""
        for fault in self.faults:
            if isinstance(fault, kind):
                return fault
        return None

    def all_faults(self, kind: type[_F]) -> list[_F]:
        return [f for f in self.faults if isinstance(f, kind)]

    @property
    def transport(self) -> asyncio.Transport | None:
        extension = self.scope.get("extensions", {}).get(TRANSPORT_EXTENSION, {})
        transport = extension.get("transport")
        return transport if isinstance(transport, asyncio.Transport) else None

    def client_gone(self) -> bool:
        transport = self.transport
        return transport is not None and transport.is_closing()

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds` unless the hub stops first; return True if it is stopping."""
        if seconds <= 0:
            return self.closing.is_set()
        try:
            async with asyncio.timeout(seconds):
                await self.closing.wait()
        except TimeoutError:
            return False
        return True

    async def start(self, status: int, headers: Headers) -> None:
        self.record.status = status
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        raw.append((b"x-request-id", uuid.uuid4().hex.encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> bool:
        """Send a body chunk; return False when the client has gone away."""
        # Count before sending: the client may see the bytes before this coroutine resumes.
        self.record.bytes_sent += len(data)
        await self.send({"type": "http.response.body", "body": data, "more_body": True})
        return not self.client_gone()

    async def finish(self) -> None:
        self.record.completed = True
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def close_connection(self) -> None:
        """Close the TCP connection now, mid-response, without a server error log."""
        transport = self.transport
        if transport is None:
            raise ConnectionAbortedError("local hub: fault closes the connection")
        transport.close()
        # Wait until the server has noticed the disconnect, so it does not report a
        # response the app "forgot" to complete.
        try:
            async with asyncio.timeout(_DISCONNECT_WAIT_S):
                while (await self.receive())["type"] != "http.disconnect":
                    pass
        except TimeoutError:
            return


class ByteSource(Protocol):
    """Random-access bytes of a response body."""

    size: int

    async def read(self, offset: int, n: int) -> bytes: ...

    def close(self) -> None: ...


class BytesSource:
    """A body held in memory (JSON, small files)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def read(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]

    def close(self) -> None:
        return None


class FileSource:
    """A body read from disk with positional reads, large reads off the event loop."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size
        self.mtime = os.fstat(self._fd).st_mtime

    async def read(self, offset: int, n: int) -> bytes:
        if n < _THREAD_READ_MIN:
            return os.pread(self._fd, n, offset)
        return await asyncio.to_thread(os.pread, self._fd, n, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


Unsatisfiable = Literal["unsatisfiable"]
_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def parse_range(header: str, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """Parse a single-range ``Range`` header into inclusive (start, end).

    Returns None for headers a server ignores (malformed, multiple ranges: answered with
    the full 200) and "unsatisfiable" for ranges that start past the end (416).
    """
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    return start, end


def if_range_matches(if_range: str, *, etag: str, last_modified: float | None) -> bool:
    """Whether an If-Range validator still designates the current representation."""
    value = if_range.strip()
    if value.startswith(("W/", '"')):
        # Weak validators never match for If-Range (RFC 9110 13.1.5).
        return value == etag
    if last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return int(when.timestamp()) == int(last_modified)


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def accepts_gzip(exchange: Exchange) -> bool:
    accept = exchange.header("accept-encoding") or ""
    return any(token.split(";")[0].strip() == "gzip" for token in accept.split(","))


async def send_bytes(
    exchange: Exchange,
    status: int,
    body: bytes,
    *,
    headers: Headers | None = None,
    content_type: str = "application/json; charset=utf-8",
    compress: bool = False,
) -> None:
    """Send an in-memory body (gzip-compressed when `compress` and the client accepts it)."""
    all_headers = [("content-type", content_type), *(headers or [])]
    if compress and len(body) > 1024 and accepts_gzip(exchange):
        body = gzip.compress(body, compresslevel=6)
        all_headers += [("content-encoding", "gzip"), ("vary", "Accept-Encoding")]
    await send_body(exchange, status, all_headers, BytesSource(body), start=0, length=len(body))


async def send_json(
    exchange: Exchange, obj: object, *, status: int = 200, headers: Headers | None = None
) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    await send_bytes(exchange, status, body, headers=headers, compress=True)


async def send_error(
    exchange: Exchange,
    status: int,
    message: str,
    *,
    error_code: str | None = None,
    headers: Headers | None = None,
) -> None:
    """Send an error the way the hub does: X-Error-Code/-Message and ``{"error": ...}``."""
    all_headers = list(headers or [])
    if error_code is not None:
        all_headers.append(("x-error-code", error_code))
    all_headers.append(("x-error-message", message))
    body = json.dumps({"error": message}).encode()
    await send_bytes(exchange, status, body, headers=all_headers)


async def send_redirect(
    exchange: Exchange, location: str, *, status: int = 302, headers: Headers | None = None
) -> None:
    body = f"Found. Redirecting to {location}".encode()
    all_headers = [("location", location), *(headers or [])]
    await send_bytes(exchange, status, body, headers=all_headers, content_type="text/plain")


async def send_status_fault(exchange: Exchange, fault: Status) -> None:
    """Answer with an injected status (see `Status`)."""
    headers: Headers = list(fault.headers)
    if fault.retry_after is not None:
        headers.append(("retry-after", _retry_after_value(fault.retry_after)))
    if fault.error_code is not None:
        headers.append(("x-error-code", fault.error_code))
    if fault.body is not None:
        await send_bytes(exchange, fault.code, fault.body, headers=headers)
        return
    message = f"local hub: injected HTTP {fault.code}"
    headers.append(("x-error-message", message))
    await send_bytes(exchange, fault.code, json.dumps({"error": message}).encode(), headers=headers)


def _retry_after_value(value: int | float | str | datetime) -> str:
    if isinstance(value, datetime):
        return http_date(value.timestamp())
    if isinstance(value, str):
        return value
    return str(math.ceil(value))


async def send_gzip_bomb(exchange: Exchange, fault: GzipBomb, *, content_type: str) -> None:
    """Answer with a small gzip body that inflates to `fault.inflated_size` bytes."""
    body = gzip_bomb(fault.inflated_size)
    headers = [("content-type", content_type), ("content-encoding", "gzip")]
    await send_body(exchange, 200, headers, BytesSource(body), start=0, length=len(body))


@lru_cache(maxsize=4)
def gzip_bomb(inflated_size: int) -> bytes:
    """Gzip stream of `inflated_size` zero bytes (about 1 KiB per MiB), built in chunks."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(CHUNK)
    parts: list[bytes] = []
    remaining = inflated_size
    while remaining > 0:
        step = min(remaining, CHUNK)
        parts.append(compressor.compress(zeros[:step]))
        remaining -= step
    parts.append(compressor.flush())
    return b"".join(parts)


async def send_file(
    exchange: Exchange,
    source: ByteSource,
    *,
    etag: str,
    last_modified: float | None,
    headers: Headers,
) -> None:
    """Send a file with Range/If-Range semantics and the armed file faults.

    `etag` is unquoted; the header carries it quoted, as the hub and S3 do.
    """
    change = exchange.fault(ChangeETag)
    if change is not None:
        etag = change.etag
        last_modified = (last_modified or 0) + 86400.0
    quoted = f'"{etag}"'
    size = source.size
    base: Headers = [*headers, ("accept-ranges", "bytes"), ("etag", quoted)]
    if last_modified is not None:
        base.append(("last-modified", http_date(last_modified)))

    wanted = _requested_range(exchange, size, etag=quoted, last_modified=last_modified)
    if wanted == "unsatisfiable":
        base.append(("content-range", f"bytes */{size}"))
        await send_body(exchange, 416, base, BytesSource(b""), start=0, length=0)
        return
    if wanted is None:
        await send_body(exchange, 200, base, source, start=0, length=size)
        return
    start, end = wanted
    shift = sum(f.shift for f in exchange.all_faults(WrongContentRange))
    base.append(("content-range", f"bytes {start + shift}-{end + shift}/{size}"))
    await send_body(exchange, 206, base, source, start=start, length=end - start + 1)


def _requested_range(
    exchange: Exchange, size: int, *, etag: str, last_modified: float | None
) -> tuple[int, int] | Unsatisfiable | None:
    header = exchange.header("range")
    if header is None or exchange.fault(IgnoreRange) is not None:
        return None
    if_range = exchange.header("if-range")
    if if_range is not None and not if_range_matches(
        if_range, etag=etag, last_modified=last_modified
    ):
        return None
    return parse_range(header, size)


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """How the armed faults change one body: which bytes, how many, how fast."""

    flips: frozenset[int] = frozenset()
    """Offsets relative to the body start whose byte is XOR-ed with 0xFF."""
    cut_after: int | None = None
    stall: Stall | None = None
    trickle: Trickle | None = None
    throttle: Throttle | None = None
    extra: int = 0

    @classmethod
    def build(cls, faults: Sequence[Fault], *, start: int, length: int) -> BodyPlan:
        absolute = {o for f in faults if isinstance(f, WrongBytes) for o in f.offsets}
        if any(isinstance(f, ChangeETag) and f.flip_content for f in faults):
            absolute.add(0)
        cuts = [f.after_bytes for f in faults if isinstance(f, CutBody)]
        extra = sum(f.n for f in faults if isinstance(f, ExtraBytes) and f.mode != _PAST_CL)
        return cls(
            flips=frozenset(o - start for o in absolute if start <= o < start + length),
            cut_after=min(cuts) if cuts else None,
            stall=_first(faults, Stall),
            trickle=_first(faults, Trickle),
            throttle=_first(faults, Throttle),
            extra=extra,
        )


_PAST_CL = "past_content_length"


def _first(faults: Sequence[Fault], kind: type[_F]) -> _F | None:
    return next((f for f in faults if isinstance(f, kind)), None)


async def send_body(
    exchange: Exchange,
    status: int,
    headers: Headers,
    source: ByteSource,
    *,
    start: int,
    length: int,
) -> None:
    """Send status, headers and `length` bytes of `source` from `start`, faults applied."""
    plan = BodyPlan.build(exchange.faults, start=start, length=length)
    cut = exchange.fault(CutBody)
    extras = exchange.all_faults(ExtraBytes)
    chunked = (cut is not None and cut.chunked) or any(e.mode == "chunked" for e in extras)
    all_headers = list(headers)
    if not chunked:
        all_headers.append(("content-length", str(length + plan.extra)))
    await exchange.start(status, all_headers)
    if exchange.method == "HEAD":
        await exchange.finish()
        return
    if not await pump(exchange, source, start=start, length=length, plan=plan):
        await exchange.close_connection()
        return
    await exchange.finish()
    past = sum(e.n for e in extras if e.mode == _PAST_CL)
    transport = exchange.transport
    if past and transport is not None:
        exchange.record.bytes_sent += past
        transport.write(_filler(past))
        await exchange.close_connection()


async def pump(
    exchange: Exchange, source: ByteSource, *, start: int, length: int, plan: BodyPlan
) -> bool:
    """Write the body chunk by chunk; return True when all of it went out."""
    total = length + plan.extra
    limit = total if plan.cut_after is None else min(total, plan.cut_after)
    sent = 0
    stalled = plan.stall is None
    began = time.monotonic()
    while True:
        if plan.stall is not None and not stalled and sent >= plan.stall.after_bytes:
            stalled = True
            if await exchange.pause(plan.stall.seconds):
                return False
        if sent >= limit:
            break
        n = _next_chunk_size(plan, sent=sent, limit=limit, stalled=stalled)
        data = await _read_body(source, start=start, length=length, offset=sent, n=n)
        if plan.flips:
            data = _flip(data, sent, plan.flips)
        if not await exchange.write(data):
            return False
        sent += n
        trickle_wait = plan.trickle.interval_s if plan.trickle is not None and sent < limit else 0
        if trickle_wait and await exchange.pause(trickle_wait):
            return False
        if plan.throttle is not None:
            ahead = sent / plan.throttle.bytes_per_second - (time.monotonic() - began)
            if ahead > 0 and await exchange.pause(ahead):
                return False
    return sent == total


def _next_chunk_size(plan: BodyPlan, *, sent: int, limit: int, stalled: bool) -> int:
    n = min(CHUNK, limit - sent)
    if plan.stall is not None and not stalled:
        n = min(n, plan.stall.after_bytes - sent)
    if plan.trickle is not None:
        n = min(n, max(1, plan.trickle.bytes_per_chunk))
    if plan.throttle is not None:
        # ~20 writes a second keeps the rate smooth at any speed.
        n = min(n, max(1, plan.throttle.bytes_per_second // 20))
    return n


async def _read_body(source: ByteSource, *, start: int, length: int, offset: int, n: int) -> bytes:
    """Bytes [offset, offset+n) of the body: the source, then filler past its end."""
    if offset + n <= length:
        return await source.read(start + offset, n)
    real = await source.read(start + offset, max(0, length - offset)) if offset < length else b""
    return real + _filler(n - len(real))


def _filler(n: int) -> bytes:
    pattern = b"localhub-extra-bytes|"
    return (pattern * (n // len(pattern) + 1))[:n]


def _flip(data: bytes, offset: int, flips: frozenset[int]) -> bytes:
    hits = [o - offset for o in flips if offset <= o < offset + len(data)]
    if not hits:
        return data
    changed = bytearray(data)
    for index in hits:
        changed[index] ^= 0xFF
    return bytes(changed)
