"""What the SDK tests share: a small catalogue on the local hub, the real service on a
port of our choosing (to restart it in place), and a transport that injects answers."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from modeldepot.settings import Settings
from modeldepot.testing import LocalHub
from tests.live_server import LiveServer, live_server
from tests.support import hub_entry

T2V = {"capabilities": ["text-to-video"], "quality": "high", "speed": "medium"}
ENTRIES = (
    hub_entry("tiny", "acme/tiny", **T2V),
    hub_entry("other", "acme/other", **T2V),
)


def make_repos(hub: LocalHub) -> LocalHub:
    hub.create_repo("acme/tiny", {"config.json": b"{}", "model.ckpt": os.urandom(100_000)})
    hub.create_repo("acme/other", {"model.ckpt": os.urandom(1_000_000)})
    return hub


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_on_port(settings: Settings, *, port: int, **options: Any) -> Iterator[LiveServer]:
    """``live_server`` listening on ``port``, so that a new server can take the place of
    one that stopped (a service restart, as a client sees it)."""
    with live_server(settings, port=port, **options) as server:
        yield server


Answer = Callable[[httpx.Request], httpx.Response | None]


class Injecting(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The real transport, except for the requests ``answer`` answers itself (it returns
    None to let one through). Counts every request, for "was it retried?"."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._real = httpx.HTTPTransport()
        self._real_async = httpx.AsyncHTTPTransport()
        self._lock = threading.Lock()
        self.requests: list[httpx.Request] = []

    def _injected(self, request: httpx.Request) -> httpx.Response | None:
        with self._lock:
            self.requests.append(request)
        return self._answer(request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._injected(request) or self._real.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._injected(request) or await self._real_async.handle_async_request(request)

    def close(self) -> None:
        self._real.close()

    async def aclose(self) -> None:
        await self._real_async.aclose()


def first_answers(*answers: httpx.Response | None) -> Answer:
    """Answer the first requests with ``answers`` in order (None: let that one through);
    then let everything through."""
    queue = list(answers)

    def answer(_request: httpx.Request) -> httpx.Response | None:
        return queue.pop(0) if queue else None

    return answer


def envelope(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"injected {code}", "details": {}}}
    return httpx.Response(status, json=body, headers=headers)
