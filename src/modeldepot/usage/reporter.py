"""Reporting usage from a generation app, at no cost to the app (the client of
``POST /api/v1/models/usage``)::

    reporter = UsageReporter("http://127.0.0.1:8000", api_key=None, client="wan-ui-1")
    with reporter.generation("wan2.2-t2v-a14b", resolution="1280x720", steps=30) as gen:
        video = pipe(...)
        gen.peak_vram_gb = 21.5    # optional
    # exit without exception -> generation_completed with the measured duration;
    # exception -> generation_failed with the duration, and the exception propagates.
    reporter.loaded("model-id"); reporter.unloaded("model-id")
    reporter.flush(timeout=5) ; reporter.close()  (also a context manager itself)

An asyncio app uses ``AsyncUsageReporter`` the same way (``async with
reporter.generation(...)``, ``await reporter.flush()``, ``async with reporter``).

How it stays cheap and safe:

- Reporting only appends to a bounded in-memory buffer (default 10,000 events; when full
  the oldest go, counted in ``dropped``, with one warning). A ``with`` block never waits
  for the network and never raises because the service is down.
- One daemon thread sends whatever is buffered, up to 1,000 events a POST (what arrived
  during a POST goes together in the next one).
- A transient failure (connection error, timeout, 408, 429, 5xx) is retried with the
  same ``event_id``\\s (the service ignores an id it has stored, so a batch that arrived
  but whose answer was lost is not counted twice), after capped exponential backoff or
  the service's ``Retry-After``. A refusal (another 4xx) is never retried: the events the
  service names (422 fields ``body.events.N...``, 404 ``MODEL_NOT_FOUND``'s model) are
  dropped with a warning naming the code, counted in ``refused``, and the rest of the
  batch is sent again; an answer that names none drops the whole batch.
- ``flush()`` waits (on a condition, not a sleep loop) until what was queued before it
  is settled; ``close()`` flushes, bounded, then stops the thread. Close the reporter
  before the app exits: the thread is a daemon, and what it still holds then is lost.

A generation reports ``generation_started`` on entering its block too (no use counted:
the service counts ended generations), so the service sees a long one in progress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, SupportsFloat, SupportsIndex, TypedDict, Unpack

import httpx

from modeldepot.upstream import parse_retry_after
from modeldepot.usage.schemas import EVENT_ID_PATTERN, MAX_EVENTS_PER_BATCH, UsageEventType

logger = logging.getLogger(__name__)

USAGE_PATH = "api/v1/models/usage"
DEFAULT_MAX_BUFFERED = 10_000
MAX_RETRY_AFTER_S = 300.0
_EVENT_FIELD_RE = re.compile(r"^(?:body\.)?events\.(\d+)(?:\.|$)")


class GenerationSettings(TypedDict, total=False):
    """What a generation was asked for (the ``parameters`` of its events)."""

    resolution: str
    steps: int
    frames: int
    guidance_scale: float


@dataclass(frozen=True)
class Backoff:
    """The wait before retrying a batch: ``first`` seconds, doubling per attempt up to
    ``cap``, drawn from the upper half of that (equal jitter: apps that saw the same outage
    do not all come back at once)."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (0-based)."""
        ceiling = min(self.cap, self.first * 2.0 ** min(attempt, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class _Entry:
    """One queued event: its place in the queue, its model (to blame it on a 404) and its
    JSON, encoded once when reported."""

    seq: int
    model_id: str
    body: bytes


# --- the buffer: what waits to be sent, and who waits for it ------------------------------


@dataclass
class _Flush:
    through: int  # the last event queued when flush() was called
    lost: bool = False


class _Buffer:
    """Events queued and in flight, in queue order, under one condition variable.

    Sequence numbers let ``flush`` wait for exactly the events queued before it: they are
    settled once none of them is queued or in flight any more. Every event ends settled
    exactly once: delivered, refused, or dropped (overflow, close); each loss is reported
    to one flush.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queued: deque[_Entry] = deque()
        self._in_flight: list[_Entry] = []
        self._seq = 0
        self._flushes: list[_Flush] = []
        self._closed = False
        self._overflowing = False
        self._unreported_loss = False
        self._changed = threading.Condition()
        self.delivered = 0
        self.refused = 0
        self.dropped = 0

    def put(self, model_id: str, body: bytes) -> None:
        with self._changed:
            self._seq += 1
            if self._closed:
                self.dropped += 1
                return
            self._queued.append(_Entry(self._seq, model_id, body))
            overflow = len(self._queued) > self._capacity
            if overflow:
                self._lose([self._queued.popleft()])
                self.dropped += 1
            warn = overflow and not self._overflowing  # once per time the buffer fills
            self._overflowing = self._overflowing or overflow
            self._changed.notify_all()
        if warn:
            logger.warning(
                "Usage reporter: %d events buffered (the service is slow or down): dropping "
                "the oldest (count in `dropped`)",
                self._capacity,
            )

    def take(self, limit: int) -> list[_Entry] | None:
        """Wait for queued events and move up to ``limit`` of the oldest in flight; None
        once closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._queued or self._closed)
            if self._closed:
                return None
            count = min(limit, len(self._queued))
            self._in_flight = [self._queued.popleft() for _ in range(count)]
            return list(self._in_flight)

    def settle(self, entries: Iterable[_Entry], *, delivered: bool) -> None:
        """Entries in flight that were delivered, or refused (never to be sent)."""
        with self._changed:
            done = {entry.seq for entry in entries}
            settled = [entry for entry in self._in_flight if entry.seq in done]
            self._in_flight = [entry for entry in self._in_flight if entry.seq not in done]
            if delivered:
                self.delivered += len(settled)
                self._overflowing = False  # the service takes events again
            else:
                self.refused += len(settled)
                self._lose(settled)
            self._changed.notify_all()

    def refuse_now(self) -> None:
        """An event that could not even be encoded: refused without entering the queue."""
        with self._changed:
            self.refused += 1

    def wait_settled(self, timeout: float) -> bool:
        """Whether everything queued so far was settled within ``timeout`` seconds, with no
        loss since the previous wait."""
        with self._changed:
            waiter = _Flush(through=self._seq, lost=self._unreported_loss)
            self._unreported_loss = False
            self._flushes.append(waiter)
            try:
                settled = self._changed.wait_for(
                    lambda: self._oldest_pending() > waiter.through, timeout
                )
            finally:
                self._flushes.remove(waiter)
            return settled and not waiter.lost

    def close(self) -> None:
        """Stop handing out work; events reported from now on are dropped."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def abandon(self) -> int:
        """Drop what is still queued or in flight (the sender has stopped); their count."""
        with self._changed:
            left = [*self._in_flight, *self._queued]
            self._in_flight, self._queued = [], deque()
            self.dropped += len(left)
            self._lose(left)
            self._changed.notify_all()
            return len(left)

    def _oldest_pending(self) -> int:
        if self._in_flight:
            return self._in_flight[0].seq
        if self._queued:
            return self._queued[0].seq
        return self._seq + 1

    def _lose(self, entries: Collection[_Entry]) -> None:
        """Tell one flush about each loss: the oldest waiting one it concerns, else the
        next flush to start."""
        for entry in entries:
            waiter = next((w for w in self._flushes if entry.seq <= w.through), None)
            if waiter is None:
                self._unreported_loss = True
            else:
                waiter.lost = True


# --- what an answer means ------------------------------------------------------------------


@dataclass(frozen=True)
class _Sent:
    pass


@dataclass(frozen=True)
class _Retry:
    reason: str
    after: float | None  # the service's Retry-After, seconds


@dataclass(frozen=True)
class _Refused:
    code: str
    message: str
    blamed: frozenset[int]  # the refused events' indices in the batch; empty: all of them


_Decision = _Sent | _Retry | _Refused


def _decide(response: httpx.Response, batch: list[_Entry]) -> _Decision:
    """Delivered, worth another try, or refused (which events, if the answer says)."""
    status = response.status_code
    if 200 <= status < 300:
        return _Sent()
    error = _error_of(response)
    code = str(error.get("code") or f"HTTP_{status}")
    if status in (408, 429) or status >= 500:
        after = parse_retry_after(response.headers.get("retry-after"))
        return _Retry(f"{status} {code}", None if after is None else min(after, MAX_RETRY_AFTER_S))
    details = error.get("details")
    blamed = _blamed(code, details if isinstance(details, dict) else {}, batch)
    return _Refused(code, str(error.get("message") or ""), blamed)


def _error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` of the service's envelope; empty for any other body (a proxy's page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _blamed(code: str, details: dict[str, Any], batch: list[_Entry]) -> frozenset[int]:
    """The events a refusal names: every 422 field under ``events.N``, or the events of a
    404's unknown model. Empty when the answer does not single out events."""
    if code == "MODEL_NOT_FOUND":
        model_id = details.get("model_id")
        return frozenset(i for i, entry in enumerate(batch) if entry.model_id == model_id)
    errors = details.get("errors")
    if not isinstance(errors, list) or not errors:
        return frozenset()
    indices: set[int] = set()
    for error in errors:
        field = error.get("field") if isinstance(error, dict) else None
        match = _EVENT_FIELD_RE.match(field) if isinstance(field, str) else None
        if match is None or int(match[1]) >= len(batch):
            return frozenset()  # the batch as a whole is wrong
        indices.add(int(match[1]))
    return frozenset(indices)


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, allow_nan=False, default=_plain_number).encode()


