"""What a generation app reports (``POST /models/usage``, an extension of the seed).

An app reports, per model: a generation started, completed (with its duration) or failed,
and the model loaded or unloaded. Every event carries an ``event_id`` the app chooses
(a UUID, say): sending the same event again (a retry after a time-out) changes nothing.
Validation is strict: unknown fields, wrong types ("5" for 5) and values outside their
documented range are refused, and nothing of a refused batch is stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)
from pydantic.config import JsonDict

from modeldepot.bounds import StrictFloat, whole_number
from modeldepot.ids import ModelId

EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
MAX_EVENTS_PER_BATCH = 1000


class UsageEventType(StrEnum):
    generation_started = "generation_started"
    generation_completed = "generation_completed"
    generation_failed = "generation_failed"
    model_loaded = "model_loaded"
    model_unloaded = "model_unloaded"


GENERATIONS = frozenset({UsageEventType.generation_completed, UsageEventType.generation_failed})
"""The events that count as a use: a generation that ended, well or not."""


Steps = Annotated[
    int,
    Field(ge=1, le=10_000, description="Sampling steps, 1 to 10,000"),
    Strict(),
    BeforeValidator(whole_number),
]
Frames = Annotated[
    int,
    Field(ge=1, le=100_000, description="Video frames, 1 to 100,000"),
    Strict(),
    BeforeValidator(whole_number),
]


class GenerationParameters(BaseModel):
    """What the generation was asked for (all optional)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    resolution: str | None = Field(
        default=None, pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$", examples=["1280x720"]
    )
    steps: Steps | None = None
    frames: Frames | None = None
    guidance_scale: StrictFloat | None = Field(default=None, ge=0, le=100)


_RULES: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "generation_completed"}}, "required": ["type"]},
            "then": {
                "required": ["duration_seconds"],
                "properties": {"duration_seconds": {"not": {"type": "null"}}},
            },
        },
        {
            "if": {
                "properties": {"type": {"enum": ["model_loaded", "model_unloaded"]}},
                "required": ["type"],
            },
            "then": {
                "properties": {
                    "duration_seconds": {"type": "null"},
                    "parameters": {"type": "null"},
                }
            },
        },
    ]
}
"""The rules between fields, published in the schema too (for clients and fuzzers)."""


class UsageEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_RULES)

    event_id: str = Field(
        pattern=EVENT_ID_PATTERN,
        description="Chosen by the app, unique per event (e.g. a UUID): a repeat is ignored",
    )
    model_id: ModelId
    type: UsageEventType
    at: AwareDatetime | None = Field(
        default=None,
        description="When it happened, with a time zone (default: when received; a time "
        "ahead of the service's clock is taken as the time received)",
    )
    client: str = Field(
        default="default",
        pattern=EVENT_ID_PATTERN,
        description="Which app instance reports (a model is loaded while any client has it loaded)",
    )
    duration_seconds: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=7 * 86_400,
        description="The generation's wall time, seconds (0 to a week); required for "
        "generation_completed",
    )
    parameters: GenerationParameters | None = None
    peak_vram_gb: StrictFloat | None = Field(
        default=None, ge=0, le=4096, description="Peak GPU memory of the generation, GB"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type is UsageEventType.generation_completed and self.duration_seconds is None:
            raise ValueError("generation_completed needs duration_seconds")
        if self.type in (UsageEventType.model_loaded, UsageEventType.model_unloaded) and (
            self.duration_seconds is not None or self.parameters is not None
        ):
            raise ValueError(f"{self.type.value} takes no duration_seconds or parameters")
        return self


class UsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class UsageReportResult(BaseModel):
    success: bool
    accepted: int = Field(description="Events stored now")
    duplicates: int = Field(description="Events already stored (same event_id): ignored")
