"""Fallback suggestions from the live state (``fallback/scoring.py`` has the rules).

The strategy, first that applies:

1. ``USE_REQUESTED_MODEL`` (extension): the requested model is available.
2. ``QUEUE_AND_WAIT``: it is downloading (or queued) and its live ETA is within
   ``max_wait_time_minutes`` (any ETA if no limit is given and no alternative is ready).
3. ``ALTERNATIVE_MODEL``: a suggestion is ready now (AVAILABLE, healthy).
4. ``QUEUE_AND_WAIT``: it is downloading, nothing else is ready.
5. ``DOWNLOAD_AND_RETRY``: it is in the catalogue and not downloading (wait: its size over
   the download speed measured over 30 days, when there is one).
6. ``REDUCE_REQUIREMENTS``: some model is ready but the requirements (VRAM, quality,
   speed, resolution) rule it out.
7. ``NO_ALTERNATIVE``.

Each suggestion for an unavailable requested model is also announced on the WebSocket as
``fallback_suggestion`` (the best one).

``features.intelligent_fallback`` off: suggestions are refused (409 ``FEATURE_DISABLED``)
and nothing is announced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio.to_thread

from modeldepot.availability.schemas import ModelStatus
from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.errors import FeatureDisabled
from modeldepot.events import EventBus, FallbackSuggestion
from modeldepot.fallback import scoring
from modeldepot.fallback.gpu import Gpu, detect_gpus
from modeldepot.fallback.schemas import (
    FallbackStrategy,
    GpuReport,
    ScoreParts,
    Suggestion,
    SuggestRequest,
    SuggestResponse,
)

DOWNLOADING = frozenset({"DOWNLOADING", "QUEUED", "VERIFYING", "PAUSED"})
ANNOUNCE_TIMEOUT_S = 30


class FallbackService:
    def __init__(
        self,
        *,
        catalog: CatalogService,
        availability: AvailabilityService,
        bus: EventBus,
        download_speed: Callable[[], Awaitable[float | None]],
        enabled: Callable[[], bool] = lambda: True,
        gpus: Callable[[], list[Gpu] | None] = detect_gpus,
    ) -> None:
        """``download_speed()``: bytes/s measured over recent downloads, or None;
        ``enabled()``: whether ``features.intelligent_fallback`` is on."""
        self._catalog = catalog
        self._availability = availability
        self._bus = bus
        self._download_speed = download_speed
        self._gpus = gpus
        self.enabled = enabled

    async def suggest(self, request: SuggestRequest) -> SuggestResponse:
        """Raises FeatureDisabled: ``features.intelligent_fallback`` is off."""
        if not self.enabled():
            raise FeatureDisabled(
                "Fallback suggestions are switched off (features.intelligent_fallback)"
            )
        requested = self._catalog.entries.get(request.requested_model)
        statuses = await self._availability.all_statuses()
        gpus = await anyio.to_thread.run_sync(self._gpus)  # NVML calls block
        suggestions, ruled_out = self._rank(request, requested, statuses, gpus)
        status = statuses.get(requested.id) if requested else None
        strategy = await self._strategy(request, requested, status, suggestions, ruled_out)
        if status is None or not status.is_available:
            self._announce(request.requested_model, suggestions)
        return SuggestResponse(
            suggestions=suggestions,
            fallback_strategy=strategy,
            requested_model_status=status.availability_status.value if status else None,
            gpus=None
            if gpus is None
            else [GpuReport(name=g.name, total_gb=g.total_gb, free_gb=g.free_gb) for g in gpus],
            note=None
            if gpus is not None
            else "No GPU detected (NVML unavailable): VRAM fit was not scored",
        )

    def _rank(
        self,
        request: SuggestRequest,
        requested: CatalogEntry | None,
        statuses: dict[str, ModelStatus],
        gpus: list[Gpu] | None,
    ) -> tuple[list[Suggestion], bool]:
        """The suggestions, best first, and whether a ready model was ruled out only by
        the requirements."""
        needs = request.requirements
        types = scoring.request_types(requested, needs.model_type)
        sizes = [e.parameters_b for e in self._catalog.entries.values() if e.parameters_b]
        smallest, largest = (min(sizes), max(sizes)) if sizes else (0.0, 0.0)
        memory = None if gpus is None else [(g.total_gb, g.free_gb) for g in gpus]
        wanted_quality = needs.quality or (requested.quality if requested else None)
        wanted_speed = needs.speed or (requested.speed if requested else None)
        requested_seconds = _seconds(statuses.get(requested.id) if requested else None)
        found: list[Suggestion] = []
        ruled_out = False
        for entry in self._catalog.entries.values():
            status = statuses.get(entry.id)
            if entry.id == request.requested_model or status is None:
                continue
            if not scoring.serves(entry, types):
                continue
            needed = scoring.vram_needed(entry, needs.resolution)
            if needs.max_vram_gb is not None and needed is not None and needed > needs.max_vram_gb:
                ruled_out = ruled_out or status.is_available
                continue
            live = _live(status)
            parts = ScoreParts(
                type=1.0,
                quality=scoring.level_term(entry.quality, wanted_quality),
                speed=scoring.level_term(entry.speed, wanted_speed),
                resolution=scoring.resolution_term(entry, needs.resolution),
                vram=scoring.vram_term(needed, memory),
                availability=scoring.availability_term(live),
                health=0.0 if live.corrupted else 1.0,
            )
            extra = (
                {"size": scoring.size_term(entry, smallest, largest)}
                if request.user_preferences.prefer_smaller_models
                else {}
            )
            score = scoring.weighted(parts.model_dump(), extra)
            if status.is_available and min(parts.quality, parts.speed, parts.resolution) < 1:
                ruled_out = True
            found.append(
                Suggestion(
                    suggested_model=entry.id,
                    compatibility_score=score,
                    performance_difference=scoring.performance_difference(
                        entry, live.generation_seconds, requested, requested_seconds
                    ),
                    availability_status=status.availability_status.value,
                    reason=_reason(entry, status, parts, types),
                    estimated_quality_difference=scoring.quality_difference(entry, requested),
                    score_parts=parts,
                    vram_needed_gb=needed,
                    measured_generation_seconds=live.generation_seconds,
                )
            )
        found.sort(key=lambda s: (-s.compatibility_score, s.suggested_model))
        return found, ruled_out

    async def _strategy(
        self,
        request: SuggestRequest,
        requested: CatalogEntry | None,
        status: ModelStatus | None,
        suggestions: list[Suggestion],
        ruled_out: bool,
    ) -> FallbackStrategy:
        name = request.requested_model
        limit = request.user_preferences.max_wait_time_minutes
        ready = next((s for s in suggestions if _ready(s)), None)
        if requested is None or status is None:
            if ready is not None:
                return _alternative(ready, f"{name} is not in the catalogue", can_queue=False)
            return FallbackStrategy(
                strategy_type="NO_ALTERNATIVE",
                recommended_action=f"Add {name} to the catalogue, or ask for a known model",
                estimated_wait_time=None,
                user_message=f"{name} is not in the catalogue and no model can stand in",
                can_queue_request=False,
            )
        if status.is_available:
            return FallbackStrategy(
                strategy_type="USE_REQUESTED_MODEL",
                recommended_action=f"Use {name} now",
                estimated_wait_time=0,
                user_message=f"{name} is available",
                can_queue_request=True,
            )
        eta = _minutes(status.estimated_download_time)
        downloading = status.availability_status.value in DOWNLOADING
        if (
            downloading
            and eta is not None
            and (limit is None or eta <= limit)
            and (limit is not None or ready is None)
        ):
            return _wait(name, eta)
        if ready is not None:
            why = f"{name} is {status.availability_status.value.lower()}"
            return _alternative(ready, why, can_queue=True)
        if downloading:
            return _wait(name, eta)
        if status.availability_status.value != "CORRUPTED" or status.size_bytes:
            wait = await self._download_minutes(status)
            if not ruled_out:
                return FallbackStrategy(
                    strategy_type="DOWNLOAD_AND_RETRY",
                    recommended_action=f"Download {name} (POST /api/v1/models/download/manage)",
                    estimated_wait_time=wait,
                    user_message=f"{name} is not downloaded; no other model is ready to stand in",
                    can_queue_request=True,
                )
        if ruled_out:
            return FallbackStrategy(
                strategy_type="REDUCE_REQUIREMENTS",
                recommended_action="Relax the requirements (VRAM, quality, speed or "
                "resolution): a ready model meets all but those",
                estimated_wait_time=None,
                user_message=f"{name} is not available and the ready models fall short of "
                "the requirements",
                can_queue_request=True,
            )
        return FallbackStrategy(
            strategy_type="NO_ALTERNATIVE",
            recommended_action=f"Repair or download {name}",
            estimated_wait_time=None,
            user_message=f"{name} is not available and no model can stand in",
            can_queue_request=True,
        )

    async def _download_minutes(self, status: ModelStatus) -> float | None:
        speed = await self._download_speed()
        if not speed or not status.size_bytes:
            return None
        return round(status.size_bytes / speed / 60, 1)

    def _announce(self, requested: str, suggestions: list[Suggestion]) -> None:
        if not suggestions:
            return
        best = suggestions[0]
        self._bus.publish(
            FallbackSuggestion(
                requested_model=requested,
                suggested_model=best.suggested_model,
                compatibility_score=best.compatibility_score,
                user_action_required=True,
                timeout_seconds=ANNOUNCE_TIMEOUT_S,
            )
        )


def _live(status: ModelStatus) -> scoring.Live:
    return scoring.Live(
        status=status.availability_status.value,
        progress=(status.download_progress or 0.0) / 100,
        corrupted=status.corruption_detected or status.availability_status.value == "CORRUPTED",
        generation_seconds=_seconds(status),
    )


def _seconds(status: ModelStatus | None) -> float | None:
    return None if status is None else status.average_generation_time


def _ready(suggestion: Suggestion) -> bool:
    return suggestion.availability_status in scoring.READY and suggestion.score_parts.health > 0


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _wait(name: str, eta: float | None) -> FallbackStrategy:
    when = "" if eta is None else f" (about {eta:g} min)"
    start = (
        None if eta is None else (datetime.now(UTC) + timedelta(minutes=eta)).strftime("%H:%M UTC")
    )
    return FallbackStrategy(
        strategy_type="QUEUE_AND_WAIT",
        recommended_action=f"Queue the request for {name} (POST /api/v1/models/fallback/queue)",
        estimated_wait_time=eta,
        user_message=f"{name} is downloading{when}" + (f"; expected at {start}" if start else ""),
        can_queue_request=True,
    )


def _alternative(ready: Suggestion, why: str, *, can_queue: bool) -> FallbackStrategy:
    return FallbackStrategy(
        strategy_type="ALTERNATIVE_MODEL",
        recommended_action=f"Use {ready.suggested_model} immediately",
        estimated_wait_time=None,
        user_message=f"{why}; {ready.suggested_model} is ready "
        f"({ready.estimated_quality_difference.value.replace('_', ' ')} quality)",
        can_queue_request=can_queue,
    )


def _reason(entry: CatalogEntry, status: ModelStatus, parts: ScoreParts, types: set[str]) -> str:
    serves = " and ".join(sorted(types))
    state = {
        "AVAILABLE": "ready now",
        "UPDATE_AVAILABLE": "ready now",
        "DOWNLOADING": f"downloading ({status.download_progress or 0:.0f} %)",
        "CORRUPTED": "installed but corrupted: repair it first",
    }.get(status.availability_status.value, status.availability_status.value.lower())
    notes = []
    if parts.quality < 1:
        notes.append("lower quality than asked")
    if parts.resolution < 1:
        notes.append("not at the requested resolution")
    if parts.vram is not None and parts.vram < 1:
        notes.append("needs more GPU memory than is free")
    extra = f"; {', '.join(notes)}" if notes else ""
    return f"Serves {serves}, {state}{extra}"
