"""``modeldepot revisions|update|rollback``: a model's installed and kept commits, moving
to the hub's newest and back, through the running service (see ``cli/service.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldepot.api.routes.revisions import RevisionsPage
from modeldepot.cli.options import (
    BandwidthOption,
    ConfigOption,
    JsonOption,
    LimitOption,
    ModelArgument,
    PageOption,
    PriorityOption,
    RetriesOption,
    UrlOption,
)
from modeldepot.cli.output import fields_of, line, page_note, table
from modeldepot.cli.service import ask, console, emit
from modeldepot.revisions.schemas import RollbackResponse, UpdateResponse

REVISIONS_FIELDS = (
    "model_id", "tracked_revision", "current_version", "latest_version", "update_available",
    "updating", "grace_hours",
)  # fmt: skip


def revisions(
    model_id: ModelArgument,
    refresh: Annotated[bool, typer.Option(help="Ask the hub for its newest commit first")] = False,
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """A model's installed, kept and removed revisions, and the hub's newest."""
    answer = ask(
        config, url, lambda c: c.revisions(model_id, refresh=refresh, page=page, limit=limit)
    )
    emit(answer, as_json=as_json, render=_revisions)


def _revisions(answer: RevisionsPage) -> None:
    fields_of(console, answer, REVISIONS_FIELDS)
    table(
        console,
        ("commit", "state", "on disk", "complete", "installed", "superseded", "kept until"),
        (
            (
                r.commit,
                r.state,
                r.on_disk,
                r.complete,
                r.installed_at,
                r.superseded_at,
                r.keep_until,
            )
            for r in answer.revisions
        ),
    )
    page_note(console, answer.pagination, "revisions")


def update(
    model_id: ModelArgument,
    level: PriorityOption = None,
    bandwidth_limit: BandwidthOption = None,
    max_retries: RetriesOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Download the hub's newest commit beside the installed one; switch once verified."""
    answer = ask(
        config,
        url,
        lambda c: c.update_model(
            model_id, priority=level, bandwidth_limit_mbps=bandwidth_limit, max_retries=max_retries
        ),
    )
    emit(answer, as_json=as_json, render=_updated)


def _updated(answer: UpdateResponse) -> None:
    line(console, answer.message)
    fields_of(console, answer, ("from_version", "to_version", "new_status", "download_id"))


def rollback(
    model_id: ModelArgument,
    commit: Annotated[
        str | None, typer.Option(help="The kept commit to go back to (default: the previous)")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Switch back to a kept revision after checking it is complete on disk."""
    answer = ask(config, url, lambda c: c.rollback(model_id, commit=commit))
    emit(answer, as_json=as_json, render=_rolled_back)


def _rolled_back(answer: RollbackResponse) -> None:
    line(console, answer.message)
    fields_of(console, answer, ("from_version", "to_version", "previous_kept_until"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    for command in (revisions, update, rollback):
        app.command()(command)
