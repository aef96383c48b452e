"""The service's live events (``/ws``) as an iterator that outlives the connection.

``EventStream`` (blocking) and ``AsyncEventStream`` (asyncio) speak the same protocol,
kept here once without IO (``Subscription``): after connecting, send ``{"action":
"subscribe", "model_ids": ..., "types": ...}`` and wait for the service's ``subscribed``
reply, from which point the service sends only what was asked for. Every message is
parsed into the service's own event classes (``modeldepot.events``) by its ``type``; a
type this client does not know yet arrives as the base ``Event``.

When the connection drops (the service restarts, a network blip, or the service closed a
client that fell far behind, 1013) the stream connects again after a capped, jittered
backoff and subscribes again with the same filter, for as long as it takes. Events
published while it was away are lost (the service keeps no history): after every
(re)subscription a waiter checks the state it waits for (``wait_until_available`` does).
It gives up only when reconnecting cannot help: the very first connection fails
(``ServiceUnreachable``: wrong URL or no service), the handshake is refused (401
``Unauthorized``, 403 ``Forbidden``), the API key is revoked while connected (close code
1008, ``Unauthorized``), or the service refuses the filter (``InvalidInput``: an unknown
event type, a malformed model id).

Events that arrive between connecting and the ``subscribed`` reply were sent under the
service's default (everything), so they are filtered here; after it the service filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any, Self

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as connect_sync

from modeldepot.client.errors import UnexpectedResponse, error_from_answer
from modeldepot.errors import DepotError, InvalidInput, ServiceUnreachable, Unauthorized
from modeldepot.events import WIRE_EVENTS, Event
from modeldepot.usage.reporter import Backoff

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0
"""At most this long for a handshake and the ``subscribed`` reply."""
CLOSE_TIMEOUT_S = 1.0
REVOKED_CLOSE_CODE = 1008
DEFAULT_BACKOFF = Backoff(first=0.2, cap=5.0)

_TRANSIENT = (OSError, InvalidHandshake, ConnectionClosed)
"""What connecting again may cure (refused, reset, timed out, a 502 from a proxy)."""


def event_types() -> dict[str, type[Event]]:
    """Each event class of the service by the ``type`` it is sent with."""
    return {str(cls.model_fields["type"].default): cls for cls in WIRE_EVENTS}


class Marker(Enum):
    """What a stream reports besides events, to a waiter that needs to know."""

    SUBSCRIBED = "subscribed"
    """(Re)subscribed: anything may have happened while not connected; look now."""
    CLOSED = "closed"


class Subscription:
    """The filter one stream asked for, and the ``/ws`` protocol around it (no IO)."""

    def __init__(self, model_ids: Iterable[str] | None, types: Iterable[str] | None) -> None:
        self.model_ids = None if model_ids is None else list(model_ids)
        self.types = None if types is None else list(types)
        self.acknowledged = False
        self._classes = event_types()

    def start(self) -> str:
        """The command to send on a new connection (which is not subscribed yet)."""
        self.acknowledged = False
        command = {"action": "subscribe", "model_ids": self.model_ids, "types": self.types}
        return json.dumps(command)

    def receive(self, data: str | bytes) -> Event | None:
        """The event in a message, or None for one that is not for the caller.

        Raises: InvalidInput (the service refused the filter); UnexpectedResponse (a
        message that is not the protocol's).
        """
        message = self._decode(data)
        kind = message.get("type")
        if kind == "subscribed":
            self.acknowledged = True
            return None
        if kind == "error":
            refusal = message.get("message")
            raise InvalidInput(f"The service refused the event subscription: {refusal}")
        try:
            event = self._classes.get(str(kind), Event).model_validate(message)
        except ValidationError as exc:
            raise UnexpectedResponse(f"Not an event the service sends: {exc}") from exc
        return event if self.acknowledged or self._wants(event) else None

    def _wants(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.model_ids is None or getattr(event, "model_id", None) in self.model_ids

    @staticmethod
    def _decode(data: str | bytes) -> dict[str, Any]:
        try:
            message = json.loads(data)
        except ValueError as exc:
            raise UnexpectedResponse(f"The event stream sent something not JSON: {exc}") from exc
        if not isinstance(message, dict):
            raise UnexpectedResponse("The event stream sent JSON that is not an object")
        return message


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A handshake no retry can cure (401, 403) raises the service's error class."""
    try:
        yield
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise error_from_answer(status, bytes(exc.response.body or b"")) from exc
        raise


def _closed_for_good(exc: ConnectionClosed) -> DepotError | None:
    if exc.rcvd is not None and exc.rcvd.code == REVOKED_CLOSE_CODE:
        return Unauthorized(
            f"The service closed the event stream: {exc.rcvd.reason or 'API key revoked'}"
        )
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _StreamBase:
    """What both streams share: the filter, events read ahead, and reconnection state."""

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        subscription: Subscription,
        backoff: Backoff = DEFAULT_BACKOFF,
        open_timeout: float = OPEN_TIMEOUT_S,
    ) -> None:
        self.url = url
        self._headers = dict(headers)
        self._subscription = subscription
        self._backoff = backoff
        self._open_timeout = open_timeout
        self._pending: deque[Event] = deque()
        self._connected_before = False
        self._announce = False
        self._closed = False
        self.subscriptions = 0
        """How many times the stream has (re)subscribed."""

    def _failed_to_connect(self, exc: BaseException, attempt: int) -> float:
        """The wait before connecting again, or raise when that cannot help."""
        if not self._connected_before:
            raise ServiceUnreachable(
                f"No modeldepot event stream at {self.url}: {_describe(exc)}"
            ) from exc
        if attempt == 0:
            logger.warning("Event stream %s unreachable (%s): retrying", self.url, _describe(exc))
        return self._backoff.delay(attempt)

    def _subscribed(self) -> None:
        if self._connected_before:
            logger.info("Event stream %s: reconnected and subscribed again", self.url)
        self._connected_before = True
        self._announce = True
        self.subscriptions += 1

    def _lost(self, exc: ConnectionClosed) -> None:
        """The connection dropped: raise if for good, else connect again on next read."""
        if (error := _closed_for_good(exc)) is not None:
            raise error from exc
        logger.warning("Event stream %s dropped (%s): reconnecting", self.url, _describe(exc))


