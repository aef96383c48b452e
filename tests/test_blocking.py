"""``finish`` and ``run``: work is never cut off by its caller's cancellation, however many."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from modeldepot.blocking import finish, run, run_abortable


async def test_a_cancelled_caller_waits_for_the_work_then_is_cancelled() -> None:
    steps: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()  # the test decides when the "database call" returns

    async def work() -> str:
        started.set()
        await release.wait()
        steps.append("work done")
        return "result"

    async def caller() -> str:
        return await finish(work())

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)  # let the cancellation be delivered and handled
    assert not task.done()  # still waiting for the work
    assert steps == []
    release.set()
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


async def test_a_thread_is_outlasted_even_when_the_caller_is_cancelled_twice() -> None:
    """A task group cancelling its children and then a shutdown cancelling again must not
    let the caller go on (and close a connection) while its worker thread still runs."""
    release = threading.Event()
    entered = threading.Event()
    steps: list[str] = []

    def blocking() -> None:
        entered.set()
        release.wait(10)
        steps.append("thread done")

    async def caller() -> None:
        with ThreadPoolExecutor(max_workers=1) as executor:
            try:
                await run(executor, blocking)
            finally:
                steps.append("caller cleans up")

    task = asyncio.create_task(caller())
    await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # the second cancellation arrives while the first is being handled
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps == []  # still waiting for the thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["thread done", "caller cleans up"]


async def test_run_abortable_aborts_the_worker_then_waits_for_it() -> None:
    steps: list[str] = []
    started = threading.Event()
    stop = threading.Event()  # what abort() sets: a blocked read that returns at once

    def blocking_read() -> None:
        started.set()
        stop.wait(60)
        steps.append("worker returned")

    def abort() -> None:
        steps.append("aborted")
        stop.set()

    with ThreadPoolExecutor(1) as executor:
        task = asyncio.create_task(run_abortable(executor, abort, blocking_read))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert steps == ["aborted", "worker returned"]  # the thread ended before the cancel
