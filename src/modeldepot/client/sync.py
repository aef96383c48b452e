"""``Client``: the whole API, blocking, typed with the service's own models.

Each API method is an operation of ``modeldepot.client.operations`` bound here by
``_Operation``: the operation builds the request, ``Client.send`` sends it (retrying a
429 or 503, see ``modeldepot.client.calls``) and decodes the answer or raises the
service's error class. ``AsyncClient`` binds the same operations; nothing about a route is
written twice.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
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
    exchange,
    read,
    root_url,
)
from modeldepot.client.stream import DEFAULT_BACKOFF, EventStream, Subscription
from modeldepot.client.waiting import AVAILABILITY_EVENT, AvailabilityWait
from modeldepot.usage.reporter import Backoff, Generation, GenerationSettings, UsageReporter

P = ParamSpec("P")
T = TypeVar("T")


class _Operation(Generic[P, T]):
    """An operation of ``modeldepot.client.operations`` as a ``Client`` method."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Client]) -> Self: ...
    @overload
    def __get__(self, client: Client, owner: type[Client]) -> Callable[P, T]: ...
    def __get__(self, client: Client | None, owner: type[Client]) -> Self | Callable[P, T]:
        if client is None:
            return self
        build = self._build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return client.send(build(*args, **kwargs))

        return method


class Client:
    """The modeldepot service's API (see the package docstring for a tour).

    ``base_url``: the service (``http://host:8000``; a trailing ``/api/v1`` is fine),
    default ``MODELDEPOT_URL`` or ``http://localhost:8000``. ``api_key``: sent as
    ``Authorization: Bearer`` on every request and on the WebSocket, default
    ``MODELDEPOT_API_KEY``. ``retry``: when 429 and 503 answers are retried.
    ``reconnect``: the backoff of ``events()`` between reconnection attempts.
    ``app_name``: the ``client`` named in usage reports. ``transport``: httpx's, e.g. to
    go through a proxy or inject faults in tests.

    Every method raises the service's own error classes (``modeldepot.errors``, e.g.
    ``ModelNotFound``, ``DownloadInProgress``), ``ServiceUnreachable`` when no answer
    comes, ``InvalidInput`` for a request body the service would refuse.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = root_url(base_url)
        self._api_key = api_key_or_env(api_key)
        self._retry = retry or RetryPolicy()
        self._reconnect = reconnect
        self._app_name = app_name
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=auth_headers(self._api_key),
            timeout=timeout,
            transport=transport,
        )
        self._reporter: UsageReporter | None = None

    def send(self, call: Call[T]) -> T:
        """Send one ``Call`` (what every API method does)."""
        return read(call, exchange(self._http, build_request(self._http, call), self._retry))

    # --- the API, one operation per route (modeldepot.client.operations) ----------------

    healthz = _Operation(ops.healthz)
    metrics = _Operation(ops.metrics)
    status = _Operation(ops.status)
    model_status = _Operation(ops.model_status)
    manage = _Operation(ops.manage)
    download = _Operation(ops.download)
    pause = _Operation(ops.pause)
    resume = _Operation(ops.resume)
    cancel = _Operation(ops.cancel)
    set_priority = _Operation(ops.set_priority)
    update_download = _Operation(ops.update_download)
    progress = _Operation(ops.progress)
    active_downloads = _Operation(ops.active_downloads)
    health = _Operation(ops.health)
    model_health = _Operation(ops.model_health)
    check = _Operation(ops.check)
    get_check = _Operation(ops.get_check)
    repair = _Operation(ops.repair)
    get_repair = _Operation(ops.get_repair)
    revisions = _Operation(ops.revisions)
    update_model = _Operation(ops.update_model)
    rollback = _Operation(ops.rollback)
    storage = _Operation(ops.storage)
    cleanup_recommendations = _Operation(ops.cleanup_recommendations)
    cleanup = _Operation(ops.cleanup)
    get_cleanup = _Operation(ops.get_cleanup)
    pins = _Operation(ops.pins)
    pin = _Operation(ops.pin)
    unpin = _Operation(ops.unpin)
    report_usage = _Operation(ops.report_usage)
    analytics = _Operation(ops.analytics)
    model_analytics = _Operation(ops.model_analytics)
    performance = _Operation(ops.performance)
    suggest = _Operation(ops.suggest)
    enqueue = _Operation(ops.enqueue)
    queue = _Operation(ops.queue)
    queue_entry = _Operation(ops.queue_entry)
    claim = _Operation(ops.claim)
    cancel_queue_entry = _Operation(ops.cancel_queue_entry)
    config = _Operation(ops.config)
    update_config = _Operation(ops.update_config)
    keys = _Operation(ops.keys)
    create_key = _Operation(ops.create_key)
    revoke_key = _Operation(ops.revoke_key)
    audit = _Operation(ops.audit)

    # --- live events and waiting ----------------------------------------------------------

    def events(
        self, model_ids: Iterable[str] | None = None, types: Iterable[str] | None = None
    ) -> EventStream:
        """The service's events (``modeldepot.events`` classes) of these models and types
        (None: all), reconnecting and resubscribing when the connection drops; see
        ``modeldepot.client.stream``. Use it in a ``with`` block, or ``close()`` it."""
        return EventStream(
            url=events_url(self.base_url),
            headers=auth_headers(self._api_key),
            subscription=Subscription(model_ids, types),
            backoff=self._reconnect,
        )

    def wait_until_available(self, model_id: str, timeout: float) -> ModelStatus:
        """Block until the model is available (``AVAILABLE`` or ``UPDATE_AVAILABLE``) and
        return its status; event-driven (``modeldepot.client.waiting``). It does not start
        a download: ``download()`` first.

        Raises: WaitTimeout (also a TimeoutError) after ``timeout`` seconds;
        ModelNotFound; ServiceUnreachable.
        """
        wait = AvailabilityWait(model_id, timeout)
        deadline = time.monotonic() + timeout
        with self.events([model_id], [AVAILABILITY_EVENT]) as stream:
            while True:
                try:
                    item = stream.receive(deadline)
                except TimeoutError as exc:
                    raise wait.timed_out() from exc
                if wait.should_look(item):
                    status = self.model_status(model_id)
                    if wait.settled(status):
                        return status

    # --- usage reports --------------------------------------------------------------------

    @property
    def usage(self) -> UsageReporter:
        """The usage reporter of this client (``modeldepot.usage.reporter``): reports in
        the background, never blocks or raises; ``loaded()``, ``unloaded()``,
        ``flush()``. Made at first use; closed (flushed, bounded) with the client."""
        if self._reporter is None:
            self._reporter = UsageReporter(
                self.base_url, api_key=self._api_key, client=self._app_name
            )
        return self._reporter

    def generation(self, model_id: str, **parameters: Unpack[GenerationSettings]) -> Generation:
        """``with client.generation(model_id, steps=30):`` reports the generation's start,
        and its duration when the block ends (failed if it raised)."""
        return self.usage.generation(model_id, **parameters)

    # --- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush usage reports (at most 5 s) and close the connections."""
        if self._reporter is not None:
            self._reporter.close()
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
