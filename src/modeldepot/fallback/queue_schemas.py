"""``/models/fallback/queue``: the seed's request and answer, and the entry (extension)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from modeldepot.bounds import StrictFloat
from modeldepot.downloads.schemas import Priority
from modeldepot.ids import ModelId

QUEUE_ID_PATTERN = r"^queue_[0-9a-f]{16}$"


class QueueStatus(StrEnum):
    WAITING = "WAITING"
    READY = "READY"
    CLAIMED = "CLAIMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


OPEN = frozenset({QueueStatus.WAITING, QueueStatus.READY})


class GenerationRequest(BaseModel):
    """What the app will run once the model is in: kept as given, handed back on claim."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(max_length=20_000)
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Free-form generation parameters (kept as given)"
    )


class QueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: ModelId
    request: GenerationRequest
    priority: Priority = Priority.normal
    max_wait_time_minutes: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=10_080,
        description="Give up (EXPIRED) after this long waiting, above 0 to 10,080 (a week); "
        "null: wait as long as the download takes",
    )


class QueueResponse(BaseModel):
    success: bool
    queue_id: str = Field(pattern=QUEUE_ID_PATTERN)
    position: int | None = Field(
        description="Among the entries waiting for the same model, by priority then "
        "arrival, from 1; null once READY or ended"
    )
    estimated_wait_time_minutes: float | None = Field(
        description="From the live download's ETA; 0 when READY; null: no estimate yet"
    )
    estimated_start_time: datetime | None
    # --- extensions -------------------------------------------------------------------
    status: QueueStatus
    download_started: bool = Field(description="Queuing started the model's download")


class QueueEntry(BaseModel):
    queue_id: str
    model_id: str
    status: QueueStatus
    priority: Priority
    request: GenerationRequest
    position: int | None
    estimated_wait_time_minutes: float | None
    estimated_start_time: datetime | None
    created_at: datetime
    wait_until: datetime | None = Field(description="When a WAITING entry expires")
    ready_at: datetime | None
    claim_until: datetime | None = Field(description="When a READY entry expires unclaimed")
    ended_at: datetime | None
    reason: str | None = Field(description="Why it ended (expired, cancelled, failed)")
    suggestions: list[dict[str, Any]] | None = Field(
        description="For a FAILED entry: alternatives to use instead (fallback suggestions)"
    )


class ClaimRequest(BaseModel):
    """``POST /models/fallback/queue/{id}/claim``: ``{}``, or who claims (kept as the
    entry's reason, for whoever reads the queue later)."""

    model_config = ConfigDict(extra="forbid")

    worker: StrictStr | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
    )
