"""The uvicorn configuration ``serve`` runs (``modeldepot.api.server``), against real uvicorn
and raw sockets: slow or oversized request heads cannot hold a connection.

The server runs with a 0.5 s header time-out. Nothing here sleeps to wait for the server:
a test waits for the socket's end (bounded), and "still open after the time-out" is shown
by waiting for another connection, opened later, to be closed by it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator

import h11
import pytest
from websockets.asyncio.client import connect

from modeldepot.api.server import MAX_HEADER_BYTES, header_timeout_protocol
from tests.live_server import LiveServer, live_server, raw_connection
from tests.support import SettingsFactory

HEADER_TIMEOUT_S = 0.5
WAIT_S = 10.0


@pytest.fixture
def server(make_settings: SettingsFactory) -> Iterator[LiveServer]:
    with live_server(make_settings(), header_timeout=HEADER_TIMEOUT_S) as running:
        yield running


async def send(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection, within WAIT_S."""
    received = bytearray()

    async def read() -> None:
        while chunk := await asyncio.get_running_loop().sock_recv(sock, 65536):
            received.extend(chunk)

    await asyncio.wait_for(read(), WAIT_S)
    return bytes(received)


async def exchange(sock: socket.socket, request: bytes) -> h11.Response:
    """Send one request, read its whole response; the connection stays open."""
    await send(sock, request)
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    parser.send(h11.EndOfMessage())
    response: h11.Response | None = None

    async def read() -> None:
        nonlocal response
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                chunk = await asyncio.get_running_loop().sock_recv(sock, 65536)
                assert chunk, "the server closed the connection"
                parser.receive_data(chunk)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.EndOfMessage):
                return

    await asyncio.wait_for(read(), WAIT_S)
    assert response is not None
    return response


def get(path: str = "/healthz", *, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra + b"\r\n"


async def wait_for_the_header_timeout(server: LiveServer) -> None:
    """Return once the header time-out has closed a connection opened now."""
    async with raw_connection(server) as late:
        await send(late, b"GET /hea")
        await read_until_closed(late)


async def test_half_a_request_line_then_nothing_is_answered_408_and_closed(
    server: LiveServer,
) -> None:
    async with raw_connection(server) as sock:
        await send(sock, b"GET /heal")
        answer = await read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    server: LiveServer,
) -> None:
    async with raw_connection(server) as sock:
        answer = await read_until_closed(sock)

    assert answer == b""


async def test_trickled_header_lines_do_not_restart_the_clock(server: LiveServer) -> None:
    loop = asyncio.get_running_loop()
    pace = HEADER_TIMEOUT_S / 10
    answer = bytearray()
    async with raw_connection(server) as sock:
        await send(sock, b"GET /healthz HTTP/1.1\r\n")
        for line in range(int(WAIT_S / pace)):
            # A header line every tenth of the time-out, until the server speaks: a timer
            # restarted by each byte would never fire and the loop would run out.
            await send(sock, f"X-Trickle-{line}: a\r\n".encode())
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(loop.sock_recv(sock, 65536), pace)
                break
        else:
            raise AssertionError("trickling header lines kept the connection open")
        answer += await read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_a_kept_alive_connection_serves_requests_after_the_time_out(
    server: LiveServer,
) -> None:
    async with raw_connection(server) as sock:
        first = await exchange(sock, get())
        # The time-out armed when this connection opened has long passed once a connection
        # opened after it has been timed out; this one's timer was stopped by its headers.
        await wait_for_the_header_timeout(server)
        second = await exchange(sock, get())

    assert (first.status_code, second.status_code) == (200, 200)


async def test_a_websocket_outlives_the_header_time_out(server: LiveServer) -> None:
    async with connect(server.ws_url, open_timeout=5, close_timeout=2) as websocket:
        await wait_for_the_header_timeout(server)
        await websocket.send(json.dumps({"action": "subscribe", "model_ids": ["a"]}))
        reply = json.loads(await asyncio.wait_for(websocket.recv(), WAIT_S))

    assert reply["type"] == "subscribed"


async def test_a_32_kib_cookie_is_served(server: LiveServer) -> None:
    """Beyond h11's 16 KiB default: cookies of every app on localhost reach us."""
    cookie = b"Cookie: " + b"a" * 32 * 1024 + b"\r\n"
    async with raw_connection(server) as sock:
        response = await exchange(sock, get(extra=cookie))

    assert response.status_code == 200


async def test_a_request_head_growing_past_64_kib_is_refused_with_400(server: LiveServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: "
    head += b"b" * (MAX_HEADER_BYTES - len(head))
    async with raw_connection(server) as sock:
        await send(sock, head)  # exactly the limit, still incomplete: held
        # One byte more: h11 refuses the head (it judges the head it holds incomplete, so
        # one arriving whole within one socket read is not refused: memory stays bounded
        # by the limit and a read). Nothing is left unread, so the close is clean.
        await send(sock, b"b")
        answer = await read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


def test_the_header_time_out_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        header_timeout_protocol(0)
