"""The ``modeldepot`` command line: a typer shell over the same services as the API.

Errors from the one exception tree are printed as one line and mapped to exit codes
through ``EXIT_CODES``; nothing else is caught.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from modeldepot.api.app import create_app
from modeldepot.availability.schemas import ModelStatus
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.errors import (
    ConfigError,
    DepotError,
    InvalidInput,
    NotFound,
    StorageError,
    UpstreamError,
)
from modeldepot.services import load_entries, open_services
from modeldepot.settings import Settings

app = typer.Typer(help="modeldepot: keeps generative models available.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

EXIT_CODES: tuple[tuple[type[DepotError], int], ...] = (
    (InvalidInput, 2),
    (NotFound, 3),
    (ConfigError, 4),
    (StorageError, 5),
    (UpstreamError, 6),
    (DepotError, 1),
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file", exists=False)
]


def _fail(exc: DepotError) -> typer.Exit:
    err_console.print(f"[red]error[/red] {exc.code}: {exc.message}")
    code = next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
    return typer.Exit(code)


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
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the service (HTTP API under /api/v1, WebSocket at /ws)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(config, **overrides)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if demo:
        from modeldepot.demo import demo_environment  # imports the test hub: only on demand

        with demo_environment(settings) as env:
            console.print(f"Demo hub at {env.hub_endpoint}; demo data in {env.settings.data_dir}")
            # The demo catalogue is the demo models only: the real ones need the real hub.
            _run(env.settings, entries=env.entries, builtin=False, log_level=log_level)
        return
    _run(settings, entries=(), builtin=True, log_level=log_level)


def _run(
    settings: Settings, *, entries: tuple[CatalogEntry, ...], builtin: bool, log_level: str
) -> None:
    try:
        # Fail fast on a bad catalogue, before binding the port.
        load_entries(settings, entries, include_builtin=builtin)
    except DepotError as exc:
        raise _fail(exc) from exc
    application = create_app(settings, extra_entries=entries, include_builtin=builtin)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=log_level)


@app.command("ls")
def list_models(config: ConfigOption = None) -> None:
    """List catalogue models and their availability."""
    settings = _settings(config)
    try:
        statuses = asyncio.run(_statuses(settings))
    except DepotError as exc:
        raise _fail(exc) from exc
    table = Table("model", "status", "size (MB)", "version", "note")
    for status in statuses:
        table.add_row(
            status.model_id,
            status.availability_status,
            "" if status.size_mb is None else f"{status.size_mb:,.1f}",
            (status.current_version or "")[:12],
            status.source_error or "",
        )
    console.print(table)


async def _statuses(settings: Settings) -> list[ModelStatus]:
    async with open_services(settings, background=False) as services:
        await services.catalog.refresh_all()
        detailed = await services.availability.detailed()
    return list(detailed.models.values())


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
