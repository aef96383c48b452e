"""``modeldepot keys create|list|revoke``: API keys, managed on the machine itself.

These commands write the database directly (the service need not run, and the first admin
key can only be made this way); each is one short transaction, safe beside a running
service, which sees a new or revoked key at its next request. Every change is written to
the audit log as ``cli:<user>``. ``create`` prints the key once, as its last line of
output, so a script can take it with ``tail -n 1``; with ``--json`` each command prints one
JSON document and nothing else on stdout.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from modeldepot.auth.audit import AuditLog
from modeldepot.auth.keys import KeyStore, Role, validate_key_name
from modeldepot.cli.exits import Problem, fail
from modeldepot.db import open_database
from modeldepot.demo import demo_data_dir
from modeldepot.errors import DepotError
from modeldepot.settings import Settings

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys: needed by every client when the service runs with auth_required.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file", exists=False)
]
DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo", help="The keys of `modeldepot serve --demo`, which keeps its own database"
    ),
]


def _run(config: Path | None, demo: bool, work: Callable[[KeyStore, AuditLog], Awaitable[T]]) -> T:
    try:
        settings = Settings.load(config_file=config)
        if demo:
            settings = settings.model_copy(
                update={"data_dir": demo_data_dir(settings), "database_url": None}
            )
        return asyncio.run(_with_store(settings, work))
    except DepotError as exc:
        raise fail(Problem.of(exc), console=err_console) from exc


async def _with_store(settings: Settings, work: Callable[[KeyStore, AuditLog], Awaitable[T]]) -> T:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(
        settings.resolved_database_url, schema=settings.database_schema
    ) as sessions:
        return await work(KeyStore(sessions), AuditLog(sessions))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by")],
    role: Annotated[
        Role, typer.Option(help="read: sees; user: also downloads and checks; admin: all")
    ] = Role.user,
    config: ConfigOption = None,
    demo: DemoOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='{"name", "role", "key"}: the key shown this once')
    ] = False,
) -> None:
    """Create a key and print it once (its last line of output is the key)."""
    try:
        validate_key_name(name)
    except DepotError as exc:
        raise fail(Problem.of(exc), console=err_console) from exc

    async def work(keys: KeyStore, audit: AuditLog) -> str:
        _, key = await keys.create(name, role)
        await audit.record(
            actor=_actor(), role=None, client=None, action="keys create", target=name, status=0
        )
        return key

    key = _run(config, demo, work)
    if as_json:
        typer.echo(json.dumps({"name": name, "role": role.value, "key": key}))
        return
    console.print(
        f"Created API key '{name}' with the role {role.value}. It is shown this once: "
        "store it now (clients send it as Authorization: Bearer <key>).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(key)


@keys_app.command("list")
def list_keys(
    config: ConfigOption = None,
    demo: DemoOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts")] = False,
) -> None:
    """The keys (never their secrets), with when each was created and last used."""

    async def work(keys: KeyStore, _audit: AuditLog) -> list[dict[str, str | None]]:
        return [
            {
                "name": key.name,
                "role": key.role.value,
                "key_id": key.key_id,
                "created_at": key.created_at.isoformat(timespec="seconds"),
                "last_used_at": key.last_used_at.isoformat(timespec="seconds")
                if key.last_used_at
                else None,
            }
            for key in await keys.all()
        ]

    rows = _run(config, demo, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("name", "role", "key id", "created (UTC)", "last used (UTC)")
    for column in table.columns:  # a name must stay whole, to be copied into `revoke`
        column.overflow = "fold"
    for row in rows:
        table.add_row(*(value or "never" for value in row.values()))
    console.print(table)
    if not rows:
        console.print("No API keys yet: modeldepot keys create NAME --role admin", markup=False)


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name")],
    config: ConfigOption = None,
    demo: DemoOption = False,
    as_json: Annotated[bool, typer.Option("--json", help='{"name", "revoked": true}')] = False,
) -> None:
    """Revoke a key: the service refuses it from its next request on (an open WebSocket
    within seconds)."""

    async def work(keys: KeyStore, audit: AuditLog) -> None:
        await keys.revoke(name)
        await audit.record(
            actor=_actor(), role=None, client=None, action="keys revoke", target=name, status=0
        )

    _run(config, demo, work)
    if as_json:
        typer.echo(json.dumps({"name": name, "revoked": True}))
        return
    console.print(f"Revoked API key '{name}'.", markup=False, highlight=False)
