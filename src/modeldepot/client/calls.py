"""One API call described without doing any IO, and the one way every call is sent.

A ``Call`` says what to send (method, path, query, JSON body) and how to read the answer
(``decode``). ``modeldepot.client.operations`` builds one per route; ``Client`` and
``AsyncClient`` send them through ``exchange`` / ``exchange_async`` and ``read``, which
are the only places that know about retries, connection failures and error envelopes.

Retries (``RetryPolicy``): only a 429 or a 503 answer is retried, after the answer's
``Retry-After`` (capped at ``max_delay``) or, without one, a capped exponential backoff
with jitter, at most ``attempts`` tries in all. Both statuses mean the service did not act
on the request: the rate limit answers 429 before any route runs, and the routes answer
503 when the hub cannot be reached, before a download starts or a queue entry or repair
is recorded. So POSTs are retried like GETs: a ``start`` retried after a 429 cannot start
a second download. Nothing else is retried: not another status (a 500 may have done half
of its work), and not a connection that failed or broke (the request may have arrived):
that raises ``ServiceUnreachable`` at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from modeldepot.client.errors import UnexpectedResponse, error_from_response
from modeldepot.errors import InvalidInput, ServiceUnreachable
from modeldepot.upstream import parse_retry_after
from modeldepot.usage.reporter import Backoff

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1"
API_KEY_ENV = "MODELDEPOT_API_KEY"
URL_ENV = "MODELDEPOT_URL"
DEFAULT_URL = "http://localhost:8000"
DEFAULT_TIMEOUT_S = 30.0

Decoder = Callable[[httpx.Response], T]


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request to the service and how to read its answer."""

    method: str
    path: str
    decode: Decoder[T]
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    body: Any = None
    """JSON to send; None sends no body (every POST and PUT sends one, ``{}`` at least)."""


def model(cls: type[M]) -> Decoder[M]:
    """Read the answer as ``cls`` (one of the service's own response models)."""

    def decode(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content)

    return decode


def nothing(_response: httpx.Response) -> None:
    """For answers without a body (204)."""


def text(response: httpx.Response) -> str:
    return response.text


# --- building calls (modeldepot.client.operations) ---------------------------------------


def segment(value: str) -> str:
    """A path segment, escaped: a slash in an id stays in the segment (and is refused)."""
    return quote(value, safe="")


def query(paging: Mapping[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Query parameters, those left None dropped (not sent as empty strings)."""
    merged = {**(paging or {}), **more}
    return {name: value for name, value in merged.items() if value is not None}


def body_of(cls: type[M], **fields: Any) -> dict[str, Any]:
    """``fields`` (None ones left out) checked by the service's request model ``cls``, as
    the JSON to send.

    Raises: InvalidInput naming each refused field, in the service's 422 shape.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        request = cls.model_validate(given)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["body", *(str(part) for part in error["loc"])]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise InvalidInput(
            f"Not a valid {cls.__name__}: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            details={"errors": errors},
        ) from exc
    return request.model_dump(mode="json", exclude_unset=True)


def get(path: str, decode: Decoder[T], params: Mapping[str, Any] | None = None) -> Call[T]:
    return Call("GET", path, decode, params=params or {})


def model_by_name(cls: type[M]) -> Decoder[M]:
    """``model`` for models whose fields are validated from ORM attribute names (``id``
    -> ``check_id``): their JSON carries the field names."""

    def decode(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content, by_name=True)

    return decode


@dataclass(frozen=True)
class RetryPolicy:
    """When a 429 or 503 answer is tried again (see the module docstring).

    ``attempts``: tries in all (1: never retry). ``max_delay``: the longest wait between
    two tries, whatever ``Retry-After`` says. ``backoff``: the waits when the answer has
    no ``Retry-After``.
    """

    attempts: int = 4
    max_delay: float = 30.0
    backoff: Backoff = field(default_factory=lambda: Backoff(first=0.5, cap=8.0))
    statuses: frozenset[int] = frozenset({429, 503})

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.max_delay < 0:
            raise ValueError("attempts must be at least 1 and max_delay not negative")

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again after ``response`` answered try number
        ``attempt`` (from 0), or None: do not try again."""
        if response.status_code not in self.statuses or attempt + 1 >= self.attempts:
            return None
        after = parse_retry_after(response.headers.get("retry-after"))
        wait = self.backoff.delay(attempt) if after is None else after
        return min(wait, self.max_delay)


def root_url(base_url: str | None) -> str:
    """The service's root URL: ``base_url``, else ``MODELDEPOT_URL``, else
    ``http://localhost:8000``; a trailing ``/api/v1`` (the seed's base URL) is dropped.

    Raises: ValueError for anything but an http(s) URL with a host.
    """
    given = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).strip()
    try:
        url = httpx.URL(given)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a URL: {given!r} ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL of the service, not {str(url)!r}")
    path = url.path.rstrip("/").removesuffix(API).rstrip("/")
    return str(url.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


def api_key_or_env(api_key: str | None) -> str | None:
    """``api_key``, else ``MODELDEPOT_API_KEY`` (unset or blank: no key)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
    return key.strip() or None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    return http.build_request(
        call.method, call.path, params=dict(call.params) or None, json=call.body
    )


def exchange(http: httpx.Client, request: httpx.Request, retry: RetryPolicy) -> httpx.Response:
    """Send ``request``, again while ``retry`` says so; the last answer.

    Raises: ServiceUnreachable when no answer came (refused, reset, timed out).
    """
    attempt = 0
    while True:
        try:
            response = http.send(request)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc
        delay = retry.delay(response, attempt)
        if delay is None:
            return response
        time.sleep(delay)
        attempt += 1


async def exchange_async(
    http: httpx.AsyncClient, request: httpx.Request, retry: RetryPolicy
) -> httpx.Response:
    """``exchange`` for asyncio."""
    attempt = 0
    while True:
        try:
            response = await http.send(request)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc
        delay = retry.delay(response, attempt)
        if delay is None:
            return response
        await asyncio.sleep(delay)
        attempt += 1


def _unreachable(request: httpx.Request, exc: httpx.TransportError) -> ServiceUnreachable:
    where = request.url.copy_with(path="/", query=None)
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ServiceUnreachable(
        f"No answer from the modeldepot service at {str(where).rstrip('/')} "
        f"({request.method} {request.url.path}): {why}"
    )


def read(call: Call[T], response: httpx.Response) -> T:
    """The decoded answer to ``call``.

    Raises: the error class the answer's envelope names (``modeldepot.client.errors``);
    UnexpectedResponse for a success answer that does not decode.
    """
    if response.is_error:
        raise error_from_response(response)
    try:
        return call.decode(response)
    except ValueError as exc:  # pydantic's ValidationError and JSONDecodeError are ValueErrors
        raise UnexpectedResponse(
            f"Could not read the answer to {call.method} {call.path} "
            f"({response.status_code}): {exc}"
        ) from exc


def events_url(root: str) -> str:
    """The service's WebSocket (``/ws``) for its root URL."""
    url = httpx.URL(root)
    scheme = "wss" if url.scheme == "https" else "ws"
    return str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + "/ws"))
