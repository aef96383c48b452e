"""The event bus: bounded per subscriber; progress may be dropped, state changes never."""

from __future__ import annotations

from typing import Literal

from modeldepot.events import Event, EventBus, ModelAvailabilityChange


class Progress(Event):
    type: Literal["progress"] = "progress"
    n: int

    def is_droppable(self) -> bool:
        return True


def change(n: int) -> ModelAvailabilityChange:
    return ModelAvailabilityChange(model_id=f"m{n}", old_status="MISSING", new_status="AVAILABLE")


async def test_slow_subscriber_loses_oldest_progress_not_changes() -> None:
    bus = EventBus(buffer=3, hard_limit=10)
    fast, slow = bus.subscribe(), bus.subscribe()
    bus.publish(change(0))
    for n in range(5):
        bus.publish(Progress(n=n))
    bus.publish(change(1))
    received = []
    while len(received) < 3:
        event = await slow.get()
        assert event is not None
        received.append(event)
    assert [type(e).__name__ for e in received] == [
        "ModelAvailabilityChange",
        "Progress",
        "ModelAvailabilityChange",
    ]
    assert isinstance(received[1], Progress)
    assert received[1].n == 4
    assert slow.dropped == 4
    assert fast.dropped == 4  # same rule for everyone; nobody blocks the publisher


async def test_subscriber_that_never_reads_is_closed_after_the_hard_limit() -> None:
    bus = EventBus(buffer=2, hard_limit=4)
    stuck = bus.subscribe()
    for n in range(5):
        bus.publish(change(n))
    assert stuck.closed
    assert bus.subscriber_count == 0
    drained = [await stuck.get() for _ in range(6)]
    assert drained[-1] is None
