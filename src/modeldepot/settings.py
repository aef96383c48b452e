"""Start-up settings: one pydantic-settings object, built at entry points, never at import.

Sources, lowest precedence first: defaults, the TOML config file (``--config`` or
``MODELDEPOT_CONFIG_FILE``), environment variables (``MODELDEPOT_*``; nested sections with
``__``, e.g. ``MODELDEPOT_DOWNLOADS__MAX_RETRIES=5``), explicit keyword arguments. The
hub's own variables are honoured the way huggingface_hub honours them: ``HF_ENDPOINT``,
``HF_TOKEN`` (else the token file ``hf auth login`` writes), ``HF_HUB_CACHE`` /
``HF_HOME`` for the default models directory and ``HF_HUB_OFFLINE``.

The four sections ``storage``, ``downloads``, ``features`` and ``health_monitoring`` are
the runtime configuration served by ``GET /config/current``; ``PUT /config/update`` changes
them live and persists the change in the data directory (see ``modeldepot.config``).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from modeldepot.errors import ConfigError

# The config file chosen by the entry point for the Settings being built (a context variable
# rather than an environment mutation, so building settings has no global side effect).
_config_file: ContextVar[Path | None] = ContextVar("modeldepot_config_file", default=None)

_NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageConfig(_Section):
    """Disk usage limits. ``max_storage_gb`` 0 means no quota (only the free-space reserve)."""

    max_storage_gb: float = Field(default=0, ge=0, description="Quota for models, 10^9 bytes")
    cleanup_threshold_percent: float = Field(default=90, gt=0, le=100)
    min_free_space_gb: float = Field(
        default=2, ge=0, description="Reserve kept free on the models disk, 10^9 bytes"
    )
    revision_grace_hours: float = Field(
        default=72,
        ge=0,
        le=24 * 365,
        description="How long the previous revision stays on disk after an update or a "
        "rollback (0: removed at the next sweep)",
    )


class DownloadsConfig(_Section):
    max_concurrent_downloads: int = Field(default=3, ge=1, le=64)
    max_retries: int = Field(default=3, ge=0, le=100)
    bandwidth_limit_mbps: float = Field(
        default=0, ge=0, description="Global limit in 10^6 bytes/s; 0 = unlimited"
    )
    connections_per_file: int = Field(default=16, ge=1, le=64)
    max_connections: int = Field(default=32, ge=1, le=256)


class FeaturesConfig(_Section):
    enhanced_downloads: bool = True
    health_monitoring: bool = True
    intelligent_fallback: bool = True
    usage_analytics: bool = True


class HealthMonitoringConfig(_Section):
    check_interval_hours: float = Field(default=24, gt=0, le=24 * 365)
    full_check_interval_hours: float = Field(default=24 * 7, gt=0, le=24 * 365)
    auto_repair_enabled: bool = False


def default_models_dir() -> Path:
    """The Hugging Face hub cache, resolved as huggingface_hub resolves it."""
    if hub_cache := os.environ.get("HF_HUB_CACHE"):
        return Path(hub_cache).expanduser()
    hf_home = os.environ.get("HF_HOME")
    base = Path(hf_home).expanduser() if hf_home else Path.home() / ".cache" / "huggingface"
    return base / "hub"


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "modeldepot"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


class Settings(BaseSettings):
    """Everything modeldepot needs to start. Build it with :meth:`load` at an entry point."""

    model_config = SettingsConfigDict(
        env_prefix="MODELDEPOT_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    host: str = Field(default="127.0.0.1", pattern=_NO_CONTROL_CHARS)
    port: int = Field(default=8000, ge=0, le=65535)
    models_dir: Path = Field(default_factory=default_models_dir)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default an SQLite file in data_dir"
    )
    database_schema: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema for our tables (default: the server's search_path)",
    )
    catalog: Path | None = Field(default=None, description="TOML catalogue added to built-ins")
    allowed_models_roots: list[Path] = Field(
        default_factory=list,
        description="Directories a runtime config update may move models_dir into; "
        "default: the home directory and the current models_dir",
    )
    hf_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias=AliasChoices("MODELDEPOT_HF_ENDPOINT", "HF_ENDPOINT", "hf_endpoint"),
    )
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MODELDEPOT_HF_TOKEN", "HF_TOKEN", "hf_token"),
    )
    offline: bool = Field(
        default_factory=lambda: _env_flag("HF_HUB_OFFLINE"),
        description="Never contact the hub (HF_HUB_OFFLINE)",
    )
    hub_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    hub_refresh_interval_minutes: float = Field(default=60, gt=0)
    hub_resolve_concurrency: int = Field(default=4, ge=1, le=64)
    status_cache_ttl_seconds: float = Field(default=2.0, ge=0, le=3600)
    status_scan_interval_seconds: float = Field(
        default=30, gt=0, description="How often the disk is re-observed for external changes"
    )
    demo: bool = False
    allowed_source_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts downloads may reach even though they resolve to loopback or "
        "private addresses (the hub endpoint's host is always allowed)",
    )
    min_segment_mb: float = Field(default=8, gt=0, description="Smallest range request")
    stall_timeout_seconds: float = Field(
        default=30, gt=0, description="No byte for this long: reconnect"
    )
    checkpoint_interval_seconds: float = Field(default=1.0, gt=0)
    retry_base_delay_seconds: float = Field(default=1.0, ge=0)
    retry_max_delay_seconds: float = Field(default=60.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0)
    health_check_concurrency: int = Field(
        default=2, ge=1, le=32, description="Health checks running at once (across models)"
    )
    health_perf_read_mb: float = Field(
        default=64, gt=0, description="Performance check: bytes read per file, at most"
    )

    storage: StorageConfig = Field(default_factory=StorageConfig)
    downloads: DownloadsConfig = Field(default_factory=DownloadsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    health_monitoring: HealthMonitoringConfig = Field(default_factory=HealthMonitoringConfig)

    @field_validator("hf_endpoint")
    @classmethod
    def _strip_endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("hf_endpoint must be an http(s) URL")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get("MODELDEPOT_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @classmethod
    def load(cls, *, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from the config file, the environment and ``overrides``.

        Raises:
            ConfigError: the config file is missing or invalid.
        """
        path = config_file or _path_from_env()
        if path is not None and not path.is_file():
            raise ConfigError(f"Config file {path} does not exist", details={"file": str(path)})
        token = _config_file.set(path)
        try:
            settings = cls(**overrides)
        except ValueError as exc:
            raise ConfigError(
                f"Invalid settings{f' in {path}' if path else ''}: {exc}",
                details={"file": str(path) if path else None},
            ) from exc
        finally:
            _config_file.reset(token)
        if settings.hf_token is None and not settings.offline:
            settings.hf_token = _token_from_hub_login()
        return settings

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'modeldepot.db'}"

    @property
    def effective_allowed_roots(self) -> list[Path]:
        return self.allowed_models_roots or [Path.home(), self.models_dir]

    @property
    def runtime_config_path(self) -> Path:
        return self.data_dir / "runtime-config.json"


def _path_from_env() -> Path | None:
    value = os.environ.get("MODELDEPOT_CONFIG_FILE")
    return Path(value).expanduser() if value else None


def _token_from_hub_login() -> SecretStr | None:
    """The token ``hf auth login`` saved, exactly as huggingface_hub finds it."""
    from huggingface_hub import get_token  # heavy import: only when a token is needed

    token = get_token()
    return SecretStr(token) if token else None
