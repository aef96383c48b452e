"""How well a catalogue model can stand in for the one requested: pure and deterministic.

**Who may serve.** A candidate must serve every request type asked for: the requirement's
``model_type``, else the requested model's own types (its ``capabilities``, else its
``model_type``). ``text-image-to-video`` models list both ``text-to-video`` and
``image-to-video``, so they can serve either; a text-to-video model cannot serve an
image-to-video request. The requested model itself, a model that cannot serve the request,
and one needing more VRAM than ``requirements.max_vram_gb`` are never suggested.

**Score** (0 to 1): the weighted mean of terms, each 0 to 1 (:data:`WEIGHTS`):

- ``type`` 1.0 (a candidate that serves the request);
- ``quality``: 1.0 at or above the level asked for (default: the requested model's), 0.5
  one level under, 0 two under;
- ``speed``: the same for speed;
- ``resolution``: 1.0 if the candidate lists the requested resolution (or none was
  asked), 0.5 if it has one of the same orientation, 0 otherwise;
- ``vram``: with GPUs detected, 1.0 if the VRAM it needs at that resolution fits the
  largest GPU's free memory (or its total, when nothing is loaded), 0.5 if only its total,
  0 otherwise; without GPUs the term is left out (null);
- ``availability``: AVAILABLE or UPDATE_AVAILABLE 1.0; VERIFYING 0.8; DOWNLOADING
  0.3 + 0.4 x progress; QUEUED or PAUSED 0.3; PARTIAL, MISSING or FAILED 0.1; CORRUPTED 0;
- ``health``: 1.0, or 0 for a model whose last check found it corrupted.

``prefer_smaller_models`` adds a ``size`` term (weight 0.1): 1.0 for the smallest
candidate by parameter count, down to 0 for the largest. Ties are broken by model id.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldepot.catalog.schemas import CatalogEntry, Level

WEIGHTS = {
    "type": 0.25,
    "quality": 0.2,
    "speed": 0.1,
    "resolution": 0.1,
    "vram": 0.1,
    "availability": 0.2,
    "health": 0.05,
}
SIZE_WEIGHT = 0.1
LEVELS = {Level.low: 0, Level.medium: 1, Level.high: 2}
READY = frozenset({"AVAILABLE", "UPDATE_AVAILABLE"})


@dataclass(frozen=True)
class Live:
    """What is true of a candidate now."""

    status: str
    progress: float  # 0 to 1, of a download under way
    corrupted: bool
    generation_seconds: float | None  # measured mean, from usage analytics


def request_types(entry: CatalogEntry | None, model_type: str | None) -> set[str]:
    if model_type:
        return {model_type}
    if entry is None:
        return set()
    return set(entry.capabilities) or {entry.model_type}


def serves(candidate: CatalogEntry, types: set[str]) -> bool:
    offered = set(candidate.capabilities) | {candidate.model_type}
    return bool(types) and types <= offered


def vram_needed(entry: CatalogEntry, resolution: str | None) -> float | None:
    """At the requested resolution if the catalogue says, else the least it needs."""
    if resolution and resolution in entry.vram_gb:
        return entry.vram_gb[resolution]
    if entry.min_vram_gb is not None:
        return entry.min_vram_gb
    return min(entry.vram_gb.values(), default=None)


def level_term(offered: Level, wanted: Level | None) -> float:
    if wanted is None:
        return 1.0
    gap = LEVELS[wanted] - LEVELS[offered]
    return 1.0 if gap <= 0 else (0.5 if gap == 1 else 0.0)


def resolution_term(entry: CatalogEntry, resolution: str | None) -> float:
    if resolution is None or resolution in entry.resolutions:
        return 1.0
    portrait = _portrait(resolution)
    return 0.5 if any(_portrait(r) == portrait for r in entry.resolutions) else 0.0


def _portrait(resolution: str) -> bool:
    width, _, height = resolution.partition("x")
    return int(height) > int(width)


def vram_term(needed: float | None, gpus: list[tuple[float, float]] | None) -> float | None:
    """``gpus``: (total, free) GB of each; None: no GPU detected (term left out)."""
    if gpus is None:
        return None
    if needed is None:
        return 1.0
    if any(free >= needed for _total, free in gpus):
        return 1.0
    return 0.5 if any(total >= needed for total, _free in gpus) else 0.0


def availability_term(live: Live) -> float:
    if live.status in READY:
        return 1.0
    if live.status == "VERIFYING":
        return 0.8
    if live.status == "DOWNLOADING":
        return 0.3 + 0.4 * live.progress
    if live.status in ("QUEUED", "PAUSED"):
        return 0.3
    return 0.0 if live.status == "CORRUPTED" else 0.1


def weighted(parts: dict[str, float | None], extra: dict[str, float]) -> float:
    total = weight = 0.0
    for name, value in parts.items():
        if value is not None:
            total += WEIGHTS[name] * value
            weight += WEIGHTS[name]
    for value in extra.values():
        total += SIZE_WEIGHT * value
        weight += SIZE_WEIGHT
    return round(total / weight, 3) if weight else 0.0


def size_term(entry: CatalogEntry, smallest: float, largest: float) -> float:
    size = entry.parameters_b
    if size is None or largest <= smallest:
        return 1.0
    return round(1 - (size - smallest) / (largest - smallest), 3)


def quality_difference(candidate: CatalogEntry, requested: CatalogEntry | None) -> str:
    """From the relative quality scores (else the levels): within 0.05 ``similar``, up to
    0.15 ``slightly_lower`` / ``higher``, up to 0.3 ``lower`` / ``higher``, beyond
    ``much_lower`` / ``much_higher``."""
    if requested is None:
        return "similar"
    mine, theirs = _quality(candidate), _quality(requested)
    gap = mine - theirs
    if abs(gap) <= 0.05:
        return "similar"
    if gap > 0:
        return "higher" if gap <= 0.3 else "much_higher"
    if gap >= -0.15:
        return "slightly_lower"
    return "lower" if gap >= -0.3 else "much_lower"


def _quality(entry: CatalogEntry) -> float:
    if entry.quality_score is not None:
        return entry.quality_score
    return {Level.low: 0.4, Level.medium: 0.7, Level.high: 0.9}[entry.quality]


def performance_difference(
    candidate: CatalogEntry,
    candidate_seconds: float | None,
    requested: CatalogEntry | None,
    requested_seconds: float | None,
) -> float:
    """How much faster the candidate is, as a fraction: measured times when both exist,
    else 0.25 per speed level."""
    if candidate_seconds and requested_seconds:
        return round(requested_seconds / candidate_seconds - 1, 3)
    if requested is None:
        return 0.0
    return 0.25 * (LEVELS[candidate.speed] - LEVELS[requested.speed])
