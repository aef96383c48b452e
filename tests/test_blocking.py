"""``finish``: a short unit of async work is never cut off by its caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from modeldepot.blocking import finish


async def test_a_cancelled_caller_waits_for_the_work_then_is_cancelled() -> None:
    steps: list[str] = []
    started = asyncio.Event()

    async def work() -> str:
        started.set()
        await asyncio.sleep(0.1)  # stands for a database call in flight
        steps.append("work done")
        return "result"

    async def caller() -> str:
        return await finish(work())

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["work done"]


async def test_finish_returns_the_result_and_raises_the_error() -> None:
    async def ok() -> int:
        return 7

    async def broken() -> int:
        raise ValueError("boom")

    assert await finish(ok()) == 7
    with pytest.raises(ValueError, match="boom"):
        await finish(broken())
