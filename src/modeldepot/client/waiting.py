"""Waiting for a model to become available, event-driven (``wait_until_available``).

The waiter subscribes to the model's ``model_availability_change`` events first and
looks at the model's status once subscribed (and again after every resubscription: what
happened while the stream was away was not seen), so a change can never slip between
the look and the subscription; after that only an event announcing an available status
makes it look again. No polling: a model that never arrives costs one connection and
one status request until the timeout.
"""

from __future__ import annotations

from modeldepot.availability.schemas import AvailabilityStatus, ModelStatus
from modeldepot.client.errors import WaitTimeout
from modeldepot.client.stream import Marker
from modeldepot.events import Event, ModelAvailabilityChange

AVAILABILITY_EVENT = str(ModelAvailabilityChange.model_fields["type"].default)
USABLE = frozenset({AvailabilityStatus.AVAILABLE.value, AvailabilityStatus.UPDATE_AVAILABLE.value})
"""Statuses in which the model can be used (``UPDATE_AVAILABLE``: installed and complete,
the hub has a newer commit)."""


class AvailabilityWait:
    """One wait's decisions, without IO: when to look at the status, when it is over."""

    def __init__(self, model_id: str, timeout: float) -> None:
        self.model_id = model_id
        self.timeout = timeout
        self.last: ModelStatus | None = None

    def should_look(self, item: Event | Marker) -> bool:
        """Is the status worth a request after this stream item?"""
        if item is Marker.SUBSCRIBED:
            return True
        return isinstance(item, ModelAvailabilityChange) and item.new_status in USABLE

    def settled(self, status: ModelStatus) -> bool:
        self.last = status
        return status.is_available

    def timed_out(self) -> WaitTimeout:
        seen = "" if self.last is None else f" (last {self.last.availability_status.value})"
        return WaitTimeout(
            f"Model '{self.model_id}' did not become available within {self.timeout:g} s{seen}",
            details={"model_id": self.model_id, "timeout_seconds": self.timeout},
        )
