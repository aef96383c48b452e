"""How modeldepot is served: the uvicorn configuration, with the time-outs and sizes that
keep slow or hostile clients from holding connections or memory (issue 10).

``uvicorn_config`` builds the one ``uvicorn.Config`` that ``serve`` runs (and the live test
server too). What it bounds, and where:

- **Request headers**: ``h11_max_incomplete_event_size`` (64 KiB; uvicorn answers 400 and
  closes when a head still incomplete grows past it; a head arriving whole within one
  socket read, up to 256 KiB in asyncio, is not refused: what the limit bounds is the
  memory a connection holds). Larger than h11's 16 KiB default because cookies are per
  host, not per port: every app a developer runs on ``localhost`` adds to the Cookie
  header our dashboard receives.
- **Header read time-out** (slowloris): uvicorn has none. A client that opens a
  connection and sends nothing, or trickles header bytes, held it forever, and with it a
  slot of ``limit_concurrency``. ``HeaderTimeoutH11Protocol`` closes such a connection
  ``header_timeout`` seconds after it opened or after the first byte of a new request on
  a kept-alive one, whatever arrives meanwhile (a partial request gets a 408 first).
- **Idle keep-alive**: ``timeout_keep_alive`` (uvicorn's, 5 s) between requests.
- **Connections**: ``limit_concurrency`` (1000): beyond it, requests get uvicorn's 503.
- **WebSocket**: ``ws_max_size`` (64 KiB; our commands are tiny, the route refuses more
  than 16 KiB with an error message, a frame beyond 64 KiB is closed 1009 by the protocol
  itself), pings every 20 s and a 20 s pong deadline so dead peers are dropped. The
  sans-I/O implementation is chosen explicitly: it queues at most one received message
  and stops reading the socket until the route takes it, so a flooding client fills its
  own TCP window, not our memory.
- **Request bodies**: not here: the body-size middleware owns their size and read time.

Why h11 and not httptools (uvicorn's default when installed): uvicorn's httptools
protocol sets no limit on header size at all (llhttp leaves it to the embedder), and the
header time-out needs a parser whose state says "between requests" / "inside the
headers"; h11's ``their_state`` does. The cost, a pure-Python parser, does not matter for
a local model manager's request rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from modeldepot.api.envelope import ErrorBody, ErrorEnvelope
from modeldepot.settings import Settings

KEEP_ALIVE_TIMEOUT_S = 5
MAX_HEADER_BYTES = 64 * 1024
MAX_CONNECTIONS = 1000
WS_MAX_MESSAGE_BYTES = 64 * 1024
WS_PING_INTERVAL_S = 20.0
WS_PING_TIMEOUT_S = 20.0
DEFAULT_HEADER_TIMEOUT_S = 10.0


def uvicorn_config(
    app: ASGIApp,
    settings: Settings,
    *,
    log_config: dict[str, Any] | None,
    log_level: str,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
) -> uvicorn.Config:
    """The uvicorn configuration ``serve`` runs ``app`` with, on ``settings.host:port``.

    ``header_timeout``: seconds a client has to send a request's complete headers.

    Raises:
        ValueError: ``header_timeout`` is not positive.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",  # the service graph lives in the lifespan: never serve without it
        log_config=log_config,
        log_level=log_level,
        http=header_timeout_protocol(header_timeout),
        ws=RefusalAwareWebSocketProtocol,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        limit_concurrency=MAX_CONNECTIONS,
        # X-Forwarded-For is not trusted (uvicorn trusts it from 127.0.0.1 by default): a
        # local client could pick the address its rate limit is counted under.
        proxy_headers=False,
    )


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """``HeaderTimeoutH11Protocol`` with a time-out of ``seconds`` (uvicorn builds protocol
    instances itself, from the class given as ``http=``).

    Raises:
        ValueError: ``seconds`` is not positive.
    """
    if not seconds > 0:
        raise ValueError(f"the header time-out must be positive, not {seconds}")

    class _Configured(HeaderTimeoutH11Protocol):
        header_timeout = seconds

    return _Configured


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in
    ``header_timeout`` seconds.

    The clock starts when the connection opens, and on a kept-alive connection when the
    first byte of the next request arrives (until then uvicorn's keep-alive time-out
    governs the idle connection). It is not restarted by later bytes, so trickling does
    not help, and stops when h11 has the whole request head (their state leaves IDLE);
    reading the body is the body-size middleware's concern.
    """

    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT_S

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next, pipelined, request
        self._watch_headers()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop_header_timer()  # the transport is the WebSocket protocol's from now on
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        awaiting_headers = (
            not self.transport.is_closing()
            and self.conn.their_state is h11.IDLE
            and self.timeout_keep_alive_task is None  # not idling between requests
        )
        if not awaiting_headers:
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        partial, _ = self.conn.trailing_data
        # A browser's speculative pre-connection sends nothing and is closed routinely:
        # only a request left half-sent is worth an operator's attention.
        self.logger.log(
            logging.INFO if partial else logging.DEBUG,
            "%s: no complete request headers within %s s; closing the connection",
            f"{self.client[0]}:{self.client[1]}" if self.client else "a client",
            self.header_timeout,
        )
        if partial and self.conn.our_state is h11.IDLE:
            # h11 lets a server answer before the request is complete (RFC 9110's 408).
            self._answer_and_close(
                408,
                "REQUEST_TIMEOUT",
                f"The request's headers did not arrive within {self.header_timeout:g} s",
            )
            return
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse (bad bytes in the target, two
        Host headers, a negative Content-Length...), in the envelope rather than plain text."""
        self._answer_and_close(400, "BAD_REQUEST", f"Malformed HTTP request: {msg}")

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        body = _envelope(status, code, message)
        response = h11.Response(
            status_code=status,
            headers=[
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
            reason=STATUS_PHRASES[status],
        )
        with contextlib.suppress(h11.LocalProtocolError):
            self.transport.write(self.conn.send(response) or b"")
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def _envelope(status: int, code: str, message: str) -> bytes:
    """The error envelope for an answer given before any request reached the app."""
    error = ErrorBody(
        code=code,
        message=message,
        details={},
        timestamp=datetime.now(UTC),
        request_id=f"req_{secrets.token_hex(8)}",
    )
    return ErrorEnvelope(error=error).model_dump_json().encode()


class RefusalAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, without its false alarm on a refused handshake.

    A handshake the guards refuse is answered with an HTTP response (the ASGI
    ``websocket.http.response`` extension); uvicorn 0.54 sends it but never marks the
    handshake as dealt with, then logs "ASGI callable returned without completing
    handshake." at ERROR for every refused Origin, Host, key or rate limit. Once the
    refusal's last body chunk is sent, the handshake is complete: nothing else changes.
    """

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True
