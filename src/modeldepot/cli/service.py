"""How the commands over the API reach the running service, and how they answer.

Every command but ``serve``, ``pull``, ``ls`` and ``keys`` (``status``, ``pause``,
``check``, ``storage``, ``cleanup``, ``queue``, ``config``, ...) is one or two calls of the
Python SDK (``modeldepot.client.Client``) on the running service: the same routes, the
same answers, the same error classes as any other client.

They need a running service. The service to use is the one ``--url`` or
``MODELDEPOT_URL`` names (which must answer), else the one at the configured host and
port; when none answers they fail with ``SERVICE_UNREACHABLE`` (exit 8) and say to start
``modeldepot serve``. Unlike ``ls`` and ``pull`` (which build the service graph in their
own process when no service runs) they never work in-process: what they act on lives in
the long-running service (checks and repairs run in its background, queue entries wait
for its downloads, configuration changes apply to it live), and a second process opening
the same data directory would be refused (``ALREADY_RUNNING``) while one runs.

Output: with ``--json`` the API's answer exactly (``model_dump(mode="json")``, one line)
and nothing else on stdout (an answer without a body, ``unpin``'s 204, prints nothing);
otherwise tables and lines for people. A failure is one line on stderr and the exit code
of its error class (``cli/exits.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from modeldepot.cli.exits import CommandFailed, Problem, fail
from modeldepot.cli.remote import API_KEY_ENV, auth_headers, find_service, service_url
from modeldepot.client import Client
from modeldepot.errors import DepotError, Unauthorized
from modeldepot.settings import Settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

console = Console()
err_console = Console(stderr=True)


def ask(config: Path | None, url: str | None, question: Callable[[Client], T]) -> T:
    """``question(client)`` on the running service; any failure exits as its error class.

    Raises: typer.Exit (after one line on stderr) for every error, SERVICE_UNREACHABLE
    (exit 8) when no service answers.
    """
    base_url = locate(config, url)
    try:
        with Client(base_url) as client:
            return question(client)
    except DepotError as exc:
        raise fail(problem_of(exc), console=err_console) from exc


def locate(config: Path | None, url: str | None) -> str:
    """The base URL of the service to use.

    Raises: typer.Exit: CONFIG_ERROR (4) for unusable settings; SERVICE_UNREACHABLE (8)
    when no service answers; VALIDATION_ERROR (2) for a named URL that is not one.
    """
    try:
        settings = Settings.load(config_file=config)
        found = asyncio.run(find_service(settings, url))
    except DepotError as exc:
        raise fail(Problem.of(exc), console=err_console) from exc
    except CommandFailed as exc:
        raise fail(exc.problem, console=err_console) from exc
    if found is None:
        problem = Problem(
            "SERVICE_UNREACHABLE",
            f"No modeldepot service answers at {service_url(settings)}: start one with "
            "`modeldepot serve` (or name one elsewhere with --url or MODELDEPOT_URL).",
        )
        raise fail(problem, console=err_console)
    return found


def problem_of(error: DepotError) -> Problem:
    """``error`` as a ``Problem``; a refused key says which variable to set."""
    if isinstance(error, Unauthorized):
        message = (
            f"The service refused the key in {API_KEY_ENV} (unknown or revoked)"
            if auth_headers()
            else f"The service requires an API key: set {API_KEY_ENV} to one "
            "(an admin makes it with `modeldepot keys create NAME --role user`)"
        )
        return Problem(error.code, message)
    return Problem.of(error)


def emit(answer: M, *, as_json: bool, render: Callable[[M], None]) -> None:
    """Print ``answer``: the API's JSON, or ``render(answer)`` for people."""
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json")))
    else:
        render(answer)


def refuse(problem: Problem) -> typer.Exit:
    """Exit for a command line the service need not see (e.g. a malformed KEY=VALUE)."""
    return fail(problem, console=err_console)
