"""Fault switches for the local hub and the record of every request it served.

A test adds a rule saying *which* requests misbehave and *how*::

    hub.faults.add(CutBody(after_bytes=4096), server="cdn", filename="*.safetensors", times=1)
    hub.faults.add(Status(503, retry_after=2), server="hub", path="/api/models/*", times=2)

A rule matches on the server that answers ("hub", "cdn", "mirror" or "any"), the HTTP
method, a glob on the URL path, and globs on the repo id and the file path in the repo
(known for /resolve, tree and CDN requests). `times=N` arms a rule for N matching requests;
`times=None` keeps it armed. Every matching rule applies, so faults combine (a `Throttle`
with a `CutBody`). A fault only counts as used by a request it can act on: body faults skip
HEAD requests, range faults skip requests without a Range header.

Each fault kind is a small frozen dataclass, implemented for real on the wire by
`modeldepot.testing.wire`. `hub.on_request` is a free-form hook that may return more faults
for a request. Every request is recorded in `hub.requests` (a `RequestLog`).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal, overload

ServerName = Literal["hub", "cdn", "mirror"]
ServerMatch = Literal["hub", "cdn", "mirror", "any"]


@dataclass(frozen=True, slots=True)
class Fault:
    """Base of every fault kind; says which requests a fault can act on."""

    needs_body: ClassVar[bool] = True
    """Only GET requests send a body: HEAD requests do not consume the rule."""
    needs_range: ClassVar[bool] = False
    """Only requests with a Range header consume the rule."""


@dataclass(frozen=True, slots=True)
class IgnoreRange(Fault):
    """Answer a ranged request with 200 and the full body, as servers without Range do."""

    needs_range: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class WrongBytes(Fault):
    """Flip (XOR 0xFF) the bytes at these absolute file offsets; sizes and hashes unchanged."""

    offsets: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class CutBody(Fault):
    """Close the connection after `after_bytes` body bytes.

    The full Content-Length is declared, or with `chunked=True` the body is sent with
    chunked encoding and the terminating chunk never comes.
    """

    after_bytes: int = 0
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class Status(Fault):
    """Answer with this status instead of the real response (429, 5xx, 401, 403, 404...).

    `retry_after` becomes a Retry-After header: a number of seconds, a datetime (sent as an
    HTTP date) or a raw string. `body` replaces the default ``{"error": ...}`` JSON body.
    `error_code` sets the hub's X-Error-Code (e.g. "GatedRepo", "EntryNotFound").
    """

    needs_body: ClassVar[bool] = False
    code: int = 503
    retry_after: int | float | str | datetime | None = None
    body: bytes | None = None
    error_code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Stall(Fault):
    """Send `after_bytes` body bytes, then send nothing for `seconds`, then carry on."""

    after_bytes: int = 0
    seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Trickle(Fault):
    """Send the body `bytes_per_chunk` at a time with `interval_s` between chunks."""

    bytes_per_chunk: int = 1
    interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Throttle(Fault):
    """Cap this response at `bytes_per_second`, like nginx ``limit_rate``."""

    bytes_per_second: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChangeETag(Fault):
    """Serve the file as if it had changed: another ETag and Last-Modified, so If-Range
    fails, and (with `flip_content`) different bytes at offset 0."""

    etag: str = "changed"
    flip_content: bool = True


@dataclass(frozen=True, slots=True)
class ExtraBytes(Fault):
    """Send `n` bytes more than the file has.

    mode "content_length": Content-Length counts them (more than the declared size);
    "chunked": no Content-Length, chunked body with the extra bytes; "past_content_length":
    Content-Length is right but the extra bytes follow the body on the wire, then the
    connection closes.
    """

    n: int = 1
    mode: Literal["content_length", "chunked", "past_content_length"] = "content_length"


@dataclass(frozen=True, slots=True)
class WrongContentRange(Fault):
    """Answer 206 with the requested bytes but a Content-Range shifted by `shift`."""

    needs_range: ClassVar[bool] = True
    shift: int = 1


@dataclass(frozen=True, slots=True)
class Delay(Fault):
    """Wait `seconds` before answering at all (a slow hub API or resolve); the answer itself
    is unchanged. HEAD requests count too."""

    needs_body: ClassVar[bool] = False
    seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Redirect(Fault):
    """Answer with a redirect to `location` (absolute URL or path on the same server).

    A rule that redirects a path to itself with `times=None` is a redirect loop; a location
    on `hub.mirror_url` is a redirect to another host.
    """

    needs_body: ClassVar[bool] = False
    location: str = "/"
    status: int = 302


@dataclass(frozen=True, slots=True)
class GzipBomb(Fault):
    """Answer with a ``Content-Encoding: gzip`` body inflating to `inflated_size` zero bytes."""

    inflated_size: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What fault matching knows about a request before it is answered."""

    server: ServerName
    method: str
    path: str
    repo: str | None
    filename: str | None
    has_range: bool