class EventStream(_StreamBase):
    """Blocking iterator of the service's events; see the module docstring.

    Connects on ``with`` or at the first ``next``; ``close()`` (or leaving the ``with``)
    ends it, from any thread.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._ws: ClientConnection | None = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        return self.get()

    def get(self, timeout: float | None = None) -> Event:
        """The next event; within ``timeout`` seconds or TimeoutError.

        Raises: StopIteration once closed; see the module docstring for the others.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = self.receive(deadline)
            if item is Marker.CLOSED:
                raise StopIteration
            if isinstance(item, Event):
                return item

    def connect(self) -> None:
        """Connect and subscribe now (else the first ``get`` does).

        Raises: ServiceUnreachable, Unauthorized, Forbidden, InvalidInput.
        """
        if self._ws is None and not self._closed:
            self._connect(None)

    def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            self._ws.close()

    def receive(self, deadline: float | None = None) -> Event | Marker:
        """The next event, or a ``Marker``: SUBSCRIBED after each (re)subscription,
        CLOSED once closed. ``deadline``: a ``time.monotonic()`` time, TimeoutError
        after it."""
        while not self._closed:
            ws = self._ws or self._connect(deadline)
            if self._announce:
                self._announce = False
                return Marker.SUBSCRIBED
            if self._pending:
                return self._pending.popleft()
            try:
                data = ws.recv(timeout=_left(deadline))
            except ConnectionClosed as exc:
                self._ws = None
                if not self._closed:
                    self._lost(exc)
                continue
            if (event := self._subscription.receive(data)) is not None:
                return event
        return Marker.CLOSED

    def _connect(self, deadline: float | None) -> ClientConnection:
        attempt = 0
        while True:
            try:
                self._ws = self._open(deadline)
            except _TRANSIENT as exc:
                if _left(deadline) == 0:
                    raise TimeoutError("No event within the time-out") from exc
                delay = self._failed_to_connect(exc, attempt)
                attempt += 1
                time.sleep(_bounded(delay, deadline))
                continue
            if self._closed:  # by another thread meanwhile: reading it ends the stream
                self._ws.close()
            self._subscribed()
            return self._ws

    def _open(self, deadline: float | None) -> ClientConnection:
        limit = _bounded(self._open_timeout, deadline)
        ends = time.monotonic() + limit
        with contextlib.ExitStack() as closing, _refusals():
            ws = closing.enter_context(
                connect_sync(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=limit,
                    close_timeout=CLOSE_TIMEOUT_S,
                )
            )
            ws.send(self._subscription.start())
            while not self._subscription.acknowledged:
                event = self._subscription.receive(ws.recv(timeout=_left(ends)))
                if event is not None:
                    self._pending.append(event)
            closing.pop_all()  # subscribed: it stays open until close() or a drop
        return ws


