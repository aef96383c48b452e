"""How one request flows through a local hub server: route, record, faults, answer.

Both ASGI apps (the hub API and the CDN) share this path, so every request on every server
is recorded in the same `RequestLog` and sees the same armed faults. `Delay` and the faults
that replace the whole answer (`Status`, `Redirect`, `GzipBomb`) are answered here; the
others travel with the `Exchange` to the app, whose responses go through
`modeldepot.testing.wire`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote

from modeldepot.testing.blobs import BlobStore
from modeldepot.testing.faults import (
    Delay,
    Fault,
    FaultSet,
    GzipBomb,
    OnRequest,
    RecordedRequest,
    Redirect,
    RequestInfo,
    RequestLog,
    ServerName,
    Status,
)
from modeldepot.testing.repos import DEFAULT_TOKEN, RepoRegistry
from modeldepot.testing.signing import UrlSigner
from modeldepot.testing.wire import (
    Exchange,
    Receive,
    Scope,
    Send,
    send_gzip_bomb,
    send_redirect,
    send_status_fault,
)


@dataclass
class HubState:
    """Everything the servers of one local hub share; mutated by tests between requests."""

    store: BlobStore
    registry: RepoRegistry
    faults: FaultSet = field(default_factory=FaultSet)
    requests: RequestLog = field(default_factory=RequestLog)
    on_request: OnRequest | None = None
    cdn_url: str = ""
    redirect_base_url: str | None = None
    """Base URL LFS redirects point at; the local CDN when None (e.g. nginx otherwise)."""
    tree_page_size: int = 1000
    expand_page_size: int = 50
    gzip_text: bool = True
    """Gzip text files on /resolve when the client accepts it, as the hub does."""
    extra_tokens: set[str] = field(default_factory=set)
    signer: UrlSigner = field(default_factory=UrlSigner)
    """Signs LFS redirects and checks them on the CDNs (off unless given a TTL)."""
    closing: asyncio.Event | None = None

    def valid_tokens(self) -> set[str]:
        tokens = {DEFAULT_TOKEN, *self.extra_tokens}
        for repo_id in self.registry.ids():
            tokens |= self.registry[repo_id].tokens
        return tokens

    @property
    def redirect_base(self) -> str:
        return (self.redirect_base_url or self.cdn_url).rstrip("/")


class Route(Protocol):
    """What an app parsed from a request line; `repo`/`filename` feed fault matching."""

    @property
    def repo(self) -> str | None: ...

    @property
    def filename(self) -> str | None: ...


R = TypeVar("R", bound=Route)


class App(Protocol[R]):
    """One server's request handling, behind the shared dispatcher."""

    def route(self, scope: Scope) -> R: ...

    async def handle(self, exchange: Exchange, route: R) -> None: ...


class DispatchingApp(Generic[R]):
    """ASGI entry point of one server: records the request, applies faults, routes."""

    def __init__(self, *, server: ServerName, state: HubState, app: App[R]) -> None:
        self.server = server
        self.state = state
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = self.app.route(scope)
        record = RecordedRequest(
            server=self.server,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(scope),
            repo=route.repo,
            filename=route.filename,
        )
        self.state.requests.append(record)
        info = RequestInfo(
            server=self.server,
            method=record.method,
            path=record.path,
            repo=route.repo,
            filename=route.filename,
            has_range="range" in record.headers,
        )
        faults = self.state.faults.take(info)
        if self.state.on_request is not None:
            faults += _as_list(self.state.on_request(record))
        record.faults = faults
        closing = self.state.closing or asyncio.Event()
        exchange = Exchange(scope, receive, send, record, closing, faults)
        if not await _answer_with_fault(exchange, faults):
            await self.app.handle(exchange, route)


async def _answer_with_fault(exchange: Exchange, faults: Sequence[Fault]) -> bool:
    """Wait out delays, then answer faults that replace the whole response; return True if
    one did (or the hub is stopping)."""
    delay = sum(f.seconds for f in faults if isinstance(f, Delay))
    if delay > 0 and await exchange.pause(delay):
        await exchange.close_connection()
        return True
    for fault in faults:
        if isinstance(fault, Status):
            await send_status_fault(exchange, fault)
            return True
        if isinstance(fault, Redirect):
            await send_redirect(exchange, fault.location, status=fault.status)
            return True
        if isinstance(fault, GzipBomb):
            api = exchange.record.path.startswith("/api/")
            content_type = "application/json" if api else "application/octet-stream"
            await send_gzip_bomb(exchange, fault, content_type=content_type)
            return True
    return False


def _as_list(result: Fault | Sequence[Fault] | None) -> list[Fault]:
    if result is None:
        return []
    if isinstance(result, Fault):
        return [result]
    return list(result)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def path_segments(scope: Scope) -> list[str]:
    """The URL path split on "/" *before* percent-decoding (so %2F stays in a segment)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    return [unquote(segment) for segment in path.split("/")[1:]]
