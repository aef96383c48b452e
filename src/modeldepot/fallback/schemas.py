"""``POST /models/fallback/suggest``: the seed's request and answer, with documented
extensions (``requirements.resolution``, ``requirements.max_vram_gb``; per suggestion the
score's parts; the GPUs considered)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from modeldepot.bounds import StrictFloat
from modeldepot.catalog.schemas import Level
from modeldepot.ids import ModelId

RESOLUTION_PATTERN = r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$"


class Requirements(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality: Level | None = Field(default=None, description="low, medium or high")
    speed: Level | None = Field(default=None, description="low, medium or high")
    model_type: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{0,63}$",
        description="The request type to serve: text-to-video, image-to-video, ... "
        "(default: the requested model's)",
    )
    resolution: str | None = Field(
        default=None, pattern=RESOLUTION_PATTERN, description="WIDTHxHEIGHT (extension)"
    )
    max_vram_gb: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=4096,
        description="GPU memory the generation may use, GB, above 0 to 4096 (extension)",
    )


class UserPreferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefer_smaller_models: StrictBool = False
    max_wait_time_minutes: StrictFloat | None = Field(
        default=None, ge=0, le=10_080, description="0 to 10,080 (a week)"
    )


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requested_model: ModelId
    requirements: Requirements = Field(default_factory=Requirements)
    user_preferences: UserPreferences = Field(default_factory=UserPreferences)


class QualityDifference(StrEnum):
    MUCH_HIGHER = "much_higher"
    HIGHER = "higher"
    SIMILAR = "similar"
    SLIGHTLY_LOWER = "slightly_lower"
    LOWER = "lower"  # (member names upper case: str has a lower())
    MUCH_LOWER = "much_lower"


class ScoreParts(BaseModel):
    """Each term of the compatibility score, 0 to 1 (null: left out, see ``note``)."""

    type: float
    quality: float
    speed: float
    resolution: float
    vram: float | None
    availability: float
    health: float


class Suggestion(BaseModel):
    suggested_model: str
    compatibility_score: float = Field(description="0 to 1, the weighted mean of score_parts")
    performance_difference: float = Field(
        description="How much faster than the requested model, as a fraction (+0.2: 20 % "
        "faster); from measured generation times when both have them, else from the "
        "speed levels"
    )
    availability_status: str
    reason: str
    estimated_quality_difference: QualityDifference
    # --- extensions -------------------------------------------------------------------
    score_parts: ScoreParts
    vram_needed_gb: float | None
    measured_generation_seconds: float | None


StrategyType = Literal[
    "USE_REQUESTED_MODEL",
    "ALTERNATIVE_MODEL",
    "QUEUE_AND_WAIT",
    "DOWNLOAD_AND_RETRY",
    "REDUCE_REQUIREMENTS",
    "NO_ALTERNATIVE",
]


class FallbackStrategy(BaseModel):
    strategy_type: StrategyType = Field(
        description="USE_REQUESTED_MODEL (an extension: it is available) or the seed's"
    )
    recommended_action: str
    estimated_wait_time: float | None = Field(
        description="Minutes until the requested model is available, from its live "
        "download (or, not downloading, its size over the measured download speed); null: "
        "no basis to say"
    )
    user_message: str
    can_queue_request: bool


class GpuReport(BaseModel):
    name: str
    total_gb: float
    free_gb: float


class SuggestResponse(BaseModel):
    suggestions: list[Suggestion]
    fallback_strategy: FallbackStrategy
    # --- extensions -------------------------------------------------------------------
    requested_model_status: str | None = Field(description="null: not in the catalogue")
    gpus: list[GpuReport] | None = Field(
        description="The GPUs considered for VRAM fit; null: none detected (NVML missing), "
        "the VRAM term left out"
    )
    note: str | None = None
