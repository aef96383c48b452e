"""The command line's client for a running modeldepot service: probe, HTTP API, WebSocket.

A service "is up" when ``/healthz`` at the configured host and port answers like
modeldepot (JSON with ``catalog_models``) within ``PROBE_TIMEOUT_S``; anything else
(refused, slow, another program on the port) means "not running", and the command works in
its own process. A URL the user names (``--url`` or ``MODELDEPOT_URL``) must answer: there
is no silent fall-back to in-process work then (``SERVICE_UNREACHABLE``). Error envelopes
(``{"error": {code, message, details}}``) become ``CommandFailed`` with the same code, so
the command line maps them exactly as errors raised in-process.

A service that requires API keys answers 401 in the envelope without one: it is up all
the same. The key comes from ``MODELDEPOT_API_KEY`` and is sent on every request (and on
the WebSocket) as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from modeldepot.api.pagination import MAX_LIMIT
from modeldepot.api.routes.status import DetailedStatusPage
from modeldepot.availability.schemas import ModelStatus
from modeldepot.cli.exits import CommandFailed, Problem
from modeldepot.downloads.schemas import ManageRequest, ManageResponse, ProgressResponse
from modeldepot.settings import Settings

API_KEY_ENV = "MODELDEPOT_API_KEY"
PROBE_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 10.0
API = "/api/v1"

M = TypeVar("M", bound=BaseModel)


def auth_headers() -> dict[str, str]:
    """``Authorization`` for the key in ``MODELDEPOT_API_KEY``, if one is set."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def service_url(settings: Settings) -> str:
    """Where a service started with these settings listens (wildcard binds: loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - not a bind
    host = wildcard.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def normalise_url(url: str) -> str:
    """``url`` as a base URL (``http://host:port``); ``/api/v1`` and slashes at the end are
    dropped, so the address a user copies from the README or the docs works.

    Raises: CommandFailed (VALIDATION_ERROR) for anything but an http(s) URL with a host.
    """
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise CommandFailed(Problem("VALIDATION_ERROR", f"Not a URL: {url!r} ({exc})")) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CommandFailed(
            Problem("VALIDATION_ERROR", f"Not an http(s) URL of a service: {url!r}")
        )
    path = parsed.path.rstrip("/")
    path = path.removesuffix(API)
    return str(parsed.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


async def probe(url: str) -> str | None:
    """Why ``url`` is not a modeldepot service, or None when it is one."""
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, headers=auth_headers()) as client:
            response = await client.get(f"{url}/healthz")
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 401 and _is_envelope(body, "UNAUTHORIZED"):
        return None  # modeldepot, wanting a key: the command will say so
    if response.status_code != 200 or not isinstance(body, dict):
        return f"/healthz answered {response.status_code}, not like modeldepot"
    if "catalog_models" not in body:
        return "/healthz answered, but not like modeldepot"
    return None


async def find_service(settings: Settings, url: str | None = None) -> str | None:
    """The base URL of the modeldepot service to use, or None to work in-process.

    With ``url`` (the user named one) that service must answer; without, the configured
    address is probed and None returned when nothing (or something else) answers there.

    Raises: CommandFailed (SERVICE_UNREACHABLE, VALIDATION_ERROR) for a named URL.
    """
    if url is not None:
        base = normalise_url(url)
        if (why := await probe(base)) is not None:
            raise CommandFailed(
                Problem("SERVICE_UNREACHABLE", f"No modeldepot service at {base}: {why}")
            )
        return base
    base = service_url(settings)
    return base if await probe(base) is None else None


class RemoteService:
    """The service's HTTP API; every failure raises ``CommandFailed``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, base_url: str) -> AsyncIterator[RemoteService]:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=auth_headers()
        ) as client:
            yield cls(client)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def manage(self, request: ManageRequest) -> ManageResponse:
        """Raises: CommandFailed (e.g. DOWNLOAD_IN_PROGRESS with the download_id in details)."""
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._call("POST", f"{API}/models/download/manage", ManageResponse, body)

    async def progress(self, model_id: str) -> ProgressResponse:
        """Raises: CommandFailed."""
        path = f"{API}/models/download/progress/{model_id}"
        return await self._call("GET", path, ProgressResponse)

    async def detailed_status(self) -> list[ModelStatus]:
        """Every model's status, in model id order, fetched page by page (issue 10).

        Raises: CommandFailed."""
        statuses: dict[str, ModelStatus] = {}
        page = pages = 1
        while page <= pages:
            path = f"{API}/models/status/detailed?page={page}&limit={MAX_LIMIT}"
            answer = await self._call("GET", path, DetailedStatusPage)
            statuses.update(answer.models)
            pages, page = answer.pagination.pages, page + 1
        return list(statuses.values())

    async def _call(
        self, method: str, path: str, model: type[M], body: dict[str, Any] | None = None
    ) -> M:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CommandFailed(
                Problem("SERVICE_UNAVAILABLE", f"The service at {self.base_url} stopped: {exc}")
            ) from exc
        if response.is_error:
            raise _envelope_error(response)
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise CommandFailed(
                Problem("SERVICE_PROTOCOL_ERROR", f"Unexpected answer to {method} {path}: {exc}")
            ) from exc


def _is_envelope(body: Any, code: str) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == code


def _envelope_error(response: httpx.Response) -> CommandFailed:
    try:
        error = response.json()["error"]
        message = str(error["message"])
        if error["code"] == "UNAUTHORIZED":
            message = (
                f"The service refused the key in {API_KEY_ENV} (unknown or revoked)"
                if auth_headers()
                else f"The service requires an API key: set {API_KEY_ENV} to one "
                "(an admin makes it with `modeldepot keys create NAME --role user`)"
            )
        return CommandFailed(
            Problem(str(error["code"]), message), details=error.get("details") or {}
        )
    except (ValueError, KeyError, TypeError):
        return CommandFailed(
            Problem("SERVICE_ERROR", f"The service answered {response.status_code}")
        )


class EventFeed:
    """The service's WebSocket, subscribed to one model: wakes ``wait`` on each event.

    If the WebSocket cannot be opened or breaks, ``wait`` simply times out: the caller's
    polling carries on alone.
    """

    def __init__(self, *, ws_url: str, model_id: str) -> None:
        self._ws_url = ws_url
        self._model_id = model_id
        self._news = asyncio.Event()
        self.connected = False

    @classmethod
    def for_service(cls, base_url: str, model_id: str) -> EventFeed:
        return cls(ws_url=base_url.replace("http", "ws", 1).rstrip("/") + "/ws", model_id=model_id)

    async def run(self) -> None:
        try:
            async with connect(
                self._ws_url, open_timeout=2, close_timeout=1, additional_headers=auth_headers()
            ) as websocket:
                command = {"action": "subscribe", "model_ids": [self._model_id]}
                await websocket.send(json.dumps(command))
                self.connected = True
                async for raw in websocket:
                    message = json.loads(raw)
                    if isinstance(message, dict) and message.get("model_id") == self._model_id:
                        self._news.set()
        except (OSError, TimeoutError, WebSocketException, ValueError):
            # The feed only wakes the poll loop early; without it, polling carries on.
            return
        finally:
            self.connected = False

    async def wait(self, at_most: float) -> None:
        """Return at the next event about the model, or after ``at_most`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._news.wait()
        self._news.clear()
