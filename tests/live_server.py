"""The real modeldepot app under real uvicorn, on a free 127.0.0.1 port, in a thread.

For tests that need a real network service: the WebSocket, and the CLI's "through the
running service" path. The server has its own event loop in a background thread, so
synchronous code (the CLI under ``CliRunner``) and async tests can both talk to it::

    with live_server(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as server:
        httpx.get(f"{server.base_url}/healthz")
        server.call(lambda services: services.downloads.run_until_idle(), timeout=10)

Leaving the context stops uvicorn (lifespan shutdown included), joins the thread and
closes the listening socket; a server that fails to start or stop raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import uvicorn

from modeldepot.api.app import create_app
from modeldepot.api.server import DEFAULT_HEADER_TIMEOUT_S, uvicorn_config
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.services import Services
from modeldepot.settings import Settings

T = TypeVar("T")

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


@dataclass
class LiveServer:
    """A running server: its address, its event loop and its service graph."""

    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    services: Services

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def submit(self, work: Callable[[Services], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run ``work(services)`` on the server's loop (services are not thread-safe)."""

        async def run() -> T:
            return await work(self.services)

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def call(self, work: Callable[[Services], Awaitable[T]], *, timeout: float = 10) -> T:
        """Blocking ``submit``: for synchronous tests."""
        return self.submit(work).result(timeout)

    async def acall(self, work: Callable[[Services], Awaitable[T]]) -> T:
        """``submit`` awaited from another event loop (an async test's; bound it yourself)."""
        return await asyncio.wrap_future(self.submit(work))


@contextlib.contextmanager
def live_server(
    settings: Settings,
    *,
    entries: Iterable[CatalogEntry] = (),
    include_builtin: bool = False,
    send_buffer_bytes: int | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
    port: int = 0,
) -> Iterator[LiveServer]:
    """Serve ``create_app(settings, extra_entries=entries)`` until the block ends, on
    ``port`` of 127.0.0.1 (0: a free one; a given port lets a new server take the place
    of one that stopped, as a service restart looks to a client).

    ``send_buffer_bytes`` caps the kernel's send buffer of every connection (inherited
    from the listening socket), so a client that stops reading blocks the server after
    kilobytes instead of the megabytes loopback autotuning allows. ``header_timeout``: the
    seconds a client has to send a request's headers (``modeldepot.api.server``).

    Raises:
        RuntimeError: the server did not start (its error chained) or did not stop in time.
    """
    app = create_app(settings, extra_entries=tuple(entries), include_builtin=include_builtin)
    sock = _listening_socket(send_buffer_bytes, port)
    host, port = sock.getsockname()[:2]
    # The configuration ``serve`` runs, with two changes for tests: a bounded shutdown,
    # and no WebSocket pings (a test's deliberately stuck client would not answer them).
    config = uvicorn_config(
        app, settings, log_config=None, log_level="warning", header_timeout=header_timeout
    )
    config.timeout_graceful_shutdown = 3
    config.ws_ping_interval = None
    server = uvicorn.Server(config)
    runner = _Runner(server, sock)
    runner.start()
    try:
        loop = runner.wait_started()
        _wait_healthy(f"http://{host}:{port}/healthz", runner)
        yield LiveServer(host=host, port=port, loop=loop, services=app.state.services)
    finally:
        runner.stop()


class _Runner:
    """The thread that owns the server's event loop."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
        finally:
            self._sock.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_started(self) -> asyncio.AbstractEventLoop:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the live server did not start") from self._error
            time.sleep(0.01)
        assert self._loop is not None
        return self._loop

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("the live server did not stop in time")


def _wait_healthy(url: str, runner: _Runner) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline and runner.alive:
            with contextlib.suppress(httpx.TransportError):
                # 401: up, and requiring API keys (auth_required)
                if client.get(url).status_code in (200, 401):
                    return
            time.sleep(0.02)
    raise RuntimeError(f"{url} never answered")


def _listening_socket(send_buffer_bytes: int | None, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def raw_connection(server: LiveServer) -> AsyncIterator[socket.socket]:
    """A plain TCP connection to ``server`` (non-blocking, for the loop's sock_* calls):
    for requests no HTTP client would send."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
        yield sock
    finally:
        sock.close()
