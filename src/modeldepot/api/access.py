"""Who may do what, how often, and the record of admin actions.

:class:`AccessControl` is a pure ASGI middleware that runs after ``NetworkGuard``, for
every HTTP request and WebSocket handshake:

1. **The route's policy** (:data:`POLICIES`): the role it needs and its rate-limit bucket.
   Every GET (and the WebSocket) needs ``read``; every other operation is listed, and
   ``create_app`` refuses to build an app with an unlisted one. The table is matched on
   the path itself (not through the router), so the decision is made before any route
   code runs.
2. **Authentication**. With ``auth_required`` the key comes from ``Authorization: Bearer
   <key>`` or, for browsers (which cannot set headers on a WebSocket), from the
   subprotocol ``modeldepot.bearer.<key>`` of the handshake. Missing, unknown or revoked:
   401 ``UNAUTHORIZED`` with ``WWW-Authenticate: Bearer``. Without ``auth_required``
   every client acts as ``anonymous`` with the admin role.
3. **Rate limits** (the ``limits`` library; fixed one-minute windows, in memory): per API
   key, else per client address, in one of three buckets (download actions, admin
   actions, the rest) sized by the runtime section ``rate_limits``. Limited responses
   carry ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (Unix time); over the
   limit: 429 ``RATE_LIMITED`` with ``Retry-After``. Loopback clients are exempt while
   ``rate_limits.exempt_loopback`` is true (behind a reverse proxy on this machine every
   client is loopback: turn it off there). Limits are checked before the key is judged,
   so guessing keys is throttled too.
4. **Authorization**: the key's role must allow the route's (403 ``FORBIDDEN``).
5. **Audit**: after an admin action (a POST, PUT or DELETE that needs ``admin``) was
   answered or refused with 401 or 403, one row in the audit log; reads and what the rate
   limit turned away are not recorded (a flood must not flood the log).

Keys are never logged: the access log prints the path, never headers.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldepot.api.envelope import error_response, request_id_var
from modeldepot.api.guards import is_loopback_host, template_regex
from modeldepot.auth.keys import KeyInfo, Role
from modeldepot.services import Services
from modeldepot.settings import RateLimitsConfig

logger = logging.getLogger(__name__)

WS_KEY_PROTOCOL = "modeldepot.bearer."
PRINCIPAL_SCOPE_KEY = "modeldepot.principal"
"""Where the authenticated :class:`Principal` is left in the ASGI scope for the routes."""
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class Bucket(StrEnum):
    default = "default"
    downloads = "downloads"
    admin = "admin"


@dataclass(frozen=True)
class Policy:
    role: Role
    bucket: Bucket | None
    """None: not rate limited (liveness probes and metrics scrapers)."""

    @property
    def admin(self) -> bool:
        return self.role is Role.admin


READ = Policy(Role.read, Bucket.default)
PROBE = Policy(Role.read, None)
USER = Policy(Role.user, Bucket.default)
DOWNLOAD = Policy(Role.user, Bucket.downloads)
ADMIN = Policy(Role.admin, Bucket.admin)

_V = "/api/v1"
POLICIES: dict[tuple[str, str], Policy] = {
    ("POST", f"{_V}/models/download/manage"): DOWNLOAD,
    ("POST", f"{_V}/models/health/{{model_id}}/check"): USER,
    ("POST", f"{_V}/models/usage"): USER,
    ("PUT", f"{_V}/models/pins/{{model_id}}"): USER,
    ("DELETE", f"{_V}/models/pins/{{model_id}}"): USER,
    ("POST", f"{_V}/models/cleanup"): ADMIN,
    ("POST", f"{_V}/models/fallback/suggest"): READ,  # a question: changes nothing
    ("POST", f"{_V}/models/fallback/queue"): DOWNLOAD,  # it may start a download
    ("POST", f"{_V}/models/fallback/queue/{{queue_id}}/claim"): USER,
    ("DELETE", f"{_V}/models/fallback/queue/{{queue_id}}"): USER,
    ("POST", f"{_V}/models/health/{{model_id}}/repair"): ADMIN,
    ("POST", f"{_V}/models/revisions/{{model_id}}/update"): ADMIN,
    ("POST", f"{_V}/models/revisions/{{model_id}}/rollback"): ADMIN,
    ("PUT", f"{_V}/config/update"): ADMIN,
    ("GET", f"{_V}/auth/keys"): ADMIN,
    ("POST", f"{_V}/auth/keys"): ADMIN,
    ("DELETE", f"{_V}/auth/keys/{{name}}"): ADMIN,
    ("GET", f"{_V}/audit"): ADMIN,
}
"""Operations (as the OpenAPI document names them) that need more than ``read``; any
other GET or HEAD needs ``read``, and ``create_app`` refuses an app with any other
operation missing here."""

READ_METHODS = frozenset({"GET", "HEAD"})
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
"""Authenticated like the rest, never rate limited: probes and scrapers poll them."""


_COMPILED = [
    (method, template_regex(template), template, policy)
    for (method, template), policy in POLICIES.items()
]


def resolve(method: str, path: str) -> tuple[Policy, str, dict[str, str]]:
    """The policy for a request, the operation it is, and its path parameters."""
    for listed_method, regex, template, policy in _COMPILED:
        if listed_method == method and (match := regex.fullmatch(path)):
            return policy, template, match.groupdict()
    return (PROBE if path in UNLIMITED_PATHS else READ), path, {}


def unlisted_operations(document: dict[str, Any]) -> list[str]:
    """Operations of an OpenAPI document that have no policy."""
    return [
        f"{method.upper()} {path}"
        for path, operations in document.get("paths", {}).items()
        for method in operations
        if method.upper() not in READ_METHODS and (method.upper(), path) not in POLICIES
    ]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    key_id: str | None = None

    @classmethod
    def of(cls, key: KeyInfo) -> Principal:
        return cls(name=key.name, role=key.role, key_id=key.key_id)


ANONYMOUS = Principal(name="anonymous", role=Role.admin)


class RateLimits:
    """Fixed one-minute windows per client and bucket (memory storage; Redis in cluster
    mode, through the same library)."""

    def __init__(self) -> None:
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def hit(self, bucket: Bucket, per_minute: int, who: str) -> tuple[bool, int, float]:
        """Count one request: (allowed, remaining, when the window resets as Unix time)."""
        item = RateLimitItemPerMinute(per_minute)
        allowed = await self._limiter.hit(item, bucket.value, who)
        stats = await self._limiter.get_window_stats(item, bucket.value, who)
        return allowed, stats.remaining, stats.reset_time


_BUCKET_NAMES = {
    Bucket.default: "requests",
    Bucket.downloads: "download actions",
    Bucket.admin: "admin actions",
}


def _limit(config: RateLimitsConfig, bucket: Bucket) -> int:
    return {
        Bucket.default: config.default_per_minute,
        Bucket.downloads: config.downloads_per_minute,
        Bucket.admin: config.admin_per_minute,
    }[bucket]


def is_public(method: str, path: str) -> bool:
    """The dashboard's own files: they hold no data (the page must load before it can ask
    for a key); every API call the page then makes is checked as usual."""
    return method in READ_METHODS and (path == "/" or path.startswith("/dashboard/"))


class AccessControl:
    def __init__(self, app: ASGIApp, *, auth_required: bool) -> None:
        self.app = app
        self._auth_required = auth_required
        self._limits = RateLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (
            scope["type"] == "http" and is_public(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        policy, path, params = resolve(scope.get("method", "GET"), scope["path"])
        principal, problem = await self._authenticate(scope, services)
        headers: list[tuple[bytes, bytes]] = []
        client = _client(scope)
        config = services.config.current.rate_limits
        exempt = config.exempt_loopback and _is_local(client)
        if policy.bucket is not None and config.enabled and not exempt:
            per_minute = _limit(config, policy.bucket)
            who = f"key:{principal.key_id}" if principal and principal.key_id else f"ip:{client}"
            allowed, remaining, reset = await self._limits.hit(policy.bucket, per_minute, who)
            headers = [
                (b"x-ratelimit-limit", str(per_minute).encode()),
                (b"x-ratelimit-remaining", str(remaining).encode()),
                (b"x-ratelimit-reset", str(math.ceil(reset)).encode()),
            ]
            if not allowed:
                wait = max(1, math.ceil(reset - time.time()))
                headers.append((b"retry-after", str(wait).encode()))
                await self._deny(
                    scope,
                    receive,
                    send,
                    headers,
                    429,
                    "RATE_LIMITED",
                    f"Too many requests: {per_minute} a minute for "
                    f"{_BUCKET_NAMES[policy.bucket]}; retry in {wait} s",
                )
                await self._audit(services, scope, policy, principal, path, params, 429)
                return
        if principal is None:
            headers.append((b"www-authenticate", b'Bearer realm="modeldepot"'))
            await self._deny(scope, receive, send, headers, 401, "UNAUTHORIZED", problem)
            await self._audit(services, scope, policy, principal, path, params, 401)
            return
        if not principal.role.allows(policy.role):
            await self._deny(
                scope,
                receive,
                send,
                headers,
                403,
                "FORBIDDEN",
                f"The key '{principal.name}' has the role '{principal.role.value}'; "
                f"this action needs '{policy.role.value}'",
            )
            await self._audit(services, scope, policy, principal, path, params, 403)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if headers:
                    message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if status:
                await self._audit(services, scope, policy, principal, path, params, status)

    async def _authenticate(self, scope: Scope, services: Services) -> tuple[Principal | None, str]:
        if not self._auth_required:
            return ANONYMOUS, ""
        key = _presented_key(scope)
        if key is None:
            return None, (
                "An API key is required: send Authorization: Bearer <key> (an admin creates "
                "one with `modeldepot keys create NAME --role user`)"
            )
        info = await services.keys.authenticate(key)
        if info is None:
            return None, "The API key is not valid (unknown or revoked)"
        return Principal.of(info), ""

    async def _deny(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        status: int,
        code: str,
        message: str,
    ) -> None:
        response = error_response(
            status=status,
            code=code,
            message=message,
            headers={name.decode(): value.decode() for name, value in headers},
        )
        await response(scope, receive, send)

    async def _audit(
        self,
        services: Services,
        scope: Scope,
        policy: Policy,
        principal: Principal | None,
        path: str,
        params: dict[str, Any],
        status: int,
    ) -> None:
        # Admin actions (not reads such as the audit log itself), refused ones included;
        # not what the rate limit turned away: a flood would flood the log.
        if not policy.admin or scope["type"] != "http" or scope["method"] in READ_METHODS:
            return
        if status == 429:
            return
        target = params.get("model_id") or params.get("name")
        await services.audit.record(
            actor=principal.name if principal else "unauthenticated",
            role=principal.role.value if principal else None,
            client=_client(scope),
            action=f"{scope['method']} {path}",
            target=str(target) if target is not None else None,
            status=status,
            request_id=request_id_var.get(),
        )


def _is_local(client: str | None) -> bool:
    """A loopback client, or none at all (a Unix socket)."""
    return client is None or is_loopback_host(client)


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _presented_key(scope: Scope) -> str | None:
    headers = Headers(scope=scope)
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but not a bearer key: judged (and refused) like a wrong key
    if scope["type"] == "websocket":
        for protocol in scope.get("subprotocols", []):
            if protocol.startswith(WS_KEY_PROTOCOL):
                return str(protocol).removeprefix(WS_KEY_PROTOCOL)
    return None


_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per minute in this bucket",
    "X-RateLimit-Remaining": "Requests left in the current window",
    "X-RateLimit-Reset": "When the window ends (Unix time, seconds)",
}


def security_responses(method: str, path: str) -> dict[str, dict[str, Any]]:
    """OpenAPI responses the guards and access control add to an operation."""
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    responses: dict[str, dict[str, Any]] = {
        "401": {
            "description": "No valid API key where keys are required (UNAUTHORIZED)",
            "content": envelope,
        },
        "403": {
            "description": "Refused: the key's role does not allow this (FORBIDDEN), the Host "
            "is not this service's (HOST_NOT_ALLOWED) or the Origin is foreign "
            "(ORIGIN_NOT_ALLOWED)",
            "content": envelope,
        },
    }
    if path not in UNLIMITED_PATHS:
        responses["429"] = {
            "description": "Over the rate limit (RATE_LIMITED): retry after Retry-After seconds",
            "content": envelope,
            "headers": {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
                **{
                    name: {"description": text, "schema": {"type": "integer"}}
                    for name, text in _LIMIT_HEADERS.items()
                },
            },
        }
    if method.upper() in ("POST", "PUT", "PATCH"):
        responses["408"] = {
            "description": "The body did not arrive in time (REQUEST_TIMEOUT)",
            "content": envelope,
        }
        responses["413"] = {
            "description": "The body is over max_request_body_mb (PAYLOAD_TOO_LARGE)",
            "content": envelope,
        }
        responses["415"] = {
            "description": "Not sent as Content-Type: application/json (UNSUPPORTED_MEDIA_TYPE)",
            "content": envelope,
        }
    return responses
