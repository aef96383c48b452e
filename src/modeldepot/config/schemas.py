"""The runtime configuration resource: ``GET /config/current`` and ``PUT /config/update``.

The sections are the ones in ``modeldepot.settings`` (one definition, used for start-up
settings and for the API). An update names only what changes; it is validated strictly
(no unknown keys, no type coercion such as ``"5"`` for 5, no control characters), and
every number against the range written in its description (``modeldepot.bounds``).

The saved overrides file has one shape too (:class:`SavedConfig`), and a file that no
longer fits it is reported as a :class:`SetAside`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeldepot.settings import (
    DownloadsConfig,
    FeaturesConfig,
    HealthMonitoringConfig,
    RateLimitsConfig,
    StorageConfig,
)


class StoragePublic(StorageConfig):
    models_directory: str = Field(description="The models directory in use")


class SetAside(BaseModel):
    """A saved runtime configuration that failed validation at start-up and was set aside
    (the service started on defaults, the TOML file and the environment instead)."""

    file: str = Field(description="Where the saved configuration was")
    moved_to: str | None = Field(
        description="Where it is now (runtime-config.rejected-<UTC time>.json beside it); "
        "null if it could not be moved (it is then reported again at the next start)"
    )
    reasons: list[str] = Field(description="Why it was refused, one entry per problem")
    at: datetime = Field(description="When it was set aside")


class ConfigPublic(BaseModel):
    """The configuration in effect."""

    storage: StoragePublic
    downloads: DownloadsConfig
    features: FeaturesConfig
    health_monitoring: HealthMonitoringConfig
    rate_limits: RateLimitsConfig = Field(
        description="Extension (the seed states the limits, not a section): requests per "
        "minute per client"
    )
    set_aside: SetAside | None = Field(
        default=None,
        description="Extension (not in the seed): the saved runtime configuration this "
        "start set aside because it no longer validated; null when none was",
    )


class StorageUpdate(StorageConfig):
    models_directory: str | None = Field(
        default=None,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        min_length=1,
        max_length=4096,
        description="Absolute path inside an allowed root; applied at the next start",
    )


def _sections_are_not_nullable(schema: dict[str, Any]) -> None:
    """The published schema: a section may be left out, never null (the validator below
    refuses null with a message; the schema says it too, for clients and fuzzers)."""
    for section in schema.get("properties", {}).values():
        choices = [c for c in section.pop("anyOf", []) if c.get("type") != "null"]
        if len(choices) == 1:
            section.update(choices[0])
        section.pop("default", None)


class ConfigUpdate(BaseModel):
    """A partial configuration: only the keys present are changed (a section may be
    left out, not set to null)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_sections_are_not_nullable)

    storage: StorageUpdate | None = None
    downloads: DownloadsConfig | None = None
    features: FeaturesConfig | None = None
    health_monitoring: HealthMonitoringConfig | None = None
    rate_limits: RateLimitsConfig | None = None

    @model_validator(mode="after")
    def _no_null_sections(self) -> Self:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"configuration sections cannot be null: {', '.join(nulls)}")
        return self


class SavedConfig(BaseModel):
    """``<data_dir>/runtime-config.json``: the updates made through the API, merged."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    overrides: ConfigUpdate


class ConfigUpdateResult(BaseModel):
    success: bool
    updated_settings: list[str] = Field(description="Dotted keys whose value changed")
    restart_required: bool = Field(description="True if a changed key applies only at restart")
    pending_restart: list[str] = Field(
        default_factory=list, description="Changed keys that wait for a restart"
    )
