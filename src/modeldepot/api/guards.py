"""What the network and the browser may not do: the checks made before any route runs.

One pure ASGI middleware, :class:`NetworkGuard`, in this order:

1. **Host** (DNS rebinding, as in Ollama's CVE-2024-28224). On a loopback bind a request
   whose ``Host`` is not a loopback name or address (``localhost``, ``*.localhost``,
   127.0.0.0/8, ``::1``; any port) is refused with 403 ``HOST_NOT_ALLOWED``: a page on
   ``attacker.example`` that re-points its name at 127.0.0.1 still sends its own name.
   ``allowed_hosts`` adds names (``*``: any). On another bind any Host is accepted unless
   ``allowed_hosts`` says otherwise (API keys guard that case).
2. **Origin**. A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket
   handshake that carries an ``Origin`` other than the service's own (the scheme and the
   ``Host`` it was reached at) or one of ``cors_origins`` is refused with 403
   ``ORIGIN_NOT_ALLOWED``. Browsers send ``Origin`` on every such request; programs
   (curl, the SDKs) send none and pass. CORS itself is off unless ``cors_origins`` is set.
3. **Content type**. POST, PUT and PATCH operations (of the OpenAPI document: another
   method or path goes on to the router's 404 or 405) must say ``Content-Type: application/json``
   (415 ``UNSUPPORTED_MEDIA_TYPE``), body or not: a plain HTML form or a ``no-cors``
   fetch can only send form or text bodies, so it cannot trigger an action even where
   the Origin check would not see it.
4. **Body size and time**. A body over ``max_request_body_mb`` is refused with 413
   ``PAYLOAD_TOO_LARGE`` before it is read: at once when ``Content-Length`` says so,
   else as soon as the bytes received pass the limit. A body that takes longer than
   ``request_body_timeout_seconds`` to arrive is 408 ``REQUEST_TIMEOUT``. (Header
   time-outs are the server's: ``modeldepot.api.server``.)

Every HTTP response also carries ``X-Content-Type-Options: nosniff``,
``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and a Content-Security-Policy
(same-origin resources only, no framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldepot.api.envelope import error_response
from modeldepot.errors import ConfigError
from modeldepot.settings import Settings
from modeldepot.units import mb_bytes

logger = logging.getLogger(__name__)

DRAIN_BYTES = 16 * 1024 * 1024  # read and dropped, never kept: costs time, not memory
DRAIN_SECONDS = 3.0
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"

_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
# FastAPI's /docs and /redoc load their scripts and styles from a CDN.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PATHS = frozenset({"/docs", "/redoc"})
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback_host(host: str) -> bool:
    """``localhost``, a ``.localhost`` name, or a loopback address (brackets allowed)."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def host_without_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def template_regex(template: str) -> re.Pattern[str]:
    """A regex for an OpenAPI path template. ``{model_id}`` may hold slashes (routes
    declare it ``{model_id:path}`` so that ``../x`` reaches validation): it matches
    anything; other parameters one segment."""
    parts = re.split(r"(\{\w+\})", template)
    return re.compile(
        "".join(
            f"(?P<{part[1:-1]}>.+)"
            if part == "{model_id}"
            else f"(?P<{part[1:-1]}>[^/]+)"
            if part.startswith("{")
            else re.escape(part)
            for part in parts
        )
    )


class Operations:
    """The operations of an OpenAPI document, to tell whether a request is one of them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._by_method: dict[str, list[re.Pattern[str]]] = {}
        for path, operations in document.get("paths", {}).items():
            for method in operations:
                self._by_method.setdefault(method.upper(), []).append(template_regex(path))

    def has(self, method: str, path: str) -> bool:
        return any(regex.fullmatch(path) for regex in self._by_method.get(method, ()))


def check_exposure(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without API keys unless told to.

    Raises:
        ConfigError: ``host`` is not a loopback address, ``auth_required`` is off and
            ``allow_unauthenticated`` was not set.
    """
    if is_loopback_host(settings.host) or settings.auth_required:
        return
    if settings.allow_unauthenticated:
        logger.warning(
            "Listening on %s without API keys (allow_unauthenticated): anyone who reaches "
            "this port can change the configuration and delete models",
            settings.host,
        )
        return
    raise ConfigError(
        f"Refusing to listen on {settings.host} without API keys: anyone who can reach it "
        "could change the configuration and delete models. Turn keys on with "
        "MODELDEPOT_AUTH_REQUIRED=true (and create one: modeldepot keys create NAME --role "
        "admin), or set MODELDEPOT_ALLOW_UNAUTHENTICATED=true on a network you trust",
        details={"host": settings.host},
    )


class HostPolicy:
    """Which ``Host`` values this service answers to (see the module docstring)."""

    def __init__(self, *, bind: str, allowed: Iterable[str]) -> None:
        self._allowed = {host_without_port(name) for name in allowed}
        self._any = "*" in self._allowed or (not self._allowed and not is_loopback_host(bind))

    def allows(self, host: str | None) -> bool:
        if host is None or not host.strip():
            return False
        if self._any:
            return True
        name = host_without_port(host)
        return is_loopback_host(name) or name in self._allowed


class NetworkGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings, document: dict[str, Any]) -> None:
        self.app = app
        self._operations = Operations(document)
        self._hosts = HostPolicy(bind=settings.host, allowed=settings.allowed_hosts)
        self._origins = {origin.lower().rstrip("/") for origin in settings.cors_origins}
        self._max_body = mb_bytes(settings.max_request_body_mb)
        self._body_timeout = settings.request_body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            if scope["type"] == "http" and _has_body(headers):
                await self._drain(receive, headers)
            # A WebSocket handshake is refused with the same HTTP answer (the ASGI
            # "websocket.http.response" extension, which uvicorn implements).
            await _refuse(scope, receive, send, *refusal)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if scope["method"] in JSON_BODY_METHODS and self._operations.has(
            scope["method"], scope["path"]
        ):
            buffered = await self._read_body(scope, receive, send)
            if buffered is None:
                return
            receive = buffered
        await self.app(scope, receive, _with_security_headers(scope, send))

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        host = headers.get("host")
        if not self._hosts.allows(host):
            named = f"the host name {host!r}" if host else "a request without a Host header"
            return (
                403,
                "HOST_NOT_ALLOWED",
                f"This service does not answer to {named} (a defence against DNS "
                "rebinding); add the name to the allowed_hosts setting if it is yours",
            )
        if "content-length" in headers and "transfer-encoding" in headers:
            # Two framings: a proxy in front may read the other one (request smuggling).
            return (
                400,
                "BAD_REQUEST",
                "A request may not carry both Content-Length and Transfer-Encoding",
            )
        method = scope.get("method", "GET")
        websocket = scope["type"] == "websocket"
        origin = headers.get("origin")
        mutating = websocket or method in STATE_CHANGING
        if mutating and origin is not None and not self._origin_allowed(origin, host or "", scope):
            return (
                403,
                "ORIGIN_NOT_ALLOWED",
                f"Requests from the web page at {origin!r} are not allowed; add its "
                "origin to the cors_origins setting if it is yours",
            )
        if websocket or method not in JSON_BODY_METHODS:
            return None
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            return self._too_large()
        if not self._operations.has(method, scope["path"]):
            return None  # no such operation: the router answers 404 or 405
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != JSON:
            return (
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Send the request with Content-Type: application/json, with or without a "
                "body (curl: --json '{...}' or -H 'Content-Type: application/json')",
            )
        return None

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if origin in self._origins:
            return True
        secure = scope.get("scheme") in ("https", "wss")
        own = f"{'https' if secure else 'http'}://{host.strip().lower()}"
        return origin == own

    def _too_large(self) -> tuple[int, str, str]:
        return (
            413,
            "PAYLOAD_TOO_LARGE",
            f"The request body is over the limit of {self._max_body:,} bytes "
            "(setting max_request_body_mb)",
        )

    async def _drain(self, receive: Receive, headers: Headers | None) -> None:
        """Read and drop what is left of a refused request's body, up to ``DRAIN_BYTES``
        (or 8 times the body limit if more) and ``DRAIN_SECONDS``, so the answer reaches
        a client that sends its whole body before it reads (httpx, requests): closing on
        unread bytes resets the connection, and the reset destroys the answer in flight.
        A body declared larger than that is not read at all (the client gets the reset
        sooner, rather than us reading gigabytes)."""
        if headers is not None and "expect" in headers:
            return  # "Expect: 100-continue": reading would invite the body we refuse
        budget = max(self._max_body * 8, DRAIN_BYTES)
        declared = headers.get("content-length") if headers is not None else None
        if declared is not None and (not declared.isdigit() or int(declared) > budget):
            return
        drained = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while drained <= budget:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    drained += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The whole body, bounded in size and time, replayed to the app; None when the
        request has been answered here (413, 408) or the client left."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None  # http.disconnect: nobody to answer
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        if message.get("more_body", False):
                            await self._drain(receive, headers=None)
                        status, code, text = self._too_large()
                        await _refuse(scope, receive, send, status, code, text)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(
                scope,
                receive,
                send,
                408,
                "REQUEST_TIMEOUT",
                f"The request body did not arrive within {self._body_timeout:g} s",
            )
            return None
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    if scope["type"] == "websocket":
        await error_response(status=status, code=code, message=message)(scope, receive, send)
        return
    response = error_response(
        status=status, code=code, message=message, headers={"Connection": "close"}
    )
    await response(scope, receive, _with_security_headers(scope, send))


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in headers


_API_HEADERS = [*_COMMON_HEADERS, (b"content-security-policy", _CSP.encode())]
_DOCS_HEADERS = [*_COMMON_HEADERS, (b"content-security-policy", _DOCS_CSP.encode())]


def _with_security_headers(scope: Scope, send: Send) -> Send:
    added = _DOCS_HEADERS if scope["path"] in _DOCS_PATHS else _API_HEADERS

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *added]
        await send(message)

    return sending
