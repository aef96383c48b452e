"""Ctrl-C is never lost: the pull's waits let a cancellation through even when it comes in
the same loop iteration as the event or the timeout they wait for.

``asyncio.wait_for`` on Python 3.11 returns the inner result when the outer task is
cancelled just as the inner one finishes, swallowing the cancellation; a clean CI run saw
``modeldepot pull`` ignore Ctrl-C and finish its download (exit 0) that way. The waits use
``asyncio.timeout`` instead, which keeps a cancellation from outside.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modeldepot.cli.pull import InProcessDownloads
from modeldepot.cli.remote import EventFeed
from modeldepot.events import EventBus, ModelAvailabilityChange


def change(model_id: str) -> ModelAvailabilityChange:
    return ModelAvailabilityChange(model_id=model_id, old_status="QUEUED", new_status="DOWNLOADING")


async def test_a_cancel_with_an_event_in_the_same_iteration_is_not_swallowed() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    services: Any = None  # waiting for news needs only the subscription
    downloads = InProcessDownloads(services=services, events=subscription, model_id="m")
    waiting = asyncio.create_task(downloads.wait_for_news(60))
    await asyncio.sleep(0)  # the task now waits for the next event

    bus.publish(change("m"))  # the event and Ctrl-C arrive together
    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_the_service_feed_wait_lets_a_cancel_through_too() -> None:
    feed = EventFeed(ws_url="ws://127.0.0.1:9/ws", model_id="m")
    waiting = asyncio.create_task(feed.wait(60))
    await asyncio.sleep(0)

    feed._news.set()  # an event woke the wait as Ctrl-C came
    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_news_still_ends_the_wait_and_so_does_the_timeout() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    services: Any = None
    downloads = InProcessDownloads(services=services, events=subscription, model_id="m")
    waiting = asyncio.create_task(downloads.wait_for_news(60))
    await asyncio.sleep(0)
    bus.publish(change("other"))
    bus.publish(change("m"))

    await asyncio.wait_for(waiting, 10)
    await downloads.wait_for_news(0.01)  # nothing comes: returns after the timeout
