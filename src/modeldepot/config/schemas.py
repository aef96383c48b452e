"""The runtime configuration resource: ``GET /config/current`` and ``PUT /config/update``.

The sections are the ones in ``modeldepot.settings`` (one definition, used for start-up
settings and for the API). An update names only what changes; it is validated strictly
(no unknown keys, no type coercion such as ``"5"`` for 5, no control characters).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modeldepot.settings import (
    DownloadsConfig,
    FeaturesConfig,
    HealthMonitoringConfig,
    StorageConfig,
)


class StoragePublic(StorageConfig):
    models_directory: str = Field(description="The models directory in use")


class ConfigPublic(BaseModel):
    """The configuration in effect."""

    storage: StoragePublic
    downloads: DownloadsConfig
    features: FeaturesConfig
    health_monitoring: HealthMonitoringConfig


class StorageUpdate(StorageConfig):
    models_directory: str | None = Field(
        default=None,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        min_length=1,
        max_length=4096,
        description="Absolute path inside an allowed root; applied at the next start",
    )


class ConfigUpdate(BaseModel):
    """A partial configuration: only the keys present are changed."""

    model_config = ConfigDict(extra="forbid")

    storage: StorageUpdate | None = None
    downloads: DownloadsConfig | None = None
    features: FeaturesConfig | None = None
    health_monitoring: HealthMonitoringConfig | None = None


class ConfigUpdateResult(BaseModel):
    success: bool
    updated_settings: list[str] = Field(description="Dotted keys whose value changed")
    restart_required: bool = Field(description="True if a changed key applies only at restart")
    pending_restart: list[str] = Field(
        default_factory=list, description="Changed keys that wait for a restart"
    )
