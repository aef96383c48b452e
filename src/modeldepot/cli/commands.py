"""``modeldepot status|progress|pause|resume|cancel|priority|tune|show``: a model's
availability and its download, and any record by its id, through the running service.

Each command is one SDK call on the running service; how the service is found, what
happens when none answers (exit 8, never in-process work) and what ``--json`` prints is
``cli/service.py``'s. Health, revisions, storage, usage, the queue and the configuration
have their own modules, registered the same way (``register(app)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import typer
from pydantic import BaseModel

from modeldepot.api.routes.downloads import ActiveDownloadsPage
from modeldepot.api.routes.status import DetailedStatusPage
from modeldepot.availability.schemas import ModelStatus
from modeldepot.cleanup.schemas import CLEANUP_ID_PATTERN
from modeldepot.cli.exits import Problem
from modeldepot.cli.options import (
    BandwidthOption,
    ConfigOption,
    JsonOption,
    LimitOption,
    ModelArgument,
    OptionalModelArgument,
    PageOption,
    PriorityOption,
    RetriesOption,
    UrlOption,
)
from modeldepot.cli.output import fields, fields_of, line, page_note, table
from modeldepot.cli.service import ask, console, emit, refuse
from modeldepot.client import Client
from modeldepot.downloads.schemas import ManageResponse, Priority, ProgressResponse
from modeldepot.fallback.queue_schemas import QUEUE_ID_PATTERN
from modeldepot.ids import CHECK_ID_PATTERN, REPAIR_ID_PATTERN

# What people see of each answer (--json has all of it), in this order.
STATUS_FIELDS = (
    "model_id", "display_name", "availability_status", "is_available", "is_loaded", "size_mb",
    "file_count", "download_progress", "missing_files", "wrong_size_files", "current_version",
    "latest_version", "update_available", "integrity_score", "corruption_detected",
    "last_health_check", "usage_frequency", "last_used", "source", "revision", "source_error",
)  # fmt: skip
DOWNLOAD_FIELDS = (
    "model_id", "download_id", "status", "progress_percent", "downloaded_mb", "total_mb",
    "speed_mbps", "eta_seconds", "priority", "bandwidth_limit_mbps", "queue_position",
    "retry_count", "max_retries", "error_code", "error_message",
)  # fmt: skip

# --- status and downloads -------------------------------------------------------------------


def status(
    model_id: OptionalModelArgument = None,
    refresh: Annotated[
        bool, typer.Option(help="Ask the hub for the newest commit first (one model)")
    ] = False,
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """A model's availability in detail, or a page of every model's with a summary."""
    if model_id is not None:
        one = ask(config, url, lambda c: c.model_status(model_id, refresh=refresh))
        emit(one, as_json=as_json, render=_model_status)
        return
    listing = ask(config, url, lambda c: c.status(page=page, limit=limit))
    emit(listing, as_json=as_json, render=_status_page)


def _model_status(status: ModelStatus) -> None:
    fields_of(console, status, STATUS_FIELDS)


def _status_page(page: DetailedStatusPage) -> None:
    rows = [
        (
            s.model_id,
            s.availability_status,
            None if s.size_mb is None else f"{s.size_mb:,.1f}",
            _progress(s),
            (s.current_version or "")[:12] or None,
            s.source_error,
        )
        for s in page.models.values()
    ]
    table(console, ("model", "status", "size (MB)", "progress", "version", "note"), rows)
    summary = page.summary
    line(
        console,
        f"{summary.total_models} models: {summary.available_models} available, "
        f"{summary.downloading_models} downloading, {summary.corrupted_models} corrupted; "
        f"{summary.total_storage_gb:,.3f} GB installed.",
    )
    page_note(console, page.pagination, "models")


def _progress(status: ModelStatus) -> str | None:
    if status.download_progress is None or status.availability_status == "AVAILABLE":
        return None
    return f"{status.download_progress:.0f}%"


def progress(
    model_id: OptionalModelArgument = None,
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """A model's newest download in detail, or the active downloads (running first)."""
    if model_id is not None:
        one = ask(config, url, lambda c: c.progress(model_id))
        emit(one, as_json=as_json, render=_download)
        return
    active = ask(config, url, lambda c: c.active_downloads(page=page, limit=limit))
    emit(active, as_json=as_json, render=_active)


