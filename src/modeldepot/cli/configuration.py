"""``modeldepot config show|set`` and ``modeldepot audit``: the running service's
configuration, read and changed live (``GET /config/current``, ``PUT /config/update``),
and the audit log of such changes (see ``cli/service.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer

from modeldepot.api.pagination import Page
from modeldepot.auth.audit import AuditEntry
from modeldepot.cli.assignments import nested
from modeldepot.cli.options import ConfigOption, JsonOption, LimitOption, PageOption, UrlOption
from modeldepot.cli.output import line, page_note, table
from modeldepot.cli.service import ask, console, emit, problem_of, refuse
from modeldepot.config.schemas import ConfigPublic, ConfigUpdateResult
from modeldepot.errors import InvalidInput

config_app = typer.Typer(
    help="The running service's configuration: show it, change it live.",
    no_args_is_help=True,
)


@config_app.command("show")
def show(
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """The configuration in effect, one dotted key per line (the keys `set` takes)."""
    emit(ask(config, url, lambda c: c.config()), as_json=as_json, render=_current)


def _current(current: ConfigPublic) -> None:
    table(console, ("key", "value"), dotted(current.model_dump(mode="json")))


def dotted(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.key, value)`` of every leaf of ``values`` (an empty section is a leaf)."""
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@config_app.command("set")
def set_values(
    assignments: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...",
            help="e.g. downloads.max_concurrent_downloads=5 features.usage_analytics=false; "
            "values are JSON when they parse as JSON, else strings",
        ),
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Change settings live (saved, and applied at once or at the next restart)."""
    try:
        changes = nested(assignments)
    except InvalidInput as exc:
        raise refuse(problem_of(exc)) from exc
    answer = ask(config, url, lambda c: c.update_config(changes))
    emit(answer, as_json=as_json, render=_updated)


def _updated(result: ConfigUpdateResult) -> None:
    if not result.updated_settings:
        line(console, "Nothing changed: every value was already in effect.")
    for key in result.updated_settings:
        line(console, f"Updated {key}.")
    for key in result.pending_restart:
        line(console, f"{key} applies at the next restart of the service.")


def audit(
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """The audit log of admin actions: who changed what, and when (needs an admin key)."""
    answer = ask(config, url, lambda c: c.audit(page=page, limit=limit))
    emit(answer, as_json=as_json, render=_audit)


def _audit(answer: Page[AuditEntry]) -> None:
    table(
        console,
        ("at (UTC)", "actor", "role", "action", "target", "status", "outcome"),
        ((e.at, e.actor, e.role, e.action, e.target, e.status, e.outcome) for e in answer.data),
    )
    page_note(console, answer.pagination, "entries")
