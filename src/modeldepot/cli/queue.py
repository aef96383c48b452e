"""``modeldepot queue list|show|add|claim|cancel``: the wait queue of generation requests
held until their model is available (``/models/fallback/queue``; see ``cli/service.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldepot.api.routes.fallback import QueuePage
from modeldepot.cli.assignments import nested
from modeldepot.cli.options import (
    ConfigOption,
    JsonOption,
    LimitOption,
    ModelArgument,
    PageOption,
    UrlOption,
)
from modeldepot.cli.output import fields_of, line, page_note, table
from modeldepot.cli.service import ask, console, emit, problem_of, refuse
from modeldepot.downloads.schemas import Priority
from modeldepot.errors import InvalidInput
from modeldepot.fallback.queue_schemas import QueueEntry, QueueResponse, QueueStatus

queue_app = typer.Typer(
    help="The wait queue: generation requests held until their model is available.",
    no_args_is_help=True,
)

QueueIdArgument = Annotated[
    str, typer.Argument(metavar="QUEUE_ID", help="queue_… as `queue list` shows it")
]
ENTRY_FIELDS = (
    "queue_id", "model_id", "status", "priority", "position", "estimated_wait_time_minutes",
    "estimated_start_time", "created_at", "wait_until", "ready_at", "claim_until", "ended_at",
    "reason", "request",
)  # fmt: skip


@queue_app.command("list")
def list_entries(
    model_id: Annotated[
        str | None, typer.Option("--model", metavar="MODEL", help="Only this model's")
    ] = None,
    status: Annotated[QueueStatus | None, typer.Option(help="Only entries in this state")] = None,
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Wait-queue entries, oldest first."""
    answer = ask(
        config, url, lambda c: c.queue(model_id=model_id, status=status, page=page, limit=limit)
    )
    emit(answer, as_json=as_json, render=_entries)


def _entries(answer: QueuePage) -> None:
    table(
        console,
        ("queue id", "model", "status", "priority", "position", "wait (min)", "created"),
        (
            (
                e.queue_id,
                e.model_id,
                e.status,
                e.priority,
                e.position,
                e.estimated_wait_time_minutes,
                e.created_at,
            )
            for e in answer.data
        ),
    )
    page_note(console, answer.pagination, "entries")


@queue_app.command("show")
def show(
    queue_id: QueueIdArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """One entry: its state, position and estimate."""
    emit(ask(config, url, lambda c: c.queue_entry(queue_id)), as_json=as_json, render=_entry)


def _entry(entry: QueueEntry) -> None:
    fields_of(console, entry, ENTRY_FIELDS)


@queue_app.command("add")
def add(
    model_id: ModelArgument,
    prompt: Annotated[str, typer.Argument(help="The generation's prompt")],
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="KEY=VALUE",
            help="A generation parameter (repeat; JSON values, e.g. steps=30)",
        ),
    ] = None,
    priority: Annotated[Priority | None, typer.Option(help="Queue priority")] = None,
    max_wait: Annotated[
        float | None, typer.Option(metavar="MINUTES", help="Give up after this long")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Hold a generation request until MODEL is available (starting its download)."""
    try:
        parameters = nested(params or ())
    except InvalidInput as exc:
        raise refuse(problem_of(exc)) from exc
    answer = ask(
        config,
        url,
        lambda c: c.enqueue(
            model_id,
            prompt,
            parameters=parameters,
            priority=priority,
            max_wait_time_minutes=max_wait,
        ),
    )
    emit(answer, as_json=as_json, render=_queued)


def _queued(answer: QueueResponse) -> None:
    started = " (its download started)" if answer.download_started else ""
    line(console, f"Queued {answer.queue_id}: {answer.status}{started}.")
    fields_of(console, answer, ("position", "estimated_wait_time_minutes", "estimated_start_time"))


@queue_app.command("claim")
def claim(
    queue_id: QueueIdArgument,
    worker: Annotated[str | None, typer.Option(help="Who claims it (kept on the entry)")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Take a READY entry to run its request (one claimer gets it; 409 for the others)."""
    answer = ask(config, url, lambda c: c.claim(queue_id, worker=worker))
    emit(answer, as_json=as_json, render=_entry)


@queue_app.command("cancel")
def cancel(
    queue_id: QueueIdArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Withdraw a WAITING or READY entry (409 once it ended)."""
    answer = ask(config, url, lambda c: c.cancel_queue_entry(queue_id))
    emit(answer, as_json=as_json, render=_entry)
