"""The ``modeldepot`` command line: a typer shell over the same services as the API.

``serve`` runs the service; ``pull`` and ``ls`` talk to it when it is running (see
``cli/remote.py``) and otherwise build the service graph in-process; ``keys`` writes the
database directly. Every other command (``status``, ``pause``, ``check``, ``storage``,
``cleanup``, ``queue``, ``config``, ...) is a call of the SDK on the running service and
needs one (``cli/service.py``). Errors from the one exception tree are printed as one
line and mapped to exit codes through ``EXIT_CODES`` (``cli/exits.py``, which documents
them); nothing else is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from modeldepot.availability.schemas import DetailedStatusResponse, ModelStatus
from modeldepot.availability.service import summarize
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.cli import commands, health, revisions, storage, usage
from modeldepot.cli.configuration import audit, config_app
from modeldepot.cli.exits import EXIT_CODES, INTERRUPTED, CommandFailed, Problem, fail
from modeldepot.cli.keys import keys_app
from modeldepot.cli.options import ConfigOption, JsonOption, ModelArgument
from modeldepot.cli.progress import PullDisplay
from modeldepot.cli.pull import Outcome, pull_in_process, pull_through_service
from modeldepot.cli.queue import queue_app
from modeldepot.cli.remote import RemoteService, find_service, service_url
from modeldepot.downloads.schemas import DownloadAction, ManageRequest, Priority
from modeldepot.errors import DepotError, InvalidInput
from modeldepot.ids import validate_model_id
from modeldepot.logs import LogLevel, log_config
from modeldepot.logs import configure as configure_logs
from modeldepot.services import load_entries, open_services
from modeldepot.settings import Settings, validation_problems

app = typer.Typer(help="modeldepot: keeps generative models available.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err_console = Console(stderr=True)

__all__ = ["EXIT_CODES", "app", "main"]

InProcessUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MODELDEPOT_URL",
        help="The service to use, e.g. http://127.0.0.1:8000 (must answer). Without it: the "
        "service at the configured host and port if one answers, else work in this process.",
    ),
]


def _fail(exc: DepotError) -> typer.Exit:
    return fail(Problem.of(exc), console=err_console)


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return Settings.load(config_file=config, **overrides)
    except DepotError as exc:
        raise _fail(exc) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    demo: Annotated[bool, typer.Option(help="Serve small demo models from a local hub")] = False,
    config: ConfigOption = None,
    log_level: Annotated[
        LogLevel,
        typer.Option(help="info: one line per request; warning: problems only; debug: all"),
    ] = LogLevel.info,
) -> None:
    """Run the service (HTTP API under /api/v1, WebSocket at /ws)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(config, **overrides)
    configure_logs(log_level)
    if demo:
        from modeldepot.demo import demo_environment  # imports the test hub: only on demand

        with demo_environment(settings) as env:
            console.print(f"Demo hub at {env.hub_endpoint}; demo data in {env.settings.data_dir}")
            # The demo catalogue is the demo models only: the real ones need the real hub.
            _run(env.settings, entries=env.entries, builtin=False, log_level=log_level)
        return
    _run(settings, entries=(), builtin=True, log_level=log_level)


def _run(
    settings: Settings, *, entries: tuple[CatalogEntry, ...], builtin: bool, log_level: LogLevel
) -> None:
    try:
        # Fail fast on a bad catalogue, before binding the port.
        load_entries(settings, entries, include_builtin=builtin)
    except DepotError as exc:
        raise _fail(exc) from exc
    # The web stack is imported only to serve: pull and ls start faster without it.
    import uvicorn

    from modeldepot.api.app import create_app
    from modeldepot.api.server import uvicorn_config
    from modeldepot.cli.startup import StartupErrors

    application = StartupErrors(
        create_app(settings, extra_entries=entries, include_builtin=builtin)
    )
    server = uvicorn.Server(
        uvicorn_config(
            application,
            settings,
            log_config=log_config(log_level),
            log_level=log_level.value,
            header_timeout=settings.request_header_timeout_seconds,
        )
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on: done
        pass
    except SystemExit:  # uvicorn's exit when the port cannot be bound (it logged why)
        if application.error is not None:
            raise _fail(application.error) from None
        raise
    if not server.started:  # the start failed: say why, with our exit code
        if application.error is not None:
            raise _fail(application.error)
        raise typer.Exit(3)  # uvicorn's own code for a failed start


@app.command()
def pull(
    model_id: ModelArgument,
    priority: Annotated[Priority, typer.Option(help="Queue priority")] = Priority.normal,
    max_retries: Annotated[
        int | None, typer.Option(min=0, max=100, help="Retries (default: the setting)")
    ] = None,
    bandwidth_limit: Annotated[
        float | None, typer.Option(metavar="MBPS", min=0, help="MB/s for this download; 0: none")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="No bars; print one JSON line at the end")
    ] = False,
    config: ConfigOption = None,
    url: InProcessUrlOption = None,
) -> None:
    """Download a model (verified) and wait until it is available.

    Goes through the running service if there is one (or the one --url names), else
    downloads in this process.
    """
    settings = _settings(config)
    try:
        validate_model_id(model_id)
        request = ManageRequest(
            model_id=model_id,
            action=DownloadAction.start,
            priority=priority,
            max_retries=max_retries,
            bandwidth_limit_mbps=bandwidth_limit,
        )
    except DepotError as exc:
        raise _fail(exc) from exc
    except ValidationError as exc:  # an option outside the range the API documents
        problems = "; ".join(f"{loc}: {msg}" for loc, msg in validation_problems(exc))
        raise _fail(InvalidInput(problems)) from exc
    with _quiet_logs():
        base_url = _find_service(settings, url)
        outcome = _run_pull(settings, request, base_url=base_url, as_json=as_json)
    if as_json:
        typer.echo(outcome.to_json())
    if (problem := outcome.problem) is not None:
        raise fail(problem, console=err_console)
    if not as_json:
        console.print(outcome.summary(), markup=False, highlight=False, soft_wrap=True)


