"""``modeldepot pull``: start (or join) a model's download and follow it to the end.

The same steps run against either side, a ``Downloads`` backend:

* ``ServiceDownloads``: a running service, over its HTTP API, woken by its WebSocket;
* ``InProcessDownloads``: the service graph built in this process (``open_services``).

``start`` answers with the download to follow: a new one, the one already running
(``DOWNLOAD_IN_PROGRESS`` carries its id: we attach to it), or none when the model is
already available at its latest commit. Then the model's progress is read a few times a
second until its status is terminal. The result is an ``Outcome``, printed as a summary
line or, for scripts and benchmarks, as one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from modeldepot.cli.exits import CommandFailed, Problem
from modeldepot.cli.progress import PullDisplay
from modeldepot.cli.remote import EventFeed, RemoteService
from modeldepot.downloads.schemas import ManageRequest, ManageResponse, ProgressResponse
from modeldepot.errors import DepotError, DownloadInProgress
from modeldepot.events import Subscription
from modeldepot.services import Services, open_services
from modeldepot.settings import Settings
from modeldepot.units import MB

POLL_INTERVAL_S = 0.25  # the display's refresh rate; events wake the loop sooner


@dataclass(frozen=True)
class Started:
    """What ``start`` led to: a download to follow, or nothing to do."""

    download_id: str | None = None
    attached: bool = False
    """Another client had started this download; we follow it."""
    already_available: bool = False

    @classmethod
    def from_response(cls, response: ManageResponse) -> Started:
        if response.new_status == "COMPLETED":
            return cls(already_available=True)
        return cls(download_id=response.download_id)

    @classmethod
    def joining(cls, details: dict[str, Any]) -> Started:
        download_id = details.get("download_id")
        return cls(download_id=str(download_id) if download_id else None, attached=True)


class Downloads(Protocol):
    async def start(self, request: ManageRequest) -> Started:
        """Raises: CommandFailed."""
        ...

    async def progress(self, model_id: str) -> ProgressResponse:
        """Raises: CommandFailed."""
        ...

    async def wait_for_news(self, at_most: float) -> None:
        """Return at the next event about the model, or after ``at_most`` seconds."""
        ...


@dataclass(frozen=True)
class Outcome:
    """How a pull ended; ``to_json`` is the ``--json`` line."""

    model_id: str
    status: str | None
    download_id: str | None = None
    bytes_done: int = 0
    seconds: float = 0.0
    last_byte_at: datetime | None = None
    available_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def finished(cls, snapshot: ProgressResponse, *, seconds: float) -> Outcome:
        done = sum(f.downloaded for f in snapshot.files)
        status = snapshot.status.value
        error_code = snapshot.error_code
        if status != "COMPLETED" and error_code is None:
            error_code = f"DOWNLOAD_{status}"  # e.g. cancelled by someone else
        return cls(
            model_id=snapshot.model_id,
            status=status,
            download_id=snapshot.download_id,
            bytes_done=done or round(snapshot.downloaded_mb * MB),
            seconds=round(seconds, 3),
            last_byte_at=snapshot.last_byte_at,
            available_at=snapshot.available_at,
            error_code=error_code,
            error_message=snapshot.error_message
            or (None if status == "COMPLETED" else f"The download ended {status}"),
        )

    @classmethod
    def refused(cls, model_id: str, problem: Problem, *, seconds: float) -> Outcome:
        return cls(
            model_id=model_id,
            status=None,
            seconds=round(seconds, 3),
            error_code=problem.code,
            error_message=problem.message,
        )

    @property
    def succeeded(self) -> bool:
        return self.status == "COMPLETED"

    @property
    def problem(self) -> Problem | None:
        if self.succeeded:
            return None
        return Problem(self.error_code or "DOWNLOAD_FAILED", self.error_message or "failed")

    def to_json(self) -> str:
        return json.dumps(
            {
                "event": "completed" if self.succeeded else "failed",
                "model_id": self.model_id,
                "download_id": self.download_id,
                "status": self.status,
                "bytes": self.bytes_done,
                "seconds": self.seconds,
                "last_byte_at": _iso(self.last_byte_at),
                "available_at": _iso(self.available_at),
                "error_code": self.error_code,
                "error_message": self.error_message,
            }
        )

    def summary(self) -> str:
        if self.download_id is None:
            return f"{self.model_id} is already available: nothing to download"
        rate = self.bytes_done / MB / self.seconds if self.seconds else 0.0
        return (
            f"{self.model_id}: {self.bytes_done / MB:,.1f} MB in {self.seconds:.1f} s "
            f"({rate:,.1f} MB/s), verified and available (download {self.download_id})"
        )


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, written as the API writes it (``...Z``)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def pull(
    downloads: Downloads, request: ManageRequest, *, display: PullDisplay | None
) -> Outcome:
    """Start or join the download of ``request.model_id`` and follow it to its end."""
    began = time.monotonic()
    try:
        started = await downloads.start(request)
        if started.already_available:
            seconds = round(time.monotonic() - began, 3)
            return Outcome(model_id=request.model_id, status="COMPLETED", seconds=seconds)
        if started.attached and display is not None:
            display.note(f"Joining the download already in progress ({started.download_id})")
        final = await _follow(downloads, model_id=request.model_id, display=display)
    except CommandFailed as exc:
        return Outcome.refused(request.model_id, exc.problem, seconds=time.monotonic() - began)
    return Outcome.finished(final, seconds=time.monotonic() - began)


async def _follow(
    downloads: Downloads, *, model_id: str, display: PullDisplay | None
) -> ProgressResponse:
    while True:
        snapshot = await downloads.progress(model_id)
        if display is not None:
            display.update(snapshot)
        if snapshot.status.is_terminal:
            return snapshot
        await downloads.wait_for_news(POLL_INTERVAL_S)


# --- through a running service ---------------------------------------------------------


class ServiceDownloads:
    """``Downloads`` of a running service (HTTP for actions and progress, WebSocket to
    wake up as soon as something happens)."""

    def __init__(self, *, service: RemoteService, feed: EventFeed) -> None:
        self._service = service
        self._feed = feed

    async def start(self, request: ManageRequest) -> Started:
        try:
            response = await self._service.manage(request)
        except CommandFailed as exc:
            if exc.problem.code != DownloadInProgress.code:
                raise
            return Started.joining(exc.details)
        return Started.from_response(response)

    async def progress(self, model_id: str) -> ProgressResponse:
        return await self._service.progress(model_id)

    async def wait_for_news(self, at_most: float) -> None:
        await self._feed.wait(at_most)


async def pull_through_service(
    base_url: str, request: ManageRequest, *, display: PullDisplay | None
) -> Outcome:
    feed = EventFeed.for_service(base_url, request.model_id)
    listener = asyncio.create_task(feed.run(), name="modeldepot-events")
    try:
        async with RemoteService.connect(base_url) as service:
            downloads = ServiceDownloads(service=service, feed=feed)
            return await pull(downloads, request, display=display)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


# --- in this process --------------------------------------------------------------------


class InProcessDownloads:
    """``Downloads`` of the service graph built in this process."""

    def __init__(self, *, services: Services, events: Subscription, model_id: str) -> None:
        self._services = services
        self._events = events
        self._model_id = model_id

    async def start(self, request: ManageRequest) -> Started:
        try:
            response = await self._services.downloads.manage(request)
        except DownloadInProgress as exc:
            return Started.joining(exc.details)
        except DepotError as exc:
            raise CommandFailed.of(exc) from exc
        return Started.from_response(response)

    async def progress(self, model_id: str) -> ProgressResponse:
        try:
            return self._services.downloads.progress(model_id)
        except DepotError as exc:
            raise CommandFailed.of(exc) from exc

    async def wait_for_news(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._next_event_about_model()

    async def _next_event_about_model(self) -> None:
        while (event := await self._events.get()) is not None:
            if getattr(event, "model_id", None) == self._model_id:
                return
        await asyncio.Event().wait()  # the bus closed us: only the timeout ends the wait


async def pull_in_process(
    settings: Settings, request: ManageRequest, *, display: PullDisplay | None
) -> Outcome:
    """Run the download here. Interrupted (Ctrl-C), the services shut down as the service
    does: the job keeps its status and checkpoints, and resumes at the next start.

    Raises:
        ConfigError, CatalogError, StorageError: the configuration cannot be used.
    """
    async with open_services(settings, background=True) as services, _events(services) as events:
        downloads = InProcessDownloads(services=services, events=events, model_id=request.model_id)
        return await pull(downloads, request, display=display)


@contextlib.asynccontextmanager
async def _events(services: Services) -> AsyncIterator[Subscription]:
    subscription = services.bus.subscribe()
    try:
        yield subscription
    finally:
        subscription.close()
