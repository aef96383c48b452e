"""Live events through the SDK: typed, filtered by the service, surviving a restart of
the service (same port, same data) with the filter applied again; and
``wait_until_available``, driven by them."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldepot.client import AsyncClient, Backoff, Client, WaitTimeout
from modeldepot.errors import InvalidInput, ModelNotFound
from modeldepot.events import DownloadProgress, Event, ModelAvailabilityChange
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub
from tests.client.support import ENTRIES, Injecting, free_port, make_repos, server_on_port
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, until, until_blocking

FAST = Backoff(first=0.05, cap=0.2)
AVAILABILITY = ["model_availability_change"]
WAIT_S = 20.0


@pytest.fixture
def settings(local_hub: LocalHub, make_settings: SettingsFactory) -> Settings:
    return make_settings(hf_endpoint=make_repos(local_hub).endpoint)


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings, entries=ENTRIES) as running:
        running.call(lambda services: services.catalog.refresh_all(), timeout=20)
        yield running


def remove(client: Client, model_id: str) -> None:
    """Announces ``model_availability_change`` AVAILABLE -> MISSING."""
    client.cleanup("manual", models_to_remove=[model_id])


def test_events_are_typed_and_filtered(server: LiveServer) -> None:
    with Client(server.base_url) as client:
        with client.events(model_ids=["tiny"]) as events:
            client.download("tiny")
            seen: list[Event] = []
            while not (
                isinstance(last := events.get(timeout=WAIT_S), ModelAvailabilityChange)
                and last.new_status == "AVAILABLE"
            ):
                seen.append(last)
        with pytest.raises(InvalidInput, match="unknown event type"):
            client.events(types=["model_download_progres"]).connect()
    assert {getattr(event, "model_id", None) for event in seen} == {"tiny"}
    final = [e for e in seen if isinstance(e, DownloadProgress) and e.status == "COMPLETED"]
    assert final[0].progress_percent == 100


def test_a_stream_survives_a_restart_and_keeps_its_filter(settings: Settings) -> None:
    port = free_port()
    received: queue.Queue[Event] = queue.Queue()
    with Client(f"http://127.0.0.1:{port}", reconnect=FAST) as client:
        with server_on_port(settings, port=port, entries=ENTRIES) as first:
            first.call(lambda services: services.catalog.refresh_all(), timeout=20)
            stream = client.events(model_ids=["tiny"], types=AVAILABILITY)
            stream.connect()
            reader = threading.Thread(target=lambda: [received.put(e) for e in stream])
            reader.start()
            client.download("tiny")
            before = until_available(received, "tiny")
        with server_on_port(settings, port=port, entries=ENTRIES) as second:
            until_blocking(lambda: stream.subscriptions == 2, within=WAIT_S, what="resubscribed")
            client.download("other")  # not asked for: the service must leave it out
            second.call(lambda services: services.downloads.run_until_idle(), timeout=20)
            remove(client, "tiny")
            after = received.get(timeout=WAIT_S)
            stream.close()
            reader.join(WAIT_S)
    assert before[-1].new_status == "AVAILABLE"
    assert {e.model_id for e in before} == {"tiny"}
    assert (after.model_id, after.old_status, after.new_status) == ("tiny", "AVAILABLE", "MISSING")
    assert received.empty()
    assert not reader.is_alive()


def until_available(received: queue.Queue[Event], model_id: str) -> list[Any]:
    changes = []
    while not changes or changes[-1].new_status != "AVAILABLE":
        event = received.get(timeout=WAIT_S)
        assert isinstance(event, ModelAvailabilityChange)
        changes.append(event)
    return changes


async def test_an_async_stream_survives_a_restart_and_keeps_its_filter(
    settings: Settings,
) -> None:
    port = free_port()
    async with AsyncClient(f"http://127.0.0.1:{port}", reconnect=FAST) as client:
        with contextlib.ExitStack() as first:
            started = server_on_port(settings, port=port, entries=ENTRIES)
            await asyncio.to_thread(first.enter_context, started)
            stream = client.events(model_ids=["tiny"], types=AVAILABILITY)
            await stream.connect()
            await client.download("tiny")
            while getattr(await stream.get(timeout=WAIT_S), "new_status", None) != "AVAILABLE":
                pass
            pending = asyncio.create_task(stream.get(timeout=WAIT_S * 2))
            await asyncio.to_thread(first.close)
        with contextlib.ExitStack() as second:
            started = server_on_port(settings, port=port, entries=ENTRIES)
            restarted = await asyncio.to_thread(second.enter_context, started)
            await until(lambda: stream.subscriptions == 2, within=WAIT_S, what="resubscribed")
            await client.download("other")  # not asked for: the service must leave it out
            await restarted.acall(lambda services: services.downloads.run_until_idle())
            await client.cleanup("manual", models_to_remove=["tiny"])
            after = await pending
            await stream.aclose()
            await asyncio.to_thread(second.close)
    assert isinstance(after, ModelAvailabilityChange)
    assert (after.model_id, after.new_status) == ("tiny", "MISSING")


def test_wait_until_available_returns_on_the_event(server: LiveServer) -> None:
    counting = Injecting(lambda _request: None)
    with Client(server.base_url, transport=counting) as client:
        client.download("other", bandwidth_limit_mbps=0.05)  # 1 MB: 20 s at this pace
        waited: queue.Queue[Any] = queue.Queue()
        waiter = threading.Thread(
            target=lambda: waited.put(client.wait_until_available("other", timeout=WAIT_S))
        )
        waiter.start()
        until_blocking(lambda: server.services.bus.subscriber_count == 1, what="subscribed")
        client.update_download("other", bandwidth_limit_mbps=0)  # lift the limit
        status = waited.get(timeout=WAIT_S)
        waiter.join(WAIT_S)
    looks = [r for r in counting.requests if r.url.path.endswith("/status/detailed/other")]
    assert status.availability_status == "AVAILABLE"
    assert status.is_available
    assert len(looks) == 2  # once subscribed, once on the event: no polling


def test_wait_until_available_times_out_cleanly(server: LiveServer) -> None:
    with Client(server.base_url) as client:
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait_until_available("tiny", timeout=0.5)
        waited = time.monotonic() - started
        with pytest.raises(ModelNotFound):
            client.wait_until_available("nope", timeout=WAIT_S)
    assert isinstance(timed_out.value, TimeoutError)
    assert (
        str(timed_out.value) == "Model 'tiny' did not become available within 0.5 s (last MISSING)"
    )
    assert waited >= 0.5
    until_blocking(lambda: server.services.bus.subscriber_count == 0, what="stream closed")


async def test_async_wait_until_available(server: LiveServer) -> None:
    async with AsyncClient(server.base_url) as client:
        with pytest.raises(WaitTimeout):
            await client.wait_until_available("other", timeout=0.3)
        await client.download("other", bandwidth_limit_mbps=0.05)
        waiter = asyncio.create_task(client.wait_until_available("other", timeout=WAIT_S))
        await until(lambda: server.services.bus.subscriber_count == 1, what="subscribed")
        await client.update_download("other", bandwidth_limit_mbps=0)
        status = await waiter
    assert status.availability_status == "AVAILABLE"
