"""Revision endpoints (extensions to the seed): list, update, rollback.

Request bodies are strict, like every body of the API: no unknown keys, no ``"3"`` for 3.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from modeldepot.bounds import BandwidthLimitMbps, StrictMaxRetries
from modeldepot.downloads.schemas import Priority
from modeldepot.ids import COMMIT_PATTERN


class RevisionState(StrEnum):
    current = "current"
    previous = "previous"
    removed = "removed"
    untracked = "untracked"  # a snapshot modeldepot did not install (kept, never removed)


class RevisionInfo(BaseModel):
    commit: str
    state: RevisionState
    on_disk: bool = Field(description="Its snapshot directory exists")
    complete: bool | None = Field(
        description="Every file of its manifest present with the right size (null: its "
        "file list is unknown)"
    )
    installed_at: datetime | None
    superseded_at: datetime | None
    keep_until: datetime | None = Field(
        description="When the sweep removes a previous revision (superseded_at + "
        "storage.revision_grace_hours)"
    )
    removed_at: datetime | None
    freed_bytes: int | None


class RevisionsResponse(BaseModel):
    model_id: str
    tracked_revision: str
    current_version: str | None
    latest_version: str | None
    update_available: bool
    latest_checked_at: datetime | None
    grace_hours: float
    updating: str | None = Field(description="download_id of an update under way")
    revisions: list[RevisionInfo]


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    bandwidth_limit_mbps: Annotated[BandwidthLimitMbps, Strict()] | None = Field(
        default=None,
        description="This download's limit, 10^6 bytes/s: 0 (unlimited) or 0.01 to 100,000; "
        "default: none of its own (the global limit applies)",
    )
    max_retries: StrictMaxRetries | None = Field(
        default=None, description="0 to 100; default: downloads.max_retries"
    )


class UpdateResponse(BaseModel):
    success: bool
    message: str
    model_id: str
    from_version: str
    to_version: str
    download_id: str | None = None
    new_status: str
    estimated_completion: datetime | None = None


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commit: str | None = Field(
        default=None,
        description="40-hex commit to switch back to; default: the newest kept previous one",
        # Published, checked by the service (with its own message).
        json_schema_extra={"pattern": COMMIT_PATTERN},
    )


class RollbackResponse(BaseModel):
    success: bool
    message: str
    model_id: str
    from_version: str
    to_version: str
    previous_kept_until: datetime | None = Field(
        description="When the revision rolled back from will be removed"
    )
