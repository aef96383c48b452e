"""``modeldepot storage|cleanup|cleanup-candidates|pin|unpin|pins``: the disk the models
take, and giving it back, through the running service (see ``cli/service.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldepot.api.routes.storage import StoragePage
from modeldepot.cleanup.schemas import CleanupRecommendations, CleanupResult, Pin, PinList
from modeldepot.cli.options import (
    ConfigOption,
    JsonOption,
    LimitOption,
    ModelArgument,
    PageOption,
    UrlOption,
)
from modeldepot.cli.output import fields_of, line, page_note, table
from modeldepot.cli.service import ask, console, emit
from modeldepot.units import MB

SUMMARY_FIELDS = (
    "models_directory", "total_capacity_gb", "used_space_gb", "available_space_gb",
    "usage_percent", "models_count", "disk_free_gb", "quota_gb", "reserve_gb",
)  # fmt: skip

UnusedDaysOption = Annotated[
    int | None,
    typer.Option(min=0, max=3650, help="Keep models used in the last N days (auto default: 30)"),
]


def storage(
    page: PageOption = 1,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Capacity, each model's size, unmanaged repositories, what cleanup could free."""
    answer = ask(config, url, lambda c: c.storage(page=page, limit=limit))
    emit(answer, as_json=as_json, render=_storage)


def _storage(answer: StoragePage) -> None:
    fields_of(console, answer.storage_summary, SUMMARY_FIELDS)
    table(
        console,
        ("model", "size (GB)", "tier", "last used", "uses/day", "pinned"),
        (
            (m.model_id, m.size_gb, m.storage_tier, m.last_accessed, m.usage_frequency, m.pinned)
            for m in answer.models_storage
        ),
    )
    page_note(console, answer.pagination, "models")
    if answer.unmanaged_repositories:
        line(console, "Not in the catalogue (never touched):")
        table(
            console,
            ("repository", "type", "size (GB)"),
            ((r.repo_id, r.repo_type, r.size_gb) for r in answer.unmanaged_repositories),
        )
    suggestions = answer.cleanup_suggestions
    if suggestions.candidates:
        line(
            console,
            f"Cleanup could free {suggestions.potential_savings_gb:,.3f} GB: "
            f"{', '.join(suggestions.candidates)} (see `modeldepot cleanup-candidates`).",
        )


def cleanup(
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            metavar="MODEL[,MODEL...]",
            help="Remove these models (a manual cleanup; repeat or separate with commas). "
            "Without: every model unused long enough (an automatic cleanup)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing")
    ] = False,
    min_unused_days: UnusedDaysOption = None,
    keep_frequent: Annotated[
        bool | None,
        typer.Option(
            "--keep-frequent/--no-keep-frequent",
            help="Keep models used at least daily (auto default: keep)",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Remove unused models, or the ones named (never a protected one).

    Pinned, loaded, downloading and waited-for models are never removed.
    """
    named = [name.strip() for value in models or () for name in value.split(",") if name.strip()]
    answer = ask(
        config,
        url,
        lambda c: c.cleanup(
            "manual" if named else "auto",
            models_to_remove=named or None,
            min_unused_days=min_unused_days,
            preserve_frequently_used=keep_frequent,
            dry_run=dry_run,
        ),
    )
    emit(answer, as_json=as_json, render=_cleaned)


def _cleaned(result: CleanupResult) -> None:
    verb = "Would remove" if result.dry_run else "Removed"
    removed = ", ".join(result.models_removed) or "nothing"
    line(
        console,
        f"{verb} {removed}: {result.space_freed_gb:,.3f} GB "
        f"{'to free' if result.dry_run else 'freed'} (cleanup {result.cleanup_id}).",
    )
    table(
        console,
        ("model", "outcome", "reason", "size (MB)", "last used"),
        (
            (d.model_id, d.outcome, d.reason, d.size_bytes / MB, d.last_used)
            for d in result.decisions
        ),
    )


def cleanup_candidates(
    min_unused_days: UnusedDaysOption = None,
    threshold_gb: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1_000_000,
            help="Only enough models (least recently used first) to get under this many GB",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Models worth removing, from real usage, and the ones that are protected."""
    answer = ask(
        config,
        url,
        lambda c: c.cleanup_recommendations(
            storage_threshold_gb=threshold_gb, min_unused_days=min_unused_days
        ),
    )
    emit(answer, as_json=as_json, render=_candidates)


def _candidates(answer: CleanupRecommendations) -> None:
    table(
        console,
        ("model", "action", "confidence", "size (MB)", "idle since", "uses", "reason"),
        (
            (r.model_id, r.action, r.confidence, r.size_mb, r.idle_since, r.usage_count, r.reason)
            for r in answer.recommendations
        ),
    )
    line(
        console,
        f"Removing them would free {answer.potential_savings_gb:,.3f} GB "
        f"(now {answer.current_usage_gb:,.3f} GB used).",
    )
    for protected in answer.protected:
        line(console, f"Protected: {protected.model_id} ({protected.reason})")


def pin(
    model_id: ModelArgument,
    reason: Annotated[str | None, typer.Option(help="Why (shown in `modeldepot pins`)")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Pin a model: never a cleanup candidate, never evicted for the quota."""
    answer = ask(config, url, lambda c: c.pin(model_id, reason=reason))
    emit(answer, as_json=as_json, render=_pinned)


def _pinned(pin: Pin) -> None:
    why = f" ({pin.reason})" if pin.reason else ""
    line(console, f"Pinned {pin.model_id}{why}.")


def unpin(
    model_id: ModelArgument,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Unpin a model (whether or not it was pinned).

    With --json it prints nothing: the API answers 204 No Content.
    """
    ask(config, url, lambda c: c.unpin(model_id))
    if not as_json:
        line(console, f"Unpinned {model_id}.")


def pins(
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Pinned models."""
    emit(ask(config, url, lambda c: c.pins()), as_json=as_json, render=_pins)


def _pins(answer: PinList) -> None:
    table(
        console,
        ("model", "pinned at", "reason"),
        ((p.model_id, p.pinned_at, p.reason) for p in answer.pins),
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(storage)
    app.command()(cleanup)
    app.command("cleanup-candidates")(cleanup_candidates)
    app.command()(pin)
    app.command()(unpin)
    app.command()(pins)