def _plain_number(value: object) -> object:
    """numpy or torch scalars (what a pipeline's settings often are) as JSON numbers."""
    if isinstance(value, SupportsIndex):
        return operator.index(value)
    if isinstance(value, SupportsFloat):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# --- the reporter --------------------------------------------------------------------------


class UsageReporter:
    """Reports generations and model loads to a modeldepot service; usable from any thread.

    Raises (only here, at construction): ValueError for a ``base_url`` that is not
    http(s), a ``client`` name the service would refuse, or ``max_buffered`` below 1.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        client: str = "default",
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if not re.fullmatch(EVENT_ID_PATTERN, client):
            raise ValueError(f"client must match {EVENT_ID_PATTERN}, not {client!r}")
        if max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._client = client
        self._backoff = backoff or Backoff()
        self._buffer = _Buffer(max_buffered)
        self._stop = threading.Event()
        self._sender = threading.Thread(
            target=self._send_forever, name=f"usage-reporter-{client}", daemon=True
        )
        self._sender.start()

    # What the app reports: each call only queues an event.

    def generation(self, model_id: str, **parameters: Unpack[GenerationSettings]) -> Generation:
        """A context manager timing one generation (``with`` or ``async with``)."""
        return Generation(self, model_id, dict(parameters))

    def loaded(self, model_id: str) -> None:
        """The app loaded ``model_id`` (the model counts as in use until unloaded)."""
        self._report(model_id, UsageEventType.model_loaded)

    def unloaded(self, model_id: str) -> None:
        self._report(model_id, UsageEventType.model_unloaded)

    def _report(self, model_id: str, kind: UsageEventType, **fields: Any) -> None:
        event = {
            "event_id": uuid.uuid4().hex,
            "model_id": model_id,
            "type": kind.value,
            "at": datetime.now(UTC).isoformat(),
            "client": self._client,
            **{name: value for name, value in fields.items() if value is not None},
        }
        try:
            body = _encode(event)
        except (TypeError, ValueError) as exc:
            logger.warning("Usage event for %s not reported: %s", model_id, exc)
            self._buffer.refuse_now()
            return
        self._buffer.put(model_id, body)

    # Counts, since the reporter was made.

    @property
    def delivered(self) -> int:
        """Events the service has stored (or had already: a resend)."""
        return self._buffer.delivered

    @property
    def refused(self) -> int:
        """Events the service refused (logged with its error code) or that were not JSON."""
        return self._buffer.refused

    @property
    def dropped(self) -> int:
        """Events never sent: pushed out of a full buffer, or still unsent at ``close``."""
        return self._buffer.dropped

    # Waiting and stopping.

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything reported before this call is settled. True: all of it was
        delivered. False: the wait took more than ``timeout`` seconds, or events were
        refused or dropped since the previous flush (each loss makes one flush False)."""
        return self._buffer.wait_settled(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (for at most ``timeout`` seconds in all), then stop the sender; what is
        still unsent is dropped, with a warning. Returns what ``flush`` did."""
        deadline = time.monotonic() + timeout
        flushed = self._buffer.wait_settled(timeout)
        self._stop.set()
        self._buffer.close()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        if left := self._buffer.abandon():
            logger.warning("Usage reporter closed with %d events unsent: dropped", left)
        return flushed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The sender thread.

    def _send_forever(self) -> None:
        try:
            while (batch := self._buffer.take(MAX_EVENTS_PER_BATCH)) is not None:
                try:
                    self._deliver(batch)
                except Exception:  # a bug here must neither stop reporting nor hang flush()
                    logger.exception("Usage reporter: %d events could not be sent", len(batch))
                    self._buffer.settle(batch, delivered=False)
        finally:
            self._http.close()

    def _deliver(self, batch: list[_Entry]) -> None:
        """Send ``batch`` until it is delivered or refused, or the reporter closes."""
        attempt = 0
        while batch:
            decision = self._post(batch)
            if isinstance(decision, _Sent):
                self._buffer.settle(batch, delivered=True)
                if attempt:
                    logger.info("Usage service reachable again: reports delivered")
                return
            if isinstance(decision, _Refused):
                batch = self._refuse(decision, batch)
                continue
            if attempt == 0:
                logger.warning("Usage service unavailable (%s): will retry", decision.reason)
            delay = self._backoff.delay(attempt) if decision.after is None else decision.after
            attempt += 1
            if self._stop.wait(delay):
                return  # closing: close() drops what is left

    def _post(self, batch: list[_Entry]) -> _Decision:
        body = b'{"events":[' + b",".join(entry.body for entry in batch) + b"]}"
        try:
            response = self._http.post(
                USAGE_PATH, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.RequestError as exc:  # connection, timeout, a garbled answer
            return _Retry(f"{type(exc).__name__}: {exc}", None)
        return _decide(response, batch)

    def _refuse(self, refusal: _Refused, batch: list[_Entry]) -> list[_Entry]:
        """Drop the refused events with a warning; the rest of the batch, to send again."""
        blamed = refusal.blamed or frozenset(range(len(batch)))
        refused = [entry for i, entry in enumerate(batch) if i in blamed]
        logger.warning(
            "Usage service refused %d of %d events (%s: %s): dropped",
            len(refused),
            len(batch),
            refusal.code,
            refusal.message,
        )
        self._buffer.settle(refused, delivered=False)
        return [entry for i, entry in enumerate(batch) if i not in blamed]


class Generation:
    """One generation, timed with ``time.monotonic`` from entering the block to leaving it.

    Entering reports ``generation_started``; leaving reports ``generation_completed``, or
    ``generation_failed`` when an exception (any, Ctrl-C included) ends the block, which
    then propagates unchanged. Set ``peak_vram_gb`` inside the block to report it.
    """

    def __init__(self, reporter: UsageReporter, model_id: str, parameters: dict[str, Any]) -> None:
        self._reporter = reporter
        self.model_id = model_id
        self.parameters = parameters
        self.peak_vram_gb: float | None = None
        self._started = 0.0

    def __enter__(self) -> Self:
        self._started = time.monotonic()
        self._reporter._report(
            self.model_id, UsageEventType.generation_started, parameters=self.parameters or None
        )
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._reporter._report(
            self.model_id,
            UsageEventType.generation_completed
            if exc_type is None
            else UsageEventType.generation_failed,
            duration_seconds=time.monotonic() - self._started,
            parameters=self.parameters or None,
            peak_vram_gb=self.peak_vram_gb,
        )

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.__exit__(exc_type)


class ReporterOptions(TypedDict, total=False):
    """``UsageReporter``'s keyword arguments (for ``AsyncUsageReporter``)."""

    api_key: str | None
    client: str
    max_buffered: int
    timeout: float
    backoff: Backoff | None
    transport: httpx.BaseTransport | None


class AsyncUsageReporter:
    """``UsageReporter`` for asyncio apps: the same buffer and sender thread, so reporting
    never blocks the loop; ``flush`` and ``close`` wait in a worker thread. Its counts are
    ``.reporter``'s."""

    def __init__(self, base_url: str, **options: Unpack[ReporterOptions]) -> None:
        self.reporter = UsageReporter(base_url, **options)

    def generation(self, model_id: str, **parameters: Unpack[GenerationSettings]) -> Generation:
        """A generation to time with ``async with`` (see ``Generation``)."""
        return self.reporter.generation(model_id, **parameters)

    def loaded(self, model_id: str) -> None:
        self.reporter.loaded(model_id)

    def unloaded(self, model_id: str) -> None:
        self.reporter.unloaded(model_id)

    # The waits happen in another thread, which asyncio.timeout() could not interrupt:
    # hence a timeout argument, as in UsageReporter.

    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """``UsageReporter.flush`` without blocking the loop."""
        return await asyncio.to_thread(self.reporter.flush, timeout)

    async def close(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """``UsageReporter.close`` without blocking the loop."""
        return await asyncio.to_thread(self.reporter.close, timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
