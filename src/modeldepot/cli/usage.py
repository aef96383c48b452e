"""``modeldepot analytics|performance|suggest``: what the models are used for, how they
perform, and what to use instead of one that is not there, through the running service
(see ``cli/service.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from modeldepot.analytics.performance import PerformanceResponse
from modeldepot.catalog.schemas import Level
from modeldepot.cli.options import (
    ConfigOption,
    JsonOption,
    ModelArgument,
    OptionalModelArgument,
    UrlOption,
)
from modeldepot.cli.output import cell, line, table
from modeldepot.cli.service import ask, console, emit
from modeldepot.fallback.schemas import SuggestResponse
from modeldepot.usage.analytics import AnalyticsResponse, Period


def analytics(
    model_id: OptionalModelArgument = None,
    period: Annotated[
        Period | None,
        typer.Option(help="The last day, week, month (the default) or year, to today (UTC)"),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="First UTC day"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last UTC day"),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Usage of every model, or one: uses, generation time, success rate, busiest hours."""
    first = None if start is None else start.date()
    last = None if end is None else end.date()
    if model_id is not None:
        answer = ask(
            config,
            url,
            lambda c: c.model_analytics(model_id, period=period, start_date=first, end_date=last),
        )
    else:
        answer = ask(
            config, url, lambda c: c.analytics(period=period, start_date=first, end_date=last)
        )
    emit(answer, as_json=as_json, render=_analytics)


def _analytics(answer: AnalyticsResponse) -> None:
    table(
        console,
        (
            "model",
            "uses",
            "uses/day",
            "avg time (s)",
            "success",
            "failed",
            "last used",
            "peak hours",
        ),
        (
            (
                m.model_id,
                m.total_uses,
                m.uses_per_day,
                m.average_generation_time,
                m.success_rate,
                m.failed,
                m.last_used,
                m.peak_usage_hours,
            )
            for m in answer.models.values()
        ),
    )
    summary, span = answer.summary, answer.range
    line(
        console,
        f"{span.start_date} to {span.end_date} ({span.days} days, {span.time_zone}): "
        f"{summary.total_generations} generations on {summary.total_models_used} models; "
        f"most used {cell(summary.most_used_model)}.",
    )


def performance(
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Generation-time trends per model, and the system's download and check record."""
    emit(ask(config, url, lambda c: c.performance()), as_json=as_json, render=_performance)


def _performance(answer: PerformanceResponse) -> None:
    table(
        console,
        ("model", "score", "trend", "7-day avg (s)", "30-day avg (s)", "health", "issues"),
        (
            (
                model_id,
                p.current_score,
                p.trend,
                p.last_7_days_avg,
                p.last_30_days_avg,
                p.overall_health,
                p.performance_issues,
            )
            for model_id, p in answer.performance_trends.items()
        ),
    )
    system = answer.system_performance
    line(
        console,
        f"Last {system.window_days} days: score {cell(system.overall_score)}, "
        f"{system.downloads_completed} downloads completed, {system.downloads_failed} failed, "
        f"{system.health_checks} health checks.",
    )


def suggest(
    model_id: ModelArgument,
    quality: Annotated[Level | None, typer.Option(help="Quality needed")] = None,
    speed: Annotated[Level | None, typer.Option(help="Speed needed")] = None,
    model_type: Annotated[
        str | None, typer.Option(help="Request type, e.g. text-to-video (default: the model's)")
    ] = None,
    resolution: Annotated[str | None, typer.Option(metavar="WxH", help="e.g. 1280x720")] = None,
    max_vram_gb: Annotated[
        float | None, typer.Option(help="GPU memory the generation may use, GB")
    ] = None,
    prefer_smaller: Annotated[bool, typer.Option(help="Prefer smaller models")] = False,
    max_wait: Annotated[
        float | None, typer.Option(metavar="MINUTES", help="The longest acceptable wait")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Models that can stand in for MODEL now, best first, and what to do."""
    requirements = {
        "quality": quality,
        "speed": speed,
        "model_type": model_type,
        "resolution": resolution,
        "max_vram_gb": max_vram_gb,
    }
    preferences = {"prefer_smaller_models": prefer_smaller, "max_wait_time_minutes": max_wait}
    answer = ask(
        config,
        url,
        lambda c: c.suggest(
            model_id,
            requirements={k: v for k, v in requirements.items() if v is not None},
            user_preferences={k: v for k, v in preferences.items() if v is not None},
        ),
    )
    emit(answer, as_json=as_json, render=_suggestions)


def _suggestions(answer: SuggestResponse) -> None:
    table(
        console,
        ("model", "score", "status", "quality", "reason"),
        (
            (
                s.suggested_model,
                s.compatibility_score,
                s.availability_status,
                s.estimated_quality_difference,
                s.reason,
            )
            for s in answer.suggestions
        ),
    )
    strategy = answer.fallback_strategy
    line(console, f"{strategy.strategy_type}: {strategy.user_message}")
    line(console, f"Recommended: {strategy.recommended_action}")
    if answer.note:
        line(console, answer.note)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(analytics)
    app.command()(performance)
    app.command()(suggest)
