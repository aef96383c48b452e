"""``/ws``: live events (the seed's message types) for every connected client.

After connecting, a client may narrow what it receives by sending
``{"action": "subscribe", "model_ids": [...], "types": [...]}`` (either list may be
omitted or null for "all"); ``{"action": "unsubscribe"}`` goes back to everything. Each
client reads from its own bounded buffer on the event bus: a slow client loses old
progress messages, never state changes, and never slows anyone else.

Commands are read one at a time and every one is answered, ``subscribed`` or
``{"type": "error", "message": ...}`` naming what was wrong; the connection stays open
(issue 10: nothing a client sends may raise). Refused with an error message:

- a binary frame (commands are JSON text);
- a message over ``MAX_COMMAND_BYTES`` (16 KiB: a subscription to a few hundred catalogue
  ids fits; uvicorn itself closes the connection with 1009 beyond 64 KiB, see
  ``modeldepot.api.server``);
- JSON nested deeper than ``MAX_JSON_DEPTH``, found by scanning the text *before*
  ``json.loads`` (whose recursion a 10,000-deep array would exhaust);
- a ``model_ids`` entry that is not a valid model id (the rule of path ids,
  ``modeldepot.ids``), more than ``MAX_MODEL_IDS`` of them, or a ``types`` entry that is
  not one of ``EVENT_TYPES``.

A client that sends faster than it is answered queues nothing here: uvicorn hands over
one message and stops reading the socket until this route asks for the next.

An API key is checked at the handshake (``modeldepot.api.access``) and looked up again
every ``KEY_RECHECK_SECONDS`` while the connection lasts: once it is revoked the server
closes with 1008 "API key revoked".

Subprotocols: browsers cannot set ``Authorization`` on a WebSocket, so the auth
middleware also takes the API key offered as the subprotocol ``modeldepot.bearer.<key>``.
Browser clients offer ``["modeldepot", "modeldepot.bearer.<key>"]``; the server selects
``modeldepot`` when it was offered (Chrome fails a handshake where it offered subprotocols
and none was selected) and never the one carrying the key, which must not be echoed in the
response. A client that offers none is accepted without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from modeldepot.api.access import PRINCIPAL_SCOPE_KEY
from modeldepot.errors import InvalidInput
from modeldepot.events import WIRE_EVENTS, Event, Subscription
from modeldepot.ids import ModelId
from modeldepot.services import Services

router = APIRouter(tags=["events"])

SUBPROTOCOL = "modeldepot"
KEY_RECHECK_SECONDS = 5.0
"""How often an open connection's API key is looked up again: a revoked key's stream is
closed (1008 "API key revoked") within this."""
MAX_COMMAND_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8  # a valid command has 2
MAX_MODEL_IDS = 1000
EVENT_TYPES: tuple[str, ...] = tuple(str(cls.model_fields["type"].default) for cls in WIRE_EVENTS)
USAGE = 'expected {"action": "subscribe"|"unsubscribe", "model_ids": [...], "types": [...]}'


def _known_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type; known: {', '.join(EVENT_TYPES)}")
    return value


EventType = Annotated[str, AfterValidator(_known_event_type)]


class SubscribeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["subscribe", "unsubscribe"]
    model_ids: Annotated[list[ModelId], Field(max_length=MAX_MODEL_IDS)] | None = None
    types: list[EventType] | None = None


def parse_command(text: str) -> SubscribeMessage:
    """Read one client command, refusing what is too big, too deep or not a command.

    Raises:
        InvalidInput: the message says what was wrong (never a RecursionError).
    """
    size = len(text.encode())
    if size > MAX_COMMAND_BYTES:
        raise InvalidInput(f"message of {size} bytes; at most {MAX_COMMAND_BYTES} accepted")
    if _nested_deeper_than(text, MAX_JSON_DEPTH):
        raise InvalidInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; {USAGE}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # depth is checked: RecursionError is a guard
        raise InvalidInput(f"not JSON; {USAGE}") from exc
    try:
        return SubscribeMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{_describe(exc)}; {USAGE}") from exc


_JSON_SIGNIFICANT = re.compile(r'["\\\[\]{}]')


def _nested_deeper_than(text: str, limit: int) -> bool:
    """Do JSON arrays and objects in ``text`` nest deeper than ``limit``? A linear scan of
    the characters that matter (brackets outside strings), without parsing."""
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SIGNIFICANT.finditer(text):
        at, char = match.start(), match.group()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _describe(exc: ValidationError, *, at_most: int = 3) -> str:
    """Each problem as ``field: what is wrong (got value)``, for the client."""
    problems = []
    for error in exc.errors()[:at_most]:
        field = ".".join(str(part) for part in error["loc"]) or "message"
        what = str(error["msg"]).removeprefix("Value error, ")
        got = repr(error["input"])
        got = got if len(got) <= 80 else got[:77] + "..."
        problems.append(f"{field}: {what} (got {got})")
    more = exc.error_count() - at_most
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


class _Filter:
    def __init__(self) -> None:
        self.model_ids: set[str] | None = None
        self.types: set[str] | None = None

    def accepts(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        model_id = getattr(event, "model_id", None)
        return self.model_ids is None or model_id in self.model_ids

    def apply(self, message: SubscribeMessage) -> None:
        if message.action == "unsubscribe":
            self.model_ids = self.types = None
            return
        self.model_ids = set(message.model_ids) if message.model_ids is not None else None
        self.types = set(message.types) if message.types is not None else None


def _wire(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"final"})


@router.websocket("/ws")
async def events(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    subscription = services.bus.subscribe()
    selection = _Filter()
    send_lock = asyncio.Lock()  # the reader's replies and the pump never interleave sends
    reader = asyncio.create_task(_read_commands(websocket, selection, send_lock))
    principal = websocket.scope.get(PRINCIPAL_SCOPE_KEY)
    key_id = getattr(principal, "key_id", None)
    revoked = asyncio.create_task(_until_revoked(services, key_id)) if key_id else None
    try:
        await _pump(websocket, subscription, selection, reader, revoked, send_lock)
    finally:
        subscription.close()
        for task in (reader, revoked):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task


async def _until_revoked(services: Services, key_id: str) -> None:
    """Returns once the connection's API key is gone (revoked here or by ``modeldepot
    keys revoke`` in another process, hence a look every ``KEY_RECHECK_SECONDS``)."""
    while True:
        # A poll, not an event: the revocation may come from another process.
        await asyncio.sleep(KEY_RECHECK_SECONDS)
        if not await services.keys.is_live(key_id):
            return


async def _pump(
    websocket: WebSocket,
    subscription: Subscription,
    selection: _Filter,
    reader: asyncio.Task[None],
    revoked: asyncio.Task[None] | None,
    send_lock: asyncio.Lock,
) -> None:
    enders = {reader} if revoked is None else {reader, revoked}
    while not reader.done():
        getter = asyncio.create_task(subscription.get())
        done, _ = await asyncio.wait({getter, *enders}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            if revoked is not None and revoked in done:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    async with send_lock:
                        await websocket.close(code=1008, reason="API key revoked")
            return
        event = getter.result()
        if event is None or subscription.closed:  # the bus gave up on this slow client
            await websocket.close(code=1013, reason="too slow")
            return
        if selection.accepts(event):
            try:
                async with send_lock:
                    await websocket.send_json(_wire(event))
            except (WebSocketDisconnect, RuntimeError):
                return


async def _read_commands(websocket: WebSocket, selection: _Filter, send_lock: asyncio.Lock) -> None:
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        reply = _answer(message.get("text"), selection)
        try:
            async with send_lock:
                await websocket.send_json(reply)
        except (WebSocketDisconnect, RuntimeError):
            return


def _answer(text: str | None, selection: _Filter) -> dict[str, Any]:
    """Apply one received message (``None``: a binary one) and say what it did."""
    if text is None:
        return {"type": "error", "message": f"binary frames are not accepted; {USAGE}"}
    try:
        selection.apply(parse_command(text))
    except InvalidInput as exc:
        return {"type": "error", "message": exc.message}
    return {
        "type": "subscribed",
        "model_ids": None if selection.model_ids is None else sorted(selection.model_ids),
        "types": None if selection.types is None else sorted(selection.types),
    }
