"""A real HTTP server that receives wait-queue callbacks, answering from a script."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers the n-th request with ``script[n]`` (status, headers), then 200."""

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, received: Received) -> tuple[int, dict[str, str]]:
        with self._arrived:
            index = len(self.received)
            self.received.append(received)
            self._arrived.notify_all()
        return self.script[index] if index < len(self.script) else (200, {})

    async def wait_for(self, count: int, within: float = 30) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""

        def wait() -> bool:
            with self._arrived:
                return self._arrived.wait_for(lambda: len(self.received) >= count, within)

        assert await asyncio.to_thread(wait), f"{len(self.received)} of {count} arrived"
        return self.received[:count]


@contextmanager
def receiver(script: list[tuple[int, dict[str, str]]] | None = None) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (the local hub's host: the source policy trusts it)."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status, headers = holder[0].answer(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(
        Receiver(
            url=f"http://127.0.0.1:{server.server_address[1]}/hooks/queue", script=script or []
        )
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
