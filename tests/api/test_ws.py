"""``/ws`` under real uvicorn, with real WebSocket clients, during real downloads.

The downloads come from the local hub over HTTP; ``Throttle`` on the CDN stretches them
so progress can be observed and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from modeldepot.api.routes.ws import parse_command
from modeldepot.errors import InvalidInput
from modeldepot.events import PROGRESS_HZ, DownloadProgress, Event, ModelAvailabilityChange
from modeldepot.services import Services
from modeldepot.testing import LocalHub, Throttle, write_random_file
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry

FILE_SIZE = 400_000
WAIT_S = 15.0
Message = dict[str, Any]


@pytest.fixture
def server(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> Iterator[LiveServer]:
    """A service with two one-file models, ``model-a`` and ``model-b``."""
    for seed, name in enumerate(("a", "b")):
        big = write_random_file(tmp_path / f"{name}.bin", FILE_SIZE, seed=seed)
        local_hub.create_repo(f"acme/{name}", {"config.json": b"{}", "model.safetensors": big})
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entries = (hub_entry("model-a", "acme/a"), hub_entry("model-b", "acme/b"))
    # Small socket buffers: a client that stops reading holds up its sender within ~100 KB.
    with live_server(settings, entries=entries, send_buffer_bytes=16_384) as running:
        yield running


class Listener:
    """A client that reads everything the server sends, as it arrives."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.received: list[Message] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.websocket:
                self.received.append(json.loads(raw))
                self._arrived.set()
        self._arrived.set()

    @property
    def messages(self) -> list[Message]:
        return list(self.received)

    async def send(self, command: Message | str) -> None:
        await self.websocket.send(command if isinstance(command, str) else json.dumps(command))

    async def wait_for(self, predicate: Callable[[Message], bool]) -> Message:
        """The first message (old or new) matching ``predicate``, waiting up to WAIT_S."""

        async def scan() -> Message:
            seen = 0
            while True:
                for message in self.received[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.received)
                if self._reader.done():
                    last = self.messages[-3:]
                    raise AssertionError(f"closed after {len(self.received)} messages: {last}")
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(scan(), WAIT_S)

    async def subscribe(self, **selection: list[str]) -> None:
        await self.send({"action": "subscribe", **selection})
        await self.wait_for(lambda m: m["type"] == "subscribed")

    async def closed(self) -> int:
        """Wait until the server closes the connection; return its close code."""
        await asyncio.wait_for(self._reader, WAIT_S)
        code = self.websocket.close_code
        assert code is not None
        return code

    async def stop(self) -> None:
        await self.websocket.close()
        await asyncio.wait_for(self._reader, WAIT_S)


@contextlib.asynccontextmanager
async def listening(server: LiveServer) -> AsyncIterator[Listener]:
    async with connect(server.ws_url, open_timeout=5, close_timeout=2) as websocket:
        listener = Listener(websocket)
        try:
            yield listener
        finally:
            await listener.stop()