def _download(answer: ProgressResponse) -> None:
    fields_of(console, answer, DOWNLOAD_FIELDS)


def _active(page: ActiveDownloadsPage) -> None:
    table(
        console,
        ("model", "status", "progress", "MB/s", "ETA (s)", "queue", "priority", "download"),
        (
            (
                d.model_id,
                d.status,
                f"{d.progress_percent:.0f}%",
                d.speed_mbps,
                d.eta_seconds,
                d.queue_position,
                d.priority,
                d.download_id,
            )
            for d in page.active_downloads
        ),
    )
    line(
        console,
        f"{page.total_active} active, {page.total_bandwidth_usage_mbps:,.2f} MB/s in all.",
    )
    page_note(console, page.pagination, "downloads")


def _managed(answer: ManageResponse) -> None:
    line(console, answer.message)
    fields(console, (("status", answer.new_status), ("download", answer.download_id)))


def pause(
    model_id: ModelArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Pause the model's download; it keeps its bytes (404 when none is active)."""
    emit(ask(config, url, lambda c: c.pause(model_id)), as_json=as_json, render=_managed)


def resume(
    model_id: ModelArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Resume the model's paused download where it stopped."""
    emit(ask(config, url, lambda c: c.resume(model_id)), as_json=as_json, render=_managed)


def cancel(
    model_id: ModelArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Cancel the model's download; its partial files are removed."""
    emit(ask(config, url, lambda c: c.cancel(model_id)), as_json=as_json, render=_managed)


def priority(
    model_id: ModelArgument,
    level: Annotated[Priority, typer.Argument(metavar="LEVEL", help="The new priority")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Change the priority of the model's queued or running download."""
    answer = ask(config, url, lambda c: c.set_priority(model_id, level))
    emit(answer, as_json=as_json, render=_managed)


def tune(
    model_id: ModelArgument,
    level: PriorityOption = None,
    bandwidth_limit: BandwidthOption = None,
    max_retries: RetriesOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Change the priority, bandwidth limit or retries of a queued or running download."""
    answer = ask(
        config,
        url,
        lambda c: c.update_download(
            model_id,
            priority=level,
            bandwidth_limit_mbps=bandwidth_limit,
            max_retries=max_retries,
        ),
    )
    emit(answer, as_json=as_json, render=_managed)


# --- records by id --------------------------------------------------------------------------

Lookup = Callable[[Client, str], BaseModel]
RECORD_LOOKUPS: tuple[tuple[re.Pattern[str], Lookup], ...] = (
    (re.compile(CHECK_ID_PATTERN), lambda client, record_id: client.get_check(record_id)),
    (re.compile(REPAIR_ID_PATTERN), lambda client, record_id: client.get_repair(record_id)),
    (re.compile(CLEANUP_ID_PATTERN), lambda client, record_id: client.get_cleanup(record_id)),
    (re.compile(QUEUE_ID_PATTERN), lambda client, record_id: client.queue_entry(record_id)),
)


def show(
    record_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="check_…, repair_…, cleanup_… or queue_… (as commands print them)"
        ),
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """A health check, repair, cleanup or wait-queue entry, by its id."""
    lookup = next((get for kind, get in RECORD_LOOKUPS if kind.fullmatch(record_id)), None)
    if lookup is None:
        raise refuse(
            Problem(
                "VALIDATION_ERROR",
                f"Not the id of a check, repair, cleanup or queue entry: {record_id!r}",
            )
        )
    answer = ask(config, url, lambda client: lookup(client, record_id))
    emit(answer, as_json=as_json, render=lambda record: fields_of(console, record))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    for command in (status, progress, pause, resume, cancel, priority, tune, show):
        app.command()(command)
