"""``modeldepot health|check|repair``: proving a model's bytes are right, and mending
them, through the running service (see ``cli/service.py``)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import typer

from modeldepot.cli.options import (
    ConfigOption,
    JsonOption,
    LimitOption,
    ModelArgument,
    OptionalModelArgument,
    PageOption,
    UrlOption,
)
from modeldepot.cli.output import cell, fields, fields_of, line, table
from modeldepot.cli.service import ask, console, emit
from modeldepot.client import Client, WaitTimeout
from modeldepot.health.repair import RepairResponse, RepairType
from modeldepot.health.schemas import (
    CheckType,
    HealthCheckPublic,
    HealthCheckStarted,
    HealthResponse,
)

CHECK_POLL_S = 0.2  # a check's verdict has no event of its own: --wait asks this often
CHECK_FIELDS = (
    "check_id", "model_id", "check_type", "status", "overall_health", "integrity_score",
    "performance_score", "commit", "started_at", "finished_at", "error", "recommendations",
)  # fmt: skip


class CheckKind(StrEnum):
    """What ``check --type`` offers; ``quick`` is the API's ``integrity``."""

    quick = "quick"
    full = "full"
    performance = "performance"

    @property
    def api_type(self) -> CheckType:
        return API_CHECK_TYPES[self]


API_CHECK_TYPES: dict[CheckKind, CheckType] = {
    CheckKind.quick: "integrity",
    CheckKind.full: "full",
    CheckKind.performance: "performance",
}


def health(
    model_id: OptionalModelArgument = None,
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """The health verdict of a model, or a page of every model's and the system's."""
    if model_id is not None:
        one = ask(config, url, lambda c: c.model_health(model_id))
        emit(one, as_json=as_json, render=_health)
        return
    listing = ask(config, url, lambda c: c.health(page=page, limit=limit))
    emit(listing, as_json=as_json, render=_health)


def _health(answer: HealthResponse) -> None:
    table(
        console,
        ("model", "health", "integrity", "performance", "last check", "issues"),
        (
            (
                m.model_id,
                m.overall_health,
                m.integrity_score,
                m.performance_score,
                m.last_check,
                [f"{issue.path}: {issue.kind}" for issue in m.issues],
            )
            for m in answer.models.values()
        ),
    )
    system = answer.system_health
    line(
        console,
        f"Score {cell(system.overall_score)}: {system.healthy_models} healthy, "
        f"{system.degraded_models} degraded, {system.corrupted_models} corrupted.",
    )
    for model in answer.models.values():
        for recommendation in model.recommendations:
            line(console, f"{model.model_id}: {recommendation}")


def check(
    model_id: ModelArgument,
    kind: Annotated[
        CheckKind,
        typer.Option(
            "--type",
            help="quick: sizes, and hashes of files changed since the last check; "
            "full: every byte hashed; performance: read speed and headers",
        ),
    ] = CheckKind.quick,
    force: Annotated[bool, typer.Option(help="Hash every file even if unchanged")] = False,
    wait: Annotated[
        bool, typer.Option(help="Wait for the verdict and show it (else: the check's id)")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait waits at most")] = 3600,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Check a model's files in the service's background; --wait for the verdict."""

    def run(client: Client) -> HealthCheckStarted | HealthCheckPublic:
        started = client.check(model_id, check_type=kind.api_type, force=force)
        return _verdict(client, started, timeout) if wait else started

    answer = ask(config, url, run)
    if isinstance(answer, HealthCheckStarted):
        emit(answer, as_json=as_json, render=_check_started)
    else:
        emit(answer, as_json=as_json, render=_check_record)


def _verdict(client: Client, started: HealthCheckStarted, timeout: float) -> HealthCheckPublic:
    """The check once it ended. Raises: WaitTimeout after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (record := client.get_check(started.check_id)).status.is_terminal:
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"Check {started.check_id} did not end within {timeout:g} s: see it later "
                f"with `modeldepot show {started.check_id}`"
            )
        time.sleep(CHECK_POLL_S)
    return record


def _check_started(answer: HealthCheckStarted) -> None:
    line(
        console,
        f"Check {answer.check_id} started, expected to end by "
        f"{cell(answer.estimated_completion)} UTC: see its verdict with "
        f"`modeldepot show {answer.check_id}` (or check with --wait).",
    )


def _check_record(record: HealthCheckPublic) -> None:
    fields_of(console, record, CHECK_FIELDS)
    if record.issues:
        issues = ((issue.path, issue.kind, issue.detail) for issue in record.issues)
        table(console, ("file", "problem", "detail"), issues)


def repair(
    model_id: ModelArgument,
    kind: Annotated[
        RepairType,
        typer.Option(
            "--type",
            help="auto: re-fetch only bad files; redownload: every file; integrity_fix: "
            "no network, re-link what verifies",
        ),
    ] = "auto",
    force: Annotated[
        bool, typer.Option(help="Verify every byte first (else: a quick check)")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Repair a model: verify, re-fetch what is bad, verify again."""
    answer = ask(config, url, lambda c: c.repair(model_id, repair_type=kind, force=force))
    emit(answer, as_json=as_json, render=lambda a: _repaired(model_id, a))


def _repaired(model_id: str, answer: RepairResponse) -> None:
    line(
        console, f"Repair {answer.repair_id}: {'; '.join(answer.actions_taken) or 'nothing to do'}."
    )
    fields(console, (("files", answer.files), ("download", answer.download_id)))
    if answer.download_id:
        line(console, f"Follow it with `modeldepot progress {model_id}`.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    for command in (health, check, repair):
        app.command()(command)