def _run_pull(
    settings: Settings, request: ManageRequest, *, base_url: str | None, as_json: bool
) -> Outcome:
    display = None if as_json else PullDisplay(model_id=request.model_id, console=console)
    try:
        with display or contextlib.nullcontext():
            if base_url is not None:
                return asyncio.run(pull_through_service(base_url, request, display=display))
            return asyncio.run(pull_in_process(settings, request, display=display))
    except DepotError as exc:  # the configuration could not be used
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        where = (
            f"it continues in the service at {base_url}"
            if base_url is not None
            else "it will resume where it stopped at the next `modeldepot pull "
            f"{request.model_id}` or `modeldepot serve`"
        )
        err_console.print(f"Interrupted: {where}.", markup=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED) from None


@app.command("ls")
def list_models(
    as_json: JsonOption = False, config: ConfigOption = None, url: InProcessUrlOption = None
) -> None:
    """List catalogue models and their availability (from the running service if any).

    --json: every model's status and the summary, as the API's /models/status/detailed
    answers them (all models in one object, no pagination), in-process too.
    """
    settings = _settings(config)
    base_url = _find_service(settings, url)
    try:
        with _quiet_logs():
            detailed = asyncio.run(_statuses(settings, base_url))
    except DepotError as exc:
        raise _fail(exc) from exc
    except CommandFailed as exc:
        raise fail(exc.problem, console=err_console) from exc
    if as_json:
        typer.echo(json.dumps(detailed.model_dump(mode="json")))
        return
    table = Table("model", "status", "size (MB)", "progress", "version", "note")
    for status in detailed.models.values():
        table.add_row(
            status.model_id,
            status.availability_status,
            "" if status.size_mb is None else f"{status.size_mb:,.1f}",
            _progress_cell(status),
            (status.current_version or "")[:12],
            status.source_error or "",
        )
    console.print(table)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Client commands report their own outcome; the services' warnings (e.g. about other
    models of the catalogue) would only be noise on the terminal."""
    logger = logging.getLogger("modeldepot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _progress_cell(status: ModelStatus) -> str:
    """A download's percentage while one is under way (or stopped short of the end)."""
    if status.download_progress is None or status.availability_status == "AVAILABLE":
        return ""
    return f"{status.download_progress:.0f}%"


def _find_service(settings: Settings, url: str | None) -> str | None:
    """The service to talk to, or None (after saying so on stderr) to work in-process."""
    try:
        base_url = asyncio.run(find_service(settings, url))
    except CommandFailed as exc:
        raise fail(exc.problem, console=err_console) from exc
    if base_url is None:
        err_console.print(
            f"No modeldepot service answers at {service_url(settings)}: working in this "
            f"process (models in {settings.models_dir}). Use --url or MODELDEPOT_URL to "
            "reach a service elsewhere.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return base_url


async def _statuses(settings: Settings, base_url: str | None) -> DetailedStatusResponse:
    """Every model's status and the summary: all pages of the service's listing, or
    unpaged in-process."""
    if base_url is not None:
        async with RemoteService.connect(base_url) as service:
            statuses = await service.detailed_status()
        return DetailedStatusResponse(
            models={status.model_id: status for status in statuses},
            summary=summarize(statuses),  # of every page, as the service summarises
        )
    async with open_services(settings, background=False) as services:
        await services.catalog.refresh_all()
        return await services.availability.detailed()


# After serve, pull and ls (the order of `modeldepot --help`): the commands over the API.
commands.register(app)
health.register(app)
revisions.register(app)
storage.register(app)
usage.register(app)
app.command()(audit)
app.add_typer(queue_app, name="queue")
app.add_typer(config_app, name="config")


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
