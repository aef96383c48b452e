"""``AsyncClient``: the whole API for asyncio, the same operations as ``Client``.

Each API method is an operation of ``modeldepot.client.operations`` bound here by
``_AsyncOperation`` (a coroutine method): nothing about a route is written twice.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, ParamSpec, Self, TypeVar, Unpack, overload

import httpx

from modeldepot.availability.schemas import ModelStatus
from modeldepot.client import operations as ops
from modeldepot.client.calls import (
    DEFAULT_TIMEOUT_S,
    Call,
    RetryPolicy,
    api_key_or_env,
    auth_headers,
    build_request,
    events_url,
    exchange_async,
    read,
    root_url,
)
from modeldepot.client.stream import DEFAULT_BACKOFF, AsyncEventStream, Subscription
from modeldepot.client.waiting import AVAILABILITY_EVENT, AvailabilityWait
from modeldepot.usage.reporter import AsyncUsageReporter, Backoff, Generation, GenerationSettings

P = ParamSpec("P")
T = TypeVar("T")


class _AsyncOperation(Generic[P, T]):
    """An operation of ``modeldepot.client.operations`` as an ``AsyncClient`` method."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[AsyncClient]) -> Self: ...
    @overload
    def __get__(
        self, client: AsyncClient, owner: type[AsyncClient]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(
        self, client: AsyncClient | None, owner: type[AsyncClient]
    ) -> Self | Callable[P, Coroutine[Any, Any, T]]:
        if client is None:
            return self
        build = self._build

        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client.send(build(*args, **kwargs))

        return method


class AsyncClient:
    """``Client`` for asyncio: the same arguments, methods and errors, awaited.

    ``async with AsyncClient() as client:``, or ``await client.aclose()``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        reconnect: Backoff = DEFAULT_BACKOFF,
        app_name: str = "default",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = root_url(base_url)
        self._api_key = api_key_or_env(api_key)
        self._retry = retry or RetryPolicy()
        self._reconnect = reconnect
        self._app_name = app_name
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=auth_headers(self._api_key),
            timeout=timeout,
            transport=transport,
        )
        self._reporter: AsyncUsageReporter | None = None

    async def send(self, call: Call[T]) -> T:
        """Send one ``Call`` (what every API method does)."""
        request = build_request(self._http, call)
        return read(call, await exchange_async(self._http, request, self._retry))

    # --- the API, one operation per route (modeldepot.client.operations) ----------------

    healthz = _AsyncOperation(ops.healthz)
    metrics = _AsyncOperation(ops.metrics)
    status = _AsyncOperation(ops.status)
    model_status = _AsyncOperation(ops.model_status)
    manage = _AsyncOperation(ops.manage)
    download = _AsyncOperation(ops.download)
    pause = _AsyncOperation(ops.pause)
    resume = _AsyncOperation(ops.resume)
    cancel = _AsyncOperation(ops.cancel)
    set_priority = _AsyncOperation(ops.set_priority)
    update_download = _AsyncOperation(ops.update_download)
    progress = _AsyncOperation(ops.progress)
    active_downloads = _AsyncOperation(ops.active_downloads)
    health = _AsyncOperation(ops.health)
    model_health = _AsyncOperation(ops.model_health)
    check = _AsyncOperation(ops.check)
    get_check = _AsyncOperation(ops.get_check)
    repair = _AsyncOperation(ops.repair)
    get_repair = _AsyncOperation(ops.get_repair)
    revisions = _AsyncOperation(ops.revisions)
    update_model = _AsyncOperation(ops.update_model)
    rollback = _AsyncOperation(ops.rollback)
    storage = _AsyncOperation(ops.storage)
    cleanup_recommendations = _AsyncOperation(ops.cleanup_recommendations)
    cleanup = _AsyncOperation(ops.cleanup)
    get_cleanup = _AsyncOperation(ops.get_cleanup)
    pins = _AsyncOperation(ops.pins)
    pin = _AsyncOperation(ops.pin)
    unpin = _AsyncOperation(ops.unpin)
    report_usage = _AsyncOperation(ops.report_usage)
    analytics = _AsyncOperation(ops.analytics)
    model_analytics = _AsyncOperation(ops.model_analytics)
    performance = _AsyncOperation(ops.performance)
    suggest = _AsyncOperation(ops.suggest)
    enqueue = _AsyncOperation(ops.enqueue)
    queue = _AsyncOperation(ops.queue)
    queue_entry = _AsyncOperation(ops.queue_entry)
    claim = _AsyncOperation(ops.claim)
    cancel_queue_entry = _AsyncOperation(ops.cancel_queue_entry)
    config = _AsyncOperation(ops.config)
    update_config = _AsyncOperation(ops.update_config)
    keys = _AsyncOperation(ops.keys)
    create_key = _AsyncOperation(ops.create_key)
    revoke_key = _AsyncOperation(ops.revoke_key)
    audit = _AsyncOperation(ops.audit)

    # --- live events and waiting ----------------------------------------------------------

    def events(
        self, model_ids: Iterable[str] | None = None, types: Iterable[str] | None = None
    ) -> AsyncEventStream:
        """``Client.events`` for asyncio: ``async for event in client.events(...)``
        (``async with`` it, or ``await stream.aclose()``, to close it)."""
        return AsyncEventStream(
            url=events_url(self.base_url),
            headers=auth_headers(self._api_key),
            subscription=Subscription(model_ids, types),
            backoff=self._reconnect,
        )

    async def wait_until_available(self, model_id: str, timeout: float) -> ModelStatus:  # noqa: ASYNC109
        """``Client.wait_until_available`` for asyncio.

        Raises: WaitTimeout (also a TimeoutError); ModelNotFound; ServiceUnreachable.
        """
        wait = AvailabilityWait(model_id, timeout)
        scope = asyncio.timeout(timeout)
        try:
            async with scope, self.events([model_id], [AVAILABILITY_EVENT]) as stream:
                while True:
                    if wait.should_look(await stream.receive()):
                        status = await self.model_status(model_id)
                        if wait.settled(status):
                            return status
        except TimeoutError as exc:
            if scope.expired():
                raise wait.timed_out() from exc
            raise

    # --- usage reports --------------------------------------------------------------------

    @property
    def usage(self) -> AsyncUsageReporter:
        """``Client.usage`` for asyncio (``modeldepot.usage.reporter``)."""
        if self._reporter is None:
            self._reporter = AsyncUsageReporter(
                self.base_url, api_key=self._api_key, client=self._app_name
            )
        return self._reporter

    def generation(self, model_id: str, **parameters: Unpack[GenerationSettings]) -> Generation:
        """``async with client.generation(model_id, steps=30):`` (see ``Client``)."""
        return self.usage.generation(model_id, **parameters)

    # --- lifetime -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Flush usage reports (at most 5 s) and close the connections."""
        if self._reporter is not None:
            await self._reporter.close()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
