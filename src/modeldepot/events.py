"""Typed events and the in-process bus that carries them to subscribers (e.g. WebSockets).

Every event has a ``type`` (the seed's WebSocket message type) and a timestamp; concrete
events are built from domain objects by their ``build`` class methods. Services publish;
subscribers read from a bounded per-subscriber buffer, so a slow subscriber never slows a
publisher or another subscriber: when its buffer is full the oldest *droppable* event
(progress) is dropped; state changes are never dropped, and a subscriber that lets
``hard_limit`` of them pile up is closed as too slow.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from modeldepot.units import to_mb


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of all events: a message type and when it happened."""

    model_config = ConfigDict(frozen=True)

    type: str
    timestamp: datetime = Field(default_factory=utcnow)

    def is_droppable(self) -> bool:
        """May a slow subscriber lose this event when a newer one of its kind follows?"""
        return False


class ModelAvailabilityChange(Event):
    """A model's ``availability_status`` changed (seed message ``model_availability_change``)."""

    type: Literal["model_availability_change"] = "model_availability_change"
    model_id: str
    old_status: str | None
    new_status: str


class ModelHealthAlert(Event):
    """A health check found a problem (seed message ``model_health_alert``).

    ``alert_type``: ``corruption_detected`` (wrong size or hash), ``structure_invalid``
    (a malformed file whose bytes are otherwise right), ``files_missing`` (missing files or
    broken links). ``severity``: ``critical`` when the model cannot be used as it is,
    ``warning`` otherwise. ``recommended_action``: ``auto_repair`` (re-fetch the bad files),
    ``redownload`` (the whole model) or ``none`` (re-fetching cannot help).
    """

    type: Literal["model_health_alert"] = "model_health_alert"
    model_id: str
    alert_type: str
    severity: Literal["warning", "critical"]
    message: str
    recommended_action: str
    check_id: str | None = None


class FallbackSuggestion(Event):
    """An app asked for a model that is not available; the best stand-in (seed message
    ``fallback_suggestion``)."""

    type: Literal["fallback_suggestion"] = "fallback_suggestion"
    requested_model: str
    suggested_model: str
    compatibility_score: float
    user_action_required: bool
    timeout_seconds: int

    @property
    def model_id(self) -> str:
        """For subscriptions by model: the model asked for."""
        return self.requested_model


class QueueEntryChange(Event):
    """A wait-queue entry changed state: READY (claim it now), CLAIMED, CANCELLED,
    EXPIRED or FAILED (extension message ``queue_entry_change``)."""

    type: Literal["queue_entry_change"] = "queue_entry_change"
    queue_id: str
    model_id: str
    status: str
    reason: str | None


class DownloadLike(Protocol):
    """What a progress event reads of a download (``downloads.jobs.Job`` has it; events
    sit below every domain and import none of them)."""

    @property
    def id(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def status(self) -> StrEnum: ...
    @property
    def progress_percent(self) -> float: ...
    @property
    def speed_bps(self) -> float: ...
    @property
    def eta_seconds(self) -> int | None: ...
    @property
    def done_bytes(self) -> int: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def retry_count(self) -> int: ...
    @property
    def error_message(self) -> str | None: ...


class DownloadProgress(Event):
    """A download's progress (seed message ``model_download_progress``).

    Sent at most ``PROGRESS_HZ`` times a second per model while bytes flow, and always
    for a state change (``final``); only non-final ones may be dropped for slow clients.
    """

    type: Literal["model_download_progress"] = "model_download_progress"
    model_id: str
    progress_percent: float
    speed_mbps: float
    eta_seconds: int | None
    status: str
    download_id: str
    downloaded_mb: float
    total_mb: float
    retry_count: int
    error_message: str | None
    final: bool = False

    def is_droppable(self) -> bool:
        return not self.final

    @classmethod
    def build(cls, job: DownloadLike, *, final: bool = False) -> DownloadProgress:
        return cls(
            model_id=job.model_id,
            progress_percent=job.progress_percent,
            speed_mbps=to_mb(job.speed_bps),
            eta_seconds=job.eta_seconds,
            status=job.status.value,
            download_id=job.id,
            downloaded_mb=to_mb(job.done_bytes),
            total_mb=to_mb(job.total_bytes),
            retry_count=job.retry_count,
            error_message=job.error_message,
            final=final,
        )


PROGRESS_HZ = 4


WIRE_EVENTS: tuple[type[Event], ...] = (
    ModelAvailabilityChange,
    DownloadProgress,
    ModelHealthAlert,
    FallbackSuggestion,
    QueueEntryChange,
)
"""Every event the WebSocket sends, by its class: the one list the route and the SDK read
(a subclass defined elsewhere, a test's say, is never mistaken for one)."""


class Subscription:
    """One subscriber's bounded buffer; iterate it to receive events.

    Dropping the oldest droppable event is O(1): droppable events are also queued by
    sequence number and dropped ones are skipped (tombstones) when read.
    """

    def __init__(self, *, bus: EventBus, buffer: int, hard_limit: int) -> None:
        self._bus = bus
        self._events: collections.deque[tuple[int, Event]] = collections.deque()
        self._droppable: collections.deque[int] = collections.deque()
        self._dropped_seqs: set[int] = set()
        self._seq = 0
        self._live = 0
        self._buffer = buffer
        self._hard_limit = hard_limit
        self._wakeup = asyncio.Event()
        self.closed = False
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        self._seq += 1
        self._events.append((self._seq, event))
        if event.is_droppable():
            self._droppable.append(self._seq)
        self._live += 1
        overfull = self._live > self._buffer and not self._drop_oldest_droppable()
        if overfull and self._live > self._hard_limit:
            self.close()
        self._wakeup.set()

    def _drop_oldest_droppable(self) -> bool:
        while self._droppable:
            seq = self._droppable.popleft()
            if seq > self._read_upto:
                self._dropped_seqs.add(seq)
                self._live -= 1
                self.dropped += 1
                return True
        return False

    @property
    def _read_upto(self) -> int:
        return self._events[0][0] - 1 if self._events else self._seq

    @property
    def pending(self) -> int:
        """Events waiting to be read."""
        return self._live

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._bus.unsubscribe(self)

    async def get(self) -> Event | None:
        """The next event, or None once the subscription is closed and drained."""
        while True:
            while self._events:
                seq, event = self._events.popleft()
                if self._droppable and self._droppable[0] == seq:
                    self._droppable.popleft()
                if seq in self._dropped_seqs:
                    self._dropped_seqs.discard(seq)
                    continue
                self._live -= 1
                return event
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event


class EventBus:
    """Fan-out of events to every subscription; publishing never blocks."""

    def __init__(self, *, buffer: int = 256, hard_limit: int = 4096) -> None:
        self._subscriptions: set[Subscription] = set()
        self._buffer = buffer
        self._hard_limit = hard_limit

    def subscribe(self) -> Subscription:
        subscription = Subscription(bus=self, buffer=self._buffer, hard_limit=self._hard_limit)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, event: Event) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
