"""The storage resource of the seed: ``GET /models/storage``. Sizes in 10^9 bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class StorageSummary(BaseModel):
    total_capacity_gb: float = Field(
        description="Space models may occupy: the quota if set, else used + free on the disk"
    )
    used_space_gb: float = Field(description="Bytes of every repository in the models dir")
    available_space_gb: float = Field(description="Capacity left (never above the disk's free)")
    usage_percent: float
    models_count: int = Field(description="Catalogue models with files on disk")
    # --- extensions -------------------------------------------------------------------
    disk_total_gb: float
    disk_free_gb: float
    quota_gb: float | None = Field(description="storage.max_storage_gb, null when 0 (none)")
    reserve_gb: float = Field(description="storage.min_free_space_gb kept free")
    models_directory: str


class ModelStorage(BaseModel):
    model_id: str
    size_gb: float = Field(description="Bytes on disk of the model's repository folder")
    last_accessed: datetime | None = Field(description="Last reported use; null: never")
    usage_frequency: float = Field(description="Uses per day")
    storage_tier: Literal["hot", "warm", "cold"] = Field(
        description="hot: used in the last 7 days; warm: in the last 30; cold: older or never"
    )
    repo_id: str
    commits: list[str]


class UnmanagedRepository(BaseModel):
    """A repository in the models directory that no catalogue entry names (never touched)."""

    repo_id: str
    repo_type: str
    size_gb: float
    refs: dict[str, str]
    commits: list[str]
    last_modified: datetime | None


class CleanupSuggestions(BaseModel):
    potential_savings_gb: float
    safe_to_remove_count: int
    candidates: list[str]


class StorageResponse(BaseModel):
    storage_summary: StorageSummary
    models_storage: list[ModelStorage]
    cleanup_suggestions: CleanupSuggestions
    unmanaged_repositories: list[UnmanagedRepository]