class AsyncEventStream(_StreamBase):
    """``EventStream`` for asyncio: ``async for``, ``async with``, ``await get()``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._ws: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    async def get(self, timeout: float | None = None) -> Event:  # noqa: ASYNC109
        """The next event; within ``timeout`` seconds or TimeoutError.

        Raises: StopAsyncIteration once closed; see the module docstring for the others.
        """
        async with asyncio.timeout(timeout):
            while True:
                item = await self.receive()
                if item is Marker.CLOSED:
                    raise StopAsyncIteration
                if isinstance(item, Event):
                    return item

    async def connect(self) -> None:
        """Connect and subscribe now (else the first ``get`` does).

        Raises: ServiceUnreachable, Unauthorized, Forbidden, InvalidInput.
        """
        if self._ws is None and not self._closed:
            await self._connect()

    async def aclose(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    async def receive(self) -> Event | Marker:
        """The next event, or a ``Marker``: SUBSCRIBED after each (re)subscription,
        CLOSED once closed (bound it with ``asyncio.timeout``)."""
        while not self._closed:
            ws = self._ws or await self._connect()
            if self._announce:
                self._announce = False
                return Marker.SUBSCRIBED
            if self._pending:
                return self._pending.popleft()
            try:
                data = await ws.recv()
            except ConnectionClosed as exc:
                self._ws = None
                if not self._closed:
                    self._lost(exc)
                continue
            if (event := self._subscription.receive(data)) is not None:
                return event
        return Marker.CLOSED

    async def _connect(self) -> AsyncConnection:
        attempt = 0
        while True:
            try:
                self._ws = await self._open()
            except _TRANSIENT as exc:
                delay = self._failed_to_connect(exc, attempt)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._closed:  # by another task meanwhile: reading it ends the stream
                await self._ws.close()
            self._subscribed()
            return self._ws

    async def _open(self) -> AsyncConnection:
        async with contextlib.AsyncExitStack() as closing, asyncio.timeout(self._open_timeout):
            with _refusals():
                ws = await closing.enter_async_context(
                    connect_async(
                        self.url, additional_headers=self._headers, close_timeout=CLOSE_TIMEOUT_S
                    )
                )
            await ws.send(self._subscription.start())
            while not self._subscription.acknowledged:
                event = self._subscription.receive(await ws.recv())
                if event is not None:
                    self._pending.append(event)
            closing.pop_all()  # subscribed: it stays open until aclose() or a drop
        return ws


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (never negative); None: no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _bounded(seconds: float, deadline: float | None) -> float:
    """``seconds``, or less if ``deadline`` comes first."""
    left = _left(deadline)
    return seconds if left is None else min(seconds, left)
