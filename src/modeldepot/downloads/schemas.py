"""The download resources of the seed: manage, progress, active downloads.

Units: ``*_mb`` 10^6 bytes, ``speed_mbps`` 10^6 bytes/s. ``retry_count`` counts failed
attempts in a row without new bytes; a download fails when it would exceed
``max_retries``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from modeldepot.bounds import BandwidthLimitMbps, MaxRetries
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
    retries of a queued or running download; ``set_priority`` changes only its priority."""

    model_config = ConfigDict(extra="forbid")

    model_id: ModelId
    action: DownloadAction
    max_retries: MaxRetries | None = None
    priority: Priority | None = None
    bandwidth_limit_mbps: BandwidthLimitMbps | None = None


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
    last_byte_at: float | None = Field(description="Unix time the last byte was written")
    available_at: float | None = Field(description="Unix time the model became available")
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
