"""``/models/fallback/queue``: the seed's request and answer, and the entry (extension)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

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
NOTIFIED = frozenset({QueueStatus.READY, QueueStatus.EXPIRED, QueueStatus.FAILED})
"""Changes a callback is told about (claims and cancels are the app's own doing)."""


class CallbackStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    DROPPED = "DROPPED"


class Callback(BaseModel):
    """Where to POST the entry when it turns READY, EXPIRED or FAILED (extension)."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[\x21-\x7e]+$",
        description="http(s) URL in ASCII (punycode for other names), checked by the "
        "downloads' source policy (no private, loopback or link-local address unless it "
        "is the hub's host or listed in allowed_source_hosts) when queued and before "
        "every attempt",
    )
    secret: StrictStr | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="Signs every notification: X-Modeldepot-Signature is sha256= and the "
        "hex HMAC-SHA256 of the body with this key (never shown again)",
    )

    @field_validator("url")
    @classmethod
    def _parsable(cls, url: str) -> str:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises for a port that is not 0-65535
        except ValueError as exc:
            raise ValueError(f"the port is not a number from 0 to 65535: {exc}") from exc
        if not parts.hostname:
            raise ValueError("the URL names no host")
        return url


class CallbackState(BaseModel):
    url: str = Field(description="The callback URL, credentials removed")
    status: CallbackStatus | None = Field(
        description="Of the latest notification: PENDING (being tried), DELIVERED, FAILED "
        "(attempts used up or refused), DROPPED (claimed or cancelled first); null "
        "before any change to notify"
    )
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None


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
    callback: Callback | None = Field(
        default=None, description="Extension: notify this URL of READY, EXPIRED and FAILED"
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
    callback: CallbackState | None = Field(description="The entry's callback, if it has one")


class ClaimRequest(BaseModel):
    """``POST /models/fallback/queue/{id}/claim``: ``{}``, or who claims (kept as the
    entry's reason, for whoever reads the queue later)."""

    model_config = ConfigDict(extra="forbid")

    worker: StrictStr | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
    )
