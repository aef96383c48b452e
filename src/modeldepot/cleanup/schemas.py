"""The seed's cleanup resources (``GET /models/analytics/cleanup``, ``POST /models/cleanup``)
and the pins extension.

Sizes: the seed's ``*_gb`` / ``size_mb`` in 10^9 / 10^6 bytes; the ``*_bytes`` extensions
give them exactly. A size is what the model's repository folder holds (apparent sizes);
space *freed* is allocated bytes given back to the file system.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    model_validator,
)
from pydantic.config import JsonDict

from modeldepot.bounds import whole_number
from modeldepot.ids import ModelId

CLEANUP_ID_PATTERN = r"^cleanup_[0-9a-f]{16}$"
MAX_MODELS_PER_CLEANUP = 1000

UnusedDays = Annotated[
    int,
    Field(ge=0, le=3650, description="Days, 0 to 3650"),
    Strict(),
    BeforeValidator(whole_number),
]


class CleanupType(StrEnum):
    auto = "auto"
    manual = "manual"


_RULES: JsonDict = {
    "allOf": [
        {
            "if": {
                "properties": {"cleanup_type": {"const": "manual"}},
                "required": ["cleanup_type"],
            },
            "then": {
                "required": ["models_to_remove"],
                "properties": {"models_to_remove": {"minItems": 1}},
            },
        },
        {
            "if": {"properties": {"cleanup_type": {"const": "auto"}}, "required": ["cleanup_type"]},
            "then": {"properties": {"models_to_remove": {"maxItems": 0}}},
        },
    ]
}
"""The rules between fields, published in the schema too (for clients and fuzzers)."""


class CleanupRequest(BaseModel):
    """``auto``: every model unused for ``min_unused_days`` (default 30) that is not
    protected, keeping frequently used ones unless ``preserve_frequently_used`` is false.
    ``manual``: the models of ``models_to_remove``; ``min_unused_days`` and
    ``preserve_frequently_used`` then apply only when given. Protected models (pinned,
    loaded, downloading or queued, waited for) are never removed either way."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_RULES)

    cleanup_type: CleanupType
    models_to_remove: list[ModelId] = Field(
        default_factory=list,
        max_length=MAX_MODELS_PER_CLEANUP,
        json_schema_extra={"uniqueItems": True},
        description="manual only: catalogue ids (1 to 1000, no repeats)",
    )
    min_unused_days: UnusedDays | None = Field(
        default=None, description="Keep models used in the last N days (auto default: 30)"
    )
    preserve_frequently_used: StrictBool | None = Field(
        default=None,
        description="Keep models used at least once a day on average over the last 30 days "
        "(auto default: true)",
    )
    dry_run: StrictBool = Field(
        default=False,
        description="Answer exactly what the same request would remove, removing nothing",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.cleanup_type is CleanupType.manual and not self.models_to_remove:
            raise ValueError("a manual cleanup names models_to_remove")
        if self.cleanup_type is CleanupType.auto and self.models_to_remove:
            raise ValueError("models_to_remove is for manual cleanups")
        if len(set(self.models_to_remove)) != len(self.models_to_remove):
            raise ValueError("models_to_remove names a model twice")
        return self

    @property
    def unused_days(self) -> int:
        if self.min_unused_days is not None:
            return self.min_unused_days
        return 30 if self.cleanup_type is CleanupType.auto else 0

    @property
    def keep_frequent(self) -> bool:
        if self.preserve_frequently_used is not None:
            return self.preserve_frequently_used
        return self.cleanup_type is CleanupType.auto


Outcome = Literal["removed", "preserved", "error", "absent"]
Trigger = Literal["api", "quota", "schedule"]


class CleanupDecision(BaseModel):
    model_id: str
    outcome: Outcome = Field(
        description="removed (in a dry run: would be removed), preserved, error, or absent "
        "(nothing of it in the models directory: a manual cleanup named it)"
    )
    reason: str = Field(description="Why, in a sentence")
    size_bytes: int = Field(description="What the model's repository folder held")
    freed_bytes: int | None = Field(
        description="Allocated bytes its removal gave back (null in a dry run or if kept)"
    )
    last_used: datetime | None


class CleanupSummary(BaseModel):
    total_processed: int
    removed: int
    preserved: int
    errors: int
    absent: int = Field(description="Named but not in the models directory (extension)")


class CleanupResult(BaseModel):
    success: bool = Field(description="False when a removal failed (see decisions)")
    cleanup_id: str = Field(pattern=CLEANUP_ID_PATTERN)
    models_removed: list[str] = Field(description="In a dry run: what would be removed")
    space_freed_gb: float = Field(
        description="Measured: allocated bytes the file system got back, 10^9 bytes (in a "
        "dry run: what it would get back, a blob shared with a model that stays not counted)"
    )
    models_preserved: list[str]
    summary: CleanupSummary
    # --- extensions -------------------------------------------------------------------
    dry_run: bool
    cleanup_type: CleanupType
    trigger: Trigger = Field(
        description="api: a request; quota: making room for a download; schedule: the "
        "periodic check of cleanup_threshold_percent"
    )
    space_freed_bytes: int
    started_at: datetime
    finished_at: datetime
    decisions: list[CleanupDecision]
    unmanaged_repositories: list[str] = Field(
        description="Repositories in the models directory that no catalogue entry names: "
        "reported, never touched"
    )


class CleanupRecommendation(BaseModel):
    model_id: str
    reason: str
    last_used: datetime | None
    size_mb: float
    usage_count: int = Field(description="Generations ever reported (roll-ups included)")
    confidence: float = Field(
        description="0.5 (just past min_unused_days) to 1.0 (idle for twice that or more, "
        "never used: 0.05 more), minus 0.2 for a model with more than 10 uses ever"
    )
    action: Literal["safe_to_remove", "review"] = Field(
        description="safe_to_remove at confidence 0.8 or more"
    )
    # --- extensions -------------------------------------------------------------------
    size_bytes: int
    idle_since: datetime = Field(description="Its last use, or when it was installed if never used")


class ProtectedModel(BaseModel):
    model_id: str
    reason: str


class CleanupRecommendations(BaseModel):
    recommendations: list[CleanupRecommendation] = Field(description="Least recently used first")
    potential_savings_gb: float = Field(
        description="Space removing all of them gives back (a blob two of them share "
        "counted once; one shared with a model that stays not counted)"
    )
    current_usage_gb: float
    target_usage_gb: float
    # --- extensions -------------------------------------------------------------------
    potential_savings_bytes: int
    storage_threshold_gb: float | None = Field(
        description="With it, only enough models (least recently used first) to get under "
        "it; none when usage is already under it"
    )
    min_unused_days: int
    protected: list[ProtectedModel] = Field(
        description="Models with files that are never candidates, and why"
    )


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StrictStr | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class Pin(BaseModel):
    model_id: str
    pinned_at: datetime
    reason: str | None


class PinList(BaseModel):
    pins: list[Pin]
