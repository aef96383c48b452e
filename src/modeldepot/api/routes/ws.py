"""``/ws``: live events (the seed's message types) for every connected client.

After connecting, a client may narrow what it receives by sending
``{"action": "subscribe", "model_ids": [...], "types": [...]}`` (either list may be
omitted or null for "all"); ``{"action": "unsubscribe"}`` goes back to everything. Each
client reads from its own bounded buffer on the event bus: a slow client loses old
progress messages, never state changes, and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, ValidationError

from modeldepot.events import Event, Subscription
from modeldepot.services import Services

router = APIRouter(tags=["events"])


class SubscribeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["subscribe", "unsubscribe"]
    model_ids: list[str] | None = None
    types: list[str] | None = None


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
    await websocket.accept()
    subscription = services.bus.subscribe()
    selection = _Filter()
    send_lock = asyncio.Lock()  # the reader's replies and the pump never interleave sends
    reader = asyncio.create_task(_read_commands(websocket, selection, send_lock))
    try:
        await _pump(websocket, subscription, selection, reader, send_lock)
    finally:
        subscription.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader


async def _pump(
    websocket: WebSocket,
    subscription: Subscription,
    selection: _Filter,
    reader: asyncio.Task[None],
    send_lock: asyncio.Lock,
) -> None:
    while not reader.done():
        getter = asyncio.create_task(subscription.get())
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
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
            raw = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        try:
            selection.apply(SubscribeMessage.model_validate(json.loads(raw)))
            reply: dict[str, Any] = {
                "type": "subscribed",
                "model_ids": sorted(selection.model_ids) if selection.model_ids else None,
                "types": sorted(selection.types) if selection.types else None,
            }
        except (ValueError, ValidationError):
            reply = {
                "type": "error",
                "message": 'expected {"action": "subscribe"|"unsubscribe", "model_ids": [...], '
                '"types": [...]}',
            }
        try:
            async with send_lock:
                await websocket.send_json(reply)
        except (WebSocketDisconnect, RuntimeError):
            return