async def start_download(server: LiveServer, model_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post(
            "/api/v1/models/download/manage", json={"model_id": model_id, "action": "start"}
        )
    assert response.status_code == 200, response.text
    download_id: str = response.json()["download_id"]
    return download_id


def completed(model_id: str) -> Callable[[Message], bool]:
    return lambda m: (
        m["type"] == "model_download_progress"
        and m["model_id"] == model_id
        and m["status"] == "COMPLETED"
    )


def available(model_id: str) -> Callable[[Message], bool]:
    return lambda m: (
        m["type"] == "model_availability_change"
        and m["model_id"] == model_id
        and m["new_status"] == "AVAILABLE"
    )


def about(model_id: str, messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.get("model_id") == model_id]


async def test_progress_in_the_seed_shape_at_most_4_per_second_ending_completed(
    server: LiveServer, local_hub: LocalHub
) -> None:
    local_hub.faults.add(Throttle(bytes_per_second=FILE_SIZE // 2), server="cdn")  # ~2 s
    async with listening(server) as client:
        await client.subscribe(model_ids=["model-a"])
        download_id = await start_download(server, "model-a")
        change = await client.wait_for(available("model-a"))

    progress = [m for m in client.received if m["type"] == "model_download_progress"]
    for message in progress:
        assert {"type", "model_id", "progress_percent", "speed_mbps", "eta_seconds", "status"} <= (
            message.keys()
        )
        assert message["model_id"] == "model-a"
        assert message["download_id"] == download_id
        assert isinstance(message["progress_percent"], float | int)
        assert isinstance(message["speed_mbps"], float | int)
        assert message["eta_seconds"] is None or isinstance(message["eta_seconds"], int)
    # While bytes flow, progress comes from the server's 4 Hz tick: after the state change
    # that starts the download, the server's own stamps on its messages are at least a
    # tick apart (the tick sleeps a quarter of a second; a busy machine only spaces them
    # out more). The client's arrival times say nothing here: delivery may bunch them.
    flowing = [_stamp(m) for m in progress if m["status"] == "DOWNLOADING"][1:]
    assert len(flowing) >= 2, "the throttle should stretch the download over several ticks"
    gaps = [later - earlier for earlier, later in itertools.pairwise(flowing)]
    assert min(gaps) >= 1 / PROGRESS_HZ - 0.01, gaps
    assert any(m["speed_mbps"] > 0 and m["eta_seconds"] is not None for m in progress)
    final = progress[-1]
    assert final["status"] == "COMPLETED"
    assert final["progress_percent"] == 100
    assert change["old_status"] != "AVAILABLE"
    assert client.messages[-1] == change  # nothing about the model after it is available


def _stamp(message: Message) -> float:
    """The server's timestamp on a message, in seconds."""
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()


async def test_a_subscription_to_another_model_receives_none_of_its_messages(
    server: LiveServer,
) -> None:
    async with listening(server) as watcher_a, listening(server) as watcher_b:
        await watcher_a.subscribe(model_ids=["model-a"])
        await watcher_b.subscribe(model_ids=["model-b"])
        await start_download(server, "model-a")
        await watcher_a.wait_for(available("model-a"))
        # Events reach each client in order: once model-b's arrive, model-a's are past.
        await start_download(server, "model-b")
        await watcher_b.wait_for(available("model-b"))

    assert about("model-a", watcher_b.messages) == []
    assert about("model-b", watcher_a.messages) == []
    assert any(completed("model-b")(m) for m in watcher_b.messages)


async def test_a_types_filter_delivers_only_those_types(server: LiveServer) -> None:
    async with listening(server) as client:
        await client.subscribe(types=["model_availability_change"])
        await start_download(server, "model-a")
        await client.wait_for(available("model-a"))

    events = [m for m in client.messages if m["type"] != "subscribed"]
    assert events
    assert {m["type"] for m in events} == {"model_availability_change"}


async def test_an_invalid_command_gets_an_error_message_and_the_connection_stays(
    server: LiveServer,
) -> None:
    async with listening(server) as client:
        await client.send("not json")
        first = await client.wait_for(lambda m: m["type"] == "error")
        await client.send({"action": "dance", "model_ids": ["model-a"]})
        await client.wait_for(lambda m: m["type"] == "error" and m is not first)
        await client.subscribe(model_ids=["model-a"])
        await start_download(server, "model-a")
        await client.wait_for(completed("model-a"))

    errors = [m for m in client.messages if m["type"] == "error"]
    assert len(errors) == 2
    assert "subscribe" in errors[0]["message"]


def is_error(message: Message) -> bool:
    return message["type"] == "error"


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the server logged as an error or with a traceback ("Exception in ASGI ...")."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_binary_frame_gets_an_error_message_and_the_connection_stays(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening(server) as client:
        await client.websocket.send(b'{"action": "subscribe", "model_ids": ["model-a"]}')
        error = await client.wait_for(is_error)
        await client.subscribe(model_ids=["model-a"])

    assert "binary" in error["message"]
    assert _tracebacks(caplog) == []


async def test_json_nested_10000_deep_gets_an_error_message_and_no_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening(server) as client:
        await client.send("[" * 10_000)  # 10 KB: under the size limit, json.loads would recurse
        nested = await client.wait_for(is_error)
        await client.send('{"action": "subscribe", "model_ids": ' + "[" * 5_000 + "]" * 5_000 + "}")
        await client.wait_for(lambda m: is_error(m) and m is not nested)
        await client.subscribe(model_ids=["model-a"])

    assert "nested deeper than" in nested["message"]
    assert _tracebacks(caplog) == []


async def test_an_oversized_command_gets_an_error_and_one_over_64_kib_closes_with_1009(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening(server) as client:
        await client.send({"action": "subscribe", "model_ids": ["m" * 100] * 200})  # ~20 KB
        too_big = await client.wait_for(is_error)
        await client.subscribe(model_ids=["model-a"])
        await client.send("x" * (64 * 1024 + 1))  # beyond uvicorn's ws_max_size
        code = await client.closed()

    assert "bytes" in too_big["message"]
    assert code == 1009
    assert _tracebacks(caplog) == []


async def test_bad_model_ids_and_unknown_types_are_named_and_change_nothing(
    server: LiveServer,
) -> None:
    async with listening(server) as client, listening(server) as everything:
        await client.subscribe(model_ids=["model-b"])
        await client.send({"action": "subscribe", "model_ids": ["model-a", "../etc"]})
        bad_id = await client.wait_for(is_error)
        await client.send({"action": "subscribe", "types": ["model_download_progress", "gossip"]})
        bad_type = await client.wait_for(lambda m: is_error(m) and m is not bad_id)
        await client.send({"action": "subscribe", "model_ids": [f"m{n}" for n in range(1001)]})
        too_many = await client.wait_for(lambda m: is_error(m) and m not in (bad_id, bad_type))
        # None of them replaced the subscription to model-b. Events reach every client in
        # order: once model-b's arrive, any of model-a's would have arrived before them.
        await _download(server, everything, "model-a")
        await _download(server, client, "model-b")

    assert "model_ids.1" in bad_id["message"]
    assert "'../etc'" in bad_id["message"]
    assert "types.1" in bad_type["message"]
    assert "'gossip'" in bad_type["message"]
    assert "model_download_progress" in bad_type["message"]  # the known types are listed
    assert "at most 1000" in too_many["message"]
    assert about("model-a", client.messages) == []


async def test_the_modeldepot_subprotocol_is_selected_and_a_key_never_echoed(
    server: LiveServer,
) -> None:
    key = Subprotocol("modeldepot.bearer.not-a-real-key-4f2a")
    browser_like = [Subprotocol("modeldepot"), key]
    async with connect(server.ws_url, subprotocols=browser_like, open_timeout=5) as websocket:
        assert websocket.subprotocol == "modeldepot"
        assert websocket.response is not None
        assert websocket.response.headers.get_all("Sec-WebSocket-Protocol") == ["modeldepot"]
        assert "4f2a" not in str(websocket.response.headers)
        listener = Listener(websocket)
        await listener.subscribe(model_ids=["model-a"])
        await listener.stop()
    for offered in ([key], None):  # only the key, or nothing: accepted without a subprotocol
        async with connect(server.ws_url, subprotocols=offered, open_timeout=5) as websocket:
            assert websocket.subprotocol is None
            assert websocket.response is not None
            assert "Sec-WebSocket-Protocol" not in websocket.response.headers


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[" * 9, "nested deeper than 8"),
        ('{"action": "subscribe", "x": ' + "{" * 8 + "}" * 8 + "}", "nested deeper than 8"),
        ("not json", "not JSON"),
        ('{"action": "subscribe", "model_ids": [""]}', "model_ids.0"),
        ('{"action": "subscribe", "model_ids": ["a" , 7]}', "model_ids.1"),
        ('{"action": "subscribe", "types": ["model_health_alert", 1]}', "types.1"),
        ('{"action": "subscribe", "extra": 1}', "extra: Extra inputs are not permitted"),
        ('{"action": "subscribe", "model_ids": ["' + "a" * 17_000 + '"]}', "at most 16384"),
    ],
)
def test_parse_command_names_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_command(text)
    assert complaint in refused.value.message


@pytest.mark.parametrize(
    "literal",
    ['"[[[[[[[[[[{{{{{{{{{"', r'"\"[[[[[[[[[[\""', r'"[[[[[[[[[[[[\\"'],
    ids=["brackets", "after an escaped quote", "before an escaped backslash"],
)
def test_brackets_inside_strings_are_not_nesting(literal: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_command('{"action": "subscribe", "model_ids": [' + literal + "]}")
    assert "model_ids.0" in refused.value.message  # judged as an id, not as nesting


def test_brackets_after_a_string_ending_in_a_backslash_are_nesting() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_command(r'{"action": "subscribe", "x": ["\\", ' + "[" * 8 + "]" * 8 + "]}")
    assert "nested deeper than" in refused.value.message


async def test_two_clients_both_get_the_final_state(
    server: LiveServer, local_hub: LocalHub
) -> None:
    local_hub.faults.add(Throttle(bytes_per_second=FILE_SIZE * 2), server="cdn")
    async with listening(server) as first, listening(server) as second:
        download_id = await start_download(server, "model-a")
        for client in (first, second):
            final = await client.wait_for(completed("model-a"))
            assert final["download_id"] == download_id
            assert final["progress_percent"] == 100
            await client.wait_for(available("model-a"))


async def test_a_client_that_never_reads_blocks_no_download_and_no_other_client(
    server: LiveServer, local_hub: LocalHub
) -> None:
    local_hub.faults.add(Throttle(bytes_per_second=FILE_SIZE * 2), server="cdn")  # ~0.5 s
    async with listening(server) as healthy:
        await _download(server, healthy, "model-a")  # the reference: alone
        async with _stuck_client(server):
            await _wait_for_subscribers(server, 2)
            # Progress for another model until the stuck client's socket buffers are full
            # (progress may be dropped for slow clients: it piles up nowhere).
            for first in range(0, 1600, 200):
                await _publish(server, [_progress(seq) for seq in range(first, first + 200)])
                await healthy.wait_for(_flood_event(first + 199))
            # Beside the stuck client, a whole download runs and is reported to the end:
            # the bus never waits for a reader (a blocked publisher would stop it here).
            await _download(server, healthy, "model-b")
            assert await _subscribers(server) == 2  # and the stuck one was not dropped


async def test_the_bus_closes_a_client_too_far_behind_with_1013_and_no_one_else(
    server: LiveServer,
) -> None:
    async with listening(server) as healthy, _stuck_client(server) as stuck:
        await _wait_for_subscribers(server, 2)
        sent = 0
        while await _subscribers(server) == 2:
            assert sent < 20_000, "the bus never dropped the stuck client"
            await _publish(server, [_state_change(seq) for seq in range(sent, sent + 200)])
            sent += 200
            await healthy.wait_for(_flood_event(sent - 1))  # the healthy one keeps up
        await start_download(server, "model-a")
        await healthy.wait_for(available("model-a"))  # and is still served

        # The stuck client, reading at last, gets what was queued for it, then the close.
        code = await asyncio.wait_for(stuck.read_until_closed(), WAIT_S)

    assert len(about(FLOOD, healthy.messages)) == sent  # state changes are never dropped
    assert code == 1013


async def test_publishing_stays_cheap_while_a_client_is_stuck(server: LiveServer) -> None:
    async with listening(server) as healthy:
        await _wait_for_subscribers(server, 1)
        baseline = await _publish(server, [_state_change(seq) for seq in range(200)])
        await healthy.wait_for(_flood_event(199))
        async with _stuck_client(server):
            await _wait_for_subscribers(server, 2)
            for first in range(0, 1600, 200):  # fill its socket buffers with progress
                await _publish(server, [_progress(seq) for seq in range(first, first + 200)])
                await healthy.wait_for(_flood_event(first + 199))
            for first in range(200, 2200, 200):  # then a backlog of 2000 state changes
                await _publish(server, [_state_change(seq) for seq in range(first, first + 200)])
                await healthy.wait_for(_flood_event(first + 199))
            beside_stuck = await _publish(server, [_state_change(seq) for seq in range(2200, 2400)])

    # Measured before the fix: ~0.1 ms for the baseline, ~50 ms beside the stuck client.
    assert beside_stuck < 10 * baseline + 0.005


FLOOD = "flood-model"


async def _download(server: LiveServer, client: Listener, model_id: str) -> None:
    await start_download(server, model_id)
    await client.wait_for(completed(model_id))
    await client.wait_for(available(model_id))


class StuckClient:
    """A WebSocket client that completes the handshake, then reads nothing until told to.

    A raw socket with a small receive buffer: no client library reads ahead for it, so
    the server's writes back up after about a hundred kilobytes.
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self._sock = sock
        self._protocol = protocol

    async def _receive(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self._sock, 65536)
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        self._protocol.events_received()  # frames are not kept: only the close matters
        for chunk in self._protocol.data_to_send():  # pongs, the close reply
            if chunk:
                await asyncio.get_running_loop().sock_sendall(self._sock, chunk)

    async def read_until_closed(self) -> int:
        """Read everything the server sends until it closes; return its close code."""
        while self._protocol.close_rcvd is None:
            assert self._protocol.state is not State.CLOSED, "closed without a close frame"
            await self._receive()
        return self._protocol.close_rcvd.code


@contextlib.asynccontextmanager
async def _stuck_client(server: LiveServer) -> AsyncIterator[StuckClient]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (server.host, server.port))
        protocol = ClientProtocol(parse_uri(server.ws_url))
        protocol.send_request(protocol.connect())
        for chunk in protocol.data_to_send():
            await loop.sock_sendall(sock, chunk)
        client = StuckClient(sock, protocol)
        while protocol.state is State.CONNECTING:
            await asyncio.wait_for(client._receive(), WAIT_S)
        assert protocol.state is State.OPEN, protocol.handshake_exc
        yield client
    finally:
        sock.close()


async def _subscribers(server: LiveServer) -> int:
    async def count(services: Services) -> int:
        return services.bus.subscriber_count

    return await asyncio.wait_for(server.acall(count), WAIT_S)


async def _wait_for_subscribers(server: LiveServer, expected: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while await _subscribers(server) != expected:
        assert time.monotonic() < deadline, f"never {expected} subscribers"
        await asyncio.sleep(0.01)


async def _publish(server: LiveServer, events: list[Event]) -> float:
    """Publish ``events`` on the server's bus, from its loop; return the CPU seconds it took."""

    async def publish(services: Services) -> float:
        # CPU time of this thread with the collector paused: what publishing itself costs,
        # not how long the test process's other threads or a GC pass held the GIL.
        gc.disable()
        try:
            began = time.thread_time()
            for event in events:
                services.bus.publish(event)
            return time.thread_time() - began
        finally:
            gc.enable()

    return await asyncio.wait_for(server.acall(publish), WAIT_S)


class _NumberedChange(ModelAvailabilityChange):
    """A real state change (never dropped), numbered so a client can count them."""

    seq: int


class _NumberedProgress(DownloadProgress):
    """Real progress (droppable for slow clients), numbered."""

    seq: int


def _state_change(seq: int) -> Event:
    return _NumberedChange(model_id=FLOOD, old_status=None, new_status="AVAILABLE", seq=seq)


def _progress(seq: int) -> Event:
    return _NumberedProgress(
        model_id=FLOOD,
        progress_percent=50.0,
        speed_mbps=1.0,
        eta_seconds=1,
        status="DOWNLOADING",
        download_id="dl_flood",
        downloaded_mb=1.0,
        total_mb=2.0,
        retry_count=0,
        error_message=None,
        seq=seq,
    )


def _flood_event(seq: int) -> Callable[[Message], bool]:
    return lambda m: m.get("model_id") == FLOOD and m.get("seq") == seq


async def test_health_alert_reaches_clients_in_the_seed_shape(server: LiveServer) -> None:
    """Download a model, flip a byte of a stored file, run a full check: an alert arrives."""
    async with listening(server) as client:
        await client.subscribe(model_ids=["model-a"])
        await start_download(server, "model-a")
        await client.wait_for(available("model-a"))
        models_dir = server.services.models_dir
        blob = next(models_dir.glob("models--acme--a/snapshots/*/model.safetensors"))
        target = blob.resolve()
        data = bytearray(target.read_bytes())
        data[1234] ^= 0xFF
        target.write_bytes(bytes(data))
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            answer = await http.post(
                "/api/v1/models/health/model-a/check", json={"check_type": "full"}
            )
        assert answer.status_code == 200, answer.text
        alert = await client.wait_for(lambda m: m["type"] == "model_health_alert")
        change = await client.wait_for(
            lambda m: m["type"] == "model_availability_change" and m["new_status"] == "CORRUPTED"
        )
    assert {"model_id", "alert_type", "severity", "message", "recommended_action", "timestamp"} <= (
        alert.keys()
    )
    assert alert["model_id"] == "model-a"
    assert alert["alert_type"] == "corruption_detected"
    assert alert["severity"] == "critical"
    assert alert["recommended_action"] == "auto_repair"
    assert "model.safetensors" in alert["message"]
    assert change["old_status"] == "AVAILABLE"
