"""Pydantic I/O of the health API, in the seed's shapes (``/models/health``).

``overall_health`` of a checked model is one of the seed's four values (healthy, degraded,
corrupted, missing); a model with something installed that no integrity check has judged
yet is ``unknown`` (see :mod:`modeldepot.health.service` for the rules).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from modeldepot.health.integrity import IssueKind

CheckType = Literal["full", "integrity", "performance"]
HealthValue = Literal["healthy", "degraded", "corrupted", "missing", "unknown"]


class CheckStatus(StrEnum):
    """A health check run's state; allowed moves in :data:`TRANSITIONS`."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (CheckStatus.COMPLETED, CheckStatus.FAILED)


TRANSITIONS: dict[CheckStatus, frozenset[CheckStatus]] = {
    CheckStatus.QUEUED: frozenset({CheckStatus.RUNNING, CheckStatus.FAILED}),
    CheckStatus.RUNNING: frozenset({CheckStatus.COMPLETED, CheckStatus.FAILED}),
    CheckStatus.COMPLETED: frozenset(),
    CheckStatus.FAILED: frozenset(),
}


class HealthIssue(BaseModel):
    """One bad file and what is wrong with it."""

    model_config = ConfigDict(from_attributes=True)

    path: str
    kind: IssueKind
    detail: str


class HealthCheckRequest(BaseModel):
    """Body of ``POST /models/health/{model_id}/check`` (strict: ``"yes"`` is no bool)."""

    model_config = ConfigDict(extra="forbid")

    check_type: CheckType = "integrity"
    force_check: StrictBool = False


class HealthCheckStarted(BaseModel):
    """The seed's answer to a check request: it runs in the background."""

    success: bool = True
    check_id: str
    estimated_completion: datetime


class HealthCheckPublic(BaseModel):
    """A check run as stored (extension: ``GET /models/health/checks/{check_id}``).

    ``measurements`` holds what the check measured: for integrity checks
    ``files_checked``, ``files_hashed``, ``bytes_hashed``, ``duration_seconds``; for
    performance checks ``read_mbps``, ``bytes_read``, ``header_parse_ms``, the baselines
    and the score's parts.
    """

    model_config = ConfigDict(from_attributes=True)

    check_id: str = Field(validation_alias="id")
    model_id: str
    check_type: CheckType
    force_check: bool
    status: CheckStatus
    commit: str | None = Field(validation_alias="commit_hash")
    requested_at: datetime
    estimated_completion: datetime
    started_at: datetime | None
    finished_at: datetime | None
    overall_health: HealthValue | None
    integrity_score: float | None
    performance_score: float | None
    issues: list[HealthIssue]
    recommendations: list[str]
    measurements: dict[str, float | int | str | None]
    error: str | None


class ModelHealth(BaseModel):
    """One model's health in the seed's shape (``issues`` name each bad file)."""

    model_id: str
    overall_health: HealthValue
    integrity_score: float | None
    performance_score: float | None
    last_check: datetime | None
    issues: list[HealthIssue]
    recommendations: list[str]


class SystemHealth(BaseModel):
    """Summary over every catalogue model (the list, whatever its page) or the one model
    asked for (rules in :mod:`modeldepot.health.service`)."""

    overall_score: float | None
    healthy_models: int
    degraded_models: int
    corrupted_models: int
    last_system_check: datetime | None


class HealthResponse(BaseModel):
    """``GET /models/health`` and ``GET /models/health/{model_id}`` (same seed shape)."""

    models: dict[str, ModelHealth]
    system_health: SystemHealth