@dataclass
class FaultRule:
    """One armed fault and the requests it applies to; `hits` counts uses."""

    fault: Fault
    server: ServerMatch = "any"
    method: str | None = None
    path: str | None = None
    repo: str | None = None
    filename: str | None = None
    times: int | None = None
    hits: int = 0

    def matches(self, request: RequestInfo) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.server != "any" and self.server != request.server:
            return False
        if self.method is not None and self.method.upper() != request.method:
            return False
        if self.fault.needs_body and request.method == "HEAD":
            return False
        if self.fault.needs_range and not request.has_range:
            return False
        return (
            _glob(self.path, request.path)
            and _glob(self.repo, request.repo)
            and _glob(self.filename, request.filename)
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


def _glob(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return value is not None and fnmatch.fnmatchcase(value, pattern)


class FaultSet:
    """The armed fault rules of one local hub; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(
        self,
        fault: Fault,
        *,
        server: ServerMatch = "any",
        method: str | None = None,
        path: str | None = None,
        repo: str | None = None,
        filename: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Arm `fault` for matching requests (see the module docstring); return the rule."""
        rule = FaultRule(
            fault=fault,
            server=server,
            method=method,
            path=path,
            repo=repo,
            filename=filename,
            times=times,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, request: RequestInfo) -> list[Fault]:
        """Return the faults for `request`, counting one use of each matching rule."""
        with self._lock:
            matched = [rule for rule in self._rules if rule.matches(request)]
            for rule in matched:
                rule.hits += 1
            return [rule.fault for rule in matched]


@dataclass
class RecordedRequest:
    """One request as the local hub saw it, and what it answered."""

    server: ServerName
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Request headers, lower-cased names (repeated headers joined with ", ")."""
    repo: str | None = None
    filename: str | None = None
    status: int | None = None
    bytes_sent: int = 0
    """Body bytes written to the socket (0 for HEAD)."""
    faults: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    completed: bool = False
    """False when the response was cut, or the client went away first."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


class RequestLog(Sequence[RecordedRequest]):
    """Every request served by a local hub, in arrival order; thread-safe."""

    def __init__(self) -> None:
        self._items: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...
    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        return self._snapshot()[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self._snapshot())

    def filter(
        self,
        *,
        server: ServerMatch = "any",
        method: str | None = None,
        path: str | None = None,
        repo: str | None = None,
        filename: str | None = None,
    ) -> list[RecordedRequest]:
        """Requests matching all given criteria (globs for path, repo and filename)."""
        return [
            r
            for r in self._snapshot()
            if (server == "any" or r.server == server)
            and (method is None or r.method == method.upper())
            and _glob(path, r.path)
            and _glob(repo, r.repo)
            and _glob(filename, r.filename)
        ]

    def bytes_sent(self, *, server: ServerMatch = "any", filename: str | None = None) -> int:
        """Total body bytes sent by `server` (optionally for files matching `filename`)."""
        return sum(r.bytes_sent for r in self.filter(server=server, filename=filename))


OnRequest = Callable[[RecordedRequest], "Fault | Sequence[Fault] | None"]
"""Free-form hook run for every request (in the server thread) before it is answered; the
faults it returns are applied on top of the armed rules."""
