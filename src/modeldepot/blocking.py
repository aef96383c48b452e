"""Blocking work (disk IO, fsync, hashing) on worker threads, never abandoned half-done.

``asyncio.to_thread`` and anyio's ``run_sync`` return as soon as the awaiting task is
cancelled while the thread keeps running: a checkpoint or a rename could then land after
the caller has moved on (deleted the partial file, reported the job stopped). ``run``
waits for the thread to finish before letting the cancellation through. ``finish`` does the
same for a short async unit of work (a background loop's database round) so that stopping
the service never cuts it off inside a database call, which would leave a connection
neither returned nor closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run(
    executor: Executor, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``function`` on ``executor``; on cancellation, let it finish first.

    Long waits (a hasher following a download) and quick IO share the executor, so it
    must be large enough for both (the download service sizes its own).
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor, functools.partial(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await outlast(future)
        raise


async def run_abortable(
    executor: Executor,
    abort: Callable[[], None],
    function: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``run`` for a blocking read that can be cut short: on cancellation ``abort()`` is
    called first (it must make the worker return soon, e.g. by shutting its socket down),
    then the worker is waited out as ``run`` does."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor, functools.partial(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        abort()
        await outlast(future)  # what the worker uses is closed only after this
        raise


async def finish(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, let it finish first, then
    let the cancellation through. Only for work that ends by itself soon."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await outlast(task)
        raise


async def outlast(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, whatever it ends with, even if the caller is
    cancelled again meanwhile (a task group cancelling its children, then a shutdown):
    code after this may close what the worker thread is still using. The caller re-raises
    its own cancellation afterwards."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({future})
    if not future.cancelled():
        future.exception()  # retrieved: the caller's cancellation is what propagates
