"""The download resources of the seed: manage, progress, active downloads.

Units: ``*_mb`` 10^6 bytes, ``speed_mbps`` 10^6 bytes/s. ``retry_count`` counts failed
attempts in a row without new bytes; a download fails when it would exceed
``max_retries``. Timestamps are ISO 8601 in UTC, like every timestamp of the API.

Request bodies are strict (issue 9): no unknown keys, no ``"3"`` for 3, no ``true`` for
a number, no ``3.0`` for an integer; a float field takes an integer (``50`` MB/s).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from modeldepot.bounds import BandwidthLimitMbps, StrictMaxRetries
from modeldepot.downloads.state import DownloadStatus
from modeldepot.ids import ModelId


class Priority(StrEnum):
    critical = "critical"
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        return {"critical": 0, "high": 1, "normal": 2, "low": 3}[self.value]


class DownloadAction(StrEnum):
    start = "start"
    pause = "pause"
    resume = "resume"
    cancel = "cancel"
    set_priority = "set_priority"
    update = "update"


class ManageRequest(BaseModel):
    """``POST /models/download/manage``. ``update`` changes priority, bandwidth limit or
    retries of a queued or running download; ``set_priority`` changes only its priority
    (and needs one: the schema says so with if/then)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"action": {"const": "set_priority"}}, "required": ["action"]},
            "then": {
                "required": ["priority"],
                "properties": {"priority": {"not": {"type": "null"}}},
            },
        },
    )

    model_id: ModelId
    action: DownloadAction
    max_retries: StrictMaxRetries | None = None
    priority: Priority | None = None
    bandwidth_limit_mbps: Annotated[BandwidthLimitMbps, Strict()] | None = None


class ManageResponse(BaseModel):
    success: bool
    message: str
    download_id: str | None = None
    new_status: str | None = None
    estimated_completion: datetime | None = None


class FileProgress(BaseModel):
    path: str
    size: int
    downloaded: int
    state: str = Field(description="pending | downloading | verified")


class ProgressResponse(BaseModel):
    model_id: str
    status: DownloadStatus
    progress_percent: float
    downloaded_mb: float
    total_mb: float
    speed_mbps: float
    eta_seconds: int | None
    retry_count: int
    max_retries: int
    error_message: str | None
    can_pause: bool
    can_resume: bool
    can_cancel: bool
    # --- extensions -------------------------------------------------------------------
    download_id: str
    priority: Priority
    bandwidth_limit_mbps: float
    error_code: str | None
    queue_position: int | None
    commit: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_byte_at: datetime | None = Field(description="When the last byte was written")
    available_at: datetime | None = Field(description="When the model became available")
    files: list[FileProgress]


class ActiveDownload(BaseModel):
    model_id: str
    status: DownloadStatus
    progress_percent: float
    speed_mbps: float | None = None
    eta_seconds: int | None = None
    queue_position: int | None = None
    download_id: str
    priority: Priority


class ActiveDownloadsResponse(BaseModel):
    active_downloads: list[ActiveDownload]
    total_active: int
    total_bandwidth_usage_mbps: float
