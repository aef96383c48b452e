"""The storage resource of the seed: ``GET /models/storage``.

Sizes in 10^9 bytes, unrounded (a 100 kB model is ``0.0001`` GB, never ``0.0``); the
``*_bytes`` extensions give the same figures exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class StorageSummary(BaseModel):
    total_capacity_gb: float = Field(
        description="Space models may occupy: what the models directory holds now plus the "
        "free space of the file system it is on, or storage.max_storage_gb if a quota is "
        "set and smaller. Other files on that disk do not count."
    )
    used_space_gb: float = Field(
        description="Size on disk of every repository in the models directory (managed or not)"
    )
    available_space_gb: float = Field(
        description="Capacity left: total_capacity_gb - used_space_gb, never above the disk's "
        "free space nor below 0"
    )
    usage_percent: float = Field(description="used_space_gb / total_capacity_gb, in percent")
    models_count: int = Field(description="Catalogue models with files on disk")
    # --- extensions -------------------------------------------------------------------
    total_capacity_bytes: int
    used_space_bytes: int
    available_space_bytes: int
    disk_total_gb: float = Field(description="Size of the file system holding the models")
    disk_free_gb: float = Field(description="Free space of that file system")
    quota_gb: float | None = Field(description="storage.max_storage_gb, null when 0 (none)")
    reserve_gb: float = Field(description="storage.min_free_space_gb kept free")
    models_directory: str


class ModelStorage(BaseModel):
    model_id: str
    size_gb: float = Field(description="Size on disk of the model's repository folder")
    last_accessed: datetime | None = Field(description="Last reported use; null: never")
    usage_frequency: float = Field(description="Uses per day")
    storage_tier: Literal["hot", "warm", "cold"] = Field(
        description="hot: used in the last 7 days; warm: in the last 30; cold: older or never"
    )
    size_bytes: int = Field(description="size_gb exactly, in bytes")
    last_modified: datetime | None = Field(
        description="When its newest file was written (how long a never-used model has been idle)"
    )
    pinned: bool = Field(description="Pinned: never a cleanup candidate")
    repo_id: str
    commits: list[str]


class UnmanagedRepository(BaseModel):
    """A repository in the models directory that no catalogue entry names (never touched)."""

    repo_id: str
    repo_type: str
    size_gb: float
    size_bytes: int
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
