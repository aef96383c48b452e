"""The status resource of the seed: ``GET /models/status/detailed[/{model_id}]``.

Field names and shapes are the seed's; fields after ``update_available`` are documented
extensions. Units: ``*_mb`` are 10^6 bytes, ``*_gb`` 10^9 bytes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class AvailabilityStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    PARTIAL = "PARTIAL"
    MISSING = "MISSING"
    QUEUED = "QUEUED"
    DOWNLOADING = "DOWNLOADING"
    PAUSED = "PAUSED"
    VERIFYING = "VERIFYING"
    FAILED = "FAILED"
    CORRUPTED = "CORRUPTED"
    UPDATE_AVAILABLE = "UPDATE_AVAILABLE"


class ModelStatus(BaseModel):
    """Everything an app needs to know about one model's availability."""

    model_id: str
    is_available: bool = Field(
        description="Every file of the installed revision is present with its manifest "
        "size, and the ref names that revision (no ref: never available)"
    )
    is_loaded: bool = Field(description="A generation app reported the model loaded")
    size_mb: float | None = Field(description="Manifest size, 10^6 bytes; null while unknown")
    availability_status: AvailabilityStatus
    download_progress: float | None = Field(description="Percent, while a download exists")
    missing_files: list[str]
    integrity_score: float | None = Field(description="Share of bytes verified; null: unchecked")
    last_health_check: datetime | None
    performance_score: float | None
    corruption_detected: bool
    usage_frequency: float = Field(description="Uses per day")
    last_used: datetime | None
    average_generation_time: float | None = Field(description="Seconds")
    can_pause_download: bool
    can_resume_download: bool
    estimated_download_time: float | None = Field(description="Seconds")
    current_version: str | None = Field(description="Installed commit")
    latest_version: str | None = Field(description="Commit the tracked revision points at")
    update_available: bool
    # --- extensions -------------------------------------------------------------------
    display_name: str | None = None
    model_type: str
    source: str
    revision: str
    size_bytes: int | None = Field(description="Manifest size in bytes")
    file_count: int | None = Field(description="Files in the manifest; null while unknown")
    wrong_size_files: list[str] = Field(description="Present but with the wrong size")
    manifest_source: str | None = Field(
        description="hub | url | cache (derived from the local cache while the hub is "
        "unreachable) | null (unknown)"
    )
    manifest_resolved_at: datetime | None
    source_error: str | None = Field(description="Why the source could not be resolved")
    source_error_code: str | None


class StatusSummary(BaseModel):
    total_models: int
    available_models: int
    downloading_models: int
    corrupted_models: int
    total_storage_gb: float = Field(description="Installed size of catalogue models, 10^9 B")


class DetailedStatusResponse(BaseModel):
    models: dict[str, ModelStatus]
    summary: StatusSummary
