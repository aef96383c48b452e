"""Single flight: concurrent callers asking for the same key share one running task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """``await flight.run(key, make)`` starts ``make()`` unless it is already running for
    ``key``; every caller gets its result. A caller's cancellation never cancels the shared
    work (others may still wait for it)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            task.set_name(f"{self._name}:{key}")
            self._running[key] = task
            task.add_done_callback(lambda _done: self._running.pop(key, None))
        return await asyncio.shield(task)
