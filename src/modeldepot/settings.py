"""Start-up settings: one pydantic-settings object, built at entry points, never at import.

Sources, lowest precedence first: defaults, the TOML config file (``--config`` or
``MODELDEPOT_CONFIG_FILE``), environment variables (``MODELDEPOT_*``; nested sections with
``__``, e.g. ``MODELDEPOT_DOWNLOADS__MAX_RETRIES=5``), explicit keyword arguments. The
hub's own variables are honoured the way huggingface_hub honours them: ``HF_ENDPOINT``,
``HF_TOKEN`` (else the token file ``hf auth login`` writes), ``HF_HUB_CACHE`` /
``HF_HOME`` for the default models directory and ``HF_HUB_OFFLINE``.

The sections ``storage``, ``downloads``, ``features``, ``health_monitoring`` and
``rate_limits`` are
the runtime configuration served by ``GET /config/current``; ``PUT /config/update`` changes
them live and persists the change in the data directory (see ``modeldepot.config``).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from modeldepot.bounds import BandwidthLimitMbps, MaxRetries, ZeroOrBetween
from modeldepot.errors import ConfigError

# The config file chosen by the entry point for the Settings being built (a context variable
# rather than an environment mutation, so building settings has no global side effect).
_config_file: ContextVar[Path | None] = ContextVar("modeldepot_config_file", default=None)

_NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"
_HOST_NAME = r"^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$"
_ORIGIN = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"
HOURS_PER_YEAR = 24 * 365
MINUTES_PER_YEAR = 60 * HOURS_PER_YEAR


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class StorageConfig(_Section):
    """Disk usage limits. ``max_storage_gb`` 0 means no quota (only the free-space reserve)."""

    max_storage_gb: Annotated[
        float, ZeroOrBetween(low=0.001, high=1_000_000, zero_means="no quota")
    ] = Field(
        default=0,
        description="Quota for models, GB (10^9 bytes): 0 (no quota) or 0.001 to 1,000,000",
    )
    cleanup_threshold_percent: float = Field(
        default=90, ge=1, le=100, description="Disk usage that calls for a clean-up, 1 to 100 %"
    )
    min_free_space_gb: float = Field(
        default=2,
        ge=0,
        le=100_000,
        description="Reserve kept free on the models disk, GB (10^9 bytes): 0 to 100,000",
    )
    auto_cleanup: bool = Field(
        default=False,
        description="Free space by itself: a download that would cross the quota, the "
        "free-space reserve or cleanup_threshold_percent first removes the least recently "
        "used idle, unpinned models (never loaded, downloading, queued-for or pinned ones); "
        "off: such a download is refused with 507 naming what would have to go",
    )
    cleanup_check_interval_minutes: float = Field(
        default=60,
        ge=1,
        le=MINUTES_PER_YEAR,
        description="How often usage is checked against cleanup_threshold_percent (and, "
        "with auto_cleanup, brought back under it), 1 to 525,600 minutes",
    )
    revision_grace_hours: float = Field(
        default=72,
        ge=0,
        le=HOURS_PER_YEAR,
        description="How long the previous revision stays on disk after an update or a "
        "rollback, hours: 0 (removed at the next sweep) to 8760 (a year)",
    )


class DownloadsConfig(_Section):
    max_concurrent_downloads: int = Field(
        default=3, ge=1, le=64, description="Downloads transferring at once, 1 to 64"
    )
    max_retries: MaxRetries = 3
    bandwidth_limit_mbps: BandwidthLimitMbps = Field(
        default=0, description="Global limit, 10^6 bytes/s: 0 (unlimited) or 0.01 to 100,000"
    )
    connections_per_file: int = Field(
        default=16, ge=1, le=64, description="Connections one file is fetched over, 1 to 64"
    )
    max_connections: int = Field(
        default=32, ge=1, le=256, description="Connections across all downloads, 1 to 256"
    )


class FeaturesConfig(_Section):
    """The seed's feature switches, all live."""

    enhanced_downloads: bool = Field(
        default=True,
        description="Segmented downloads over downloads.connections_per_file connections; "
        "off: one connection per file, as huggingface_hub downloads (applies to downloads "
        "that start or resume afterwards)",
    )
    health_monitoring: bool = Field(
        default=True, description="Scheduled health checks of every available model"
    )
    intelligent_fallback: bool = Field(
        default=True,
        description="Fallback suggestions and new wait-queue entries; off: POST "
        "/models/fallback/suggest and POST /models/fallback/queue answer 409 "
        "FEATURE_DISABLED and no fallback_suggestion is sent (entries already queued keep "
        "their course: READY, claim, cancel, expiry, callbacks; a FAILED one carries no "
        "suggestions)",
    )
    usage_analytics: bool = Field(
        default=True,
        description="Accept usage reports (POST /models/usage); off: reports are refused "
        "with 409 FEATURE_DISABLED and nothing is recorded (the analytics of what was "
        "recorded stay readable)",
    )


class HealthMonitoringConfig(_Section):
    check_interval_hours: float = Field(
        default=24,
        ge=0.01,
        le=HOURS_PER_YEAR,
        description="Hours between monitor rounds (quick checks): 0.01 (36 s) to 8760",
    )
    full_check_interval_hours: float = Field(
        default=24 * 7,
        ge=0.01,
        le=HOURS_PER_YEAR,
        description="Hours after which a model's next check is a full one: 0.01 to 8760",
    )
    auto_repair_enabled: bool = False


class RateLimitsConfig(_Section):
    """Requests per minute per client (its API key, else its address), in one of three
    buckets: download actions, admin actions, everything else (see ``modeldepot.api.access``)."""

    enabled: bool = Field(default=True, description="Apply the limits below")
    default_per_minute: int = Field(
        default=60, ge=1, le=100_000, description="Most requests, per minute: 1 to 100,000"
    )
    downloads_per_minute: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Download actions (POST /models/download/manage), per minute: 1 to 100,000",
    )
    admin_per_minute: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Admin actions (configuration, repair, update, rollback, keys, audit), "
        "per minute: 1 to 100,000",
    )
    exempt_loopback: bool = Field(
        default=True,
        description="Clients on this machine (127.0.0.0/8, ::1) are not limited, so local "
        "apps and the dashboard are never throttled",
    )


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
        allow_inf_nan=False,
    )

    host: str = Field(default="127.0.0.1", pattern=_NO_CONTROL_CHARS)
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port, 0 (any free) to 65535")
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
    hub_timeout_seconds: float = Field(
        default=5.0, ge=0.1, le=120, description="Longest wait for a hub answer, 0.1 to 120 s"
    )
    hub_refresh_interval_minutes: float = Field(
        default=60,
        ge=1,
        le=MINUTES_PER_YEAR,
        description="How often manifests are re-resolved, 1 to 525,600 minutes (a year)",
    )
    hub_resolve_concurrency: int = Field(
        default=4, ge=1, le=64, description="Parallel hub look-ups, 1 to 64"
    )
    status_cache_ttl_seconds: float = Field(
        default=2.0, ge=0, le=3600, description="Reuse of a computed status, 0 (none) to 3600 s"
    )
    status_scan_interval_seconds: float = Field(
        default=30,
        ge=1,
        le=86_400,
        description="How often the disk is re-observed for external changes, 1 to 86,400 s",
    )
    demo: bool = False
    allowed_source_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts downloads and wait-queue callbacks may reach even though they "
        "resolve to loopback or private addresses (the hub endpoint's host is always "
        "allowed)",
    )
    min_segment_mb: float = Field(
        default=8,
        ge=0.1,
        le=32,
        description="Smallest range request, MB (10^6 bytes): 0.1 to 32 (rounded up to "
        "64 KiB; segments never exceed 32 MiB)",
    )
    stall_timeout_seconds: float = Field(
        default=30,
        ge=0.1,
        le=3600,
        description="No byte (or under 16 KiB) for this long replaces the connection, "
        "0.1 to 3600 s",
    )
    checkpoint_interval_seconds: float = Field(
        default=1.0,
        ge=0.01,
        le=600,
        description="How often progress is made durable, 0.01 to 600 s",
    )
    retry_base_delay_seconds: float = Field(
        default=1.0, ge=0, le=3600, description="First retry's backoff, 0 to 3600 s"
    )
    retry_max_delay_seconds: float = Field(
        default=60.0, ge=0, le=86_400, description="Longest backoff between retries, 0 to 86,400 s"
    )
    max_retry_after_seconds: float = Field(
        default=300.0, ge=0, le=86_400, description="Longest Retry-After honoured, 0 to 86,400 s"
    )
    health_check_concurrency: int = Field(
        default=2, ge=1, le=32, description="Health checks running at once (across models), 1 to 32"
    )
    health_perf_read_mb: float = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Performance check: bytes read per file at most, MB (10^6 bytes): 1 to 10,000",
    )
    queue_claim_timeout_minutes: float = Field(
        default=10,
        ge=0.1,
        le=10_080,
        description="A READY wait-queue entry nobody claims expires after this, 0.1 to "
        "10,080 minutes",
    )
    usage_retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Raw usage events older than this are deleted, 1 to 3650 days; the "
        "analytics keep their figures (hourly roll-ups are kept)",
    )

    auth_required: bool = Field(
        default=False,
        description="Every request needs an API key (Authorization: Bearer); keys come "
        "from `modeldepot keys create NAME --role admin|user|read`",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Allow listening on a non-loopback address without API keys (only on "
        "a network where everyone may change the configuration and delete models)",
    )
    allowed_hosts: list[Annotated[str, Field(pattern=_HOST_NAME, max_length=253)]] = Field(
        default_factory=list,
        description="Host header values (names or addresses, without port) accepted besides "
        "loopback ones; '*' accepts any. Default: on a loopback bind only localhost, "
        "*.localhost, 127.0.0.0/8 and ::1 (a DNS-rebinding defence); on another bind any",
    )
    cors_origins: list[Annotated[str, Field(pattern=_ORIGIN, max_length=300)]] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) allowed to call the API from a "
        "browser, besides the service's own; default none",
    )
    max_request_body_mb: float = Field(
        default=1,
        ge=0.001,
        le=1000,
        description="Largest request body, MB (10^6 bytes): 0.001 to 1000; more is 413",
    )
    request_header_timeout_seconds: float = Field(
        default=10,
        ge=0.1,
        le=600,
        description="A client must send a request's headers within this, 0.1 to 600 s",
    )
    request_body_timeout_seconds: float = Field(
        default=30,
        ge=0.1,
        le=3600,
        description="A client must send a request's body within this, 0.1 to 3600 s (408)",
    )

    storage: StorageConfig = Field(default_factory=StorageConfig)
    downloads: DownloadsConfig = Field(default_factory=DownloadsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    health_monitoring: HealthMonitoringConfig = Field(default_factory=HealthMonitoringConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)

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
            ConfigError: the config file is missing or does not parse, or a setting is
                invalid or outside its range (one line naming each setting).
        """
        path = config_file or _path_from_env()
        if path is not None and not path.is_file():
            raise ConfigError(f"Config file {path} does not exist", details={"file": str(path)})
        token = _config_file.set(path)
        try:
            settings = cls(**overrides)
        except ValidationError as exc:
            raise _config_error(exc, path) from exc
        except ValueError as exc:  # the TOML file or a JSON list in the environment
            where = f"config file {path}" if path else "settings"
            raise ConfigError(
                f"Invalid {where}: {exc}", details={"file": str(path) if path else None}
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


def validation_problems(
    exc: ValidationError, *, strip: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """``(dotted location, message)`` for each error of ``exc``, without pydantic's
    "Value error, " prefix and without the input (which may be a secret); ``strip``
    drops leading location parts (e.g. ``("overrides",)``)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(part) for part in error["loc"])
        if loc[: len(strip)] == strip:
            loc = loc[len(strip) :]
        problems.append((".".join(loc), error["msg"].removeprefix("Value error, ")))
    return problems


def _config_error(exc: ValidationError, path: Path | None) -> ConfigError:
    """One line naming each bad setting and its environment variable."""
    problems = validation_problems(exc)
    lines = [
        f"{name or 'settings'} (MODELDEPOT_{name.replace('.', '__').upper()}): {message}"
        for name, message in problems
    ]
    source = f" (config file {path}, environment, or arguments)" if path else ""
    return ConfigError(
        f"Invalid setting{'s' if len(lines) > 1 else ''}{source}: {'; '.join(lines)}",
        details={"file": str(path) if path else None, "settings": [n for n, _ in problems]},
    )


def _path_from_env() -> Path | None:
    value = os.environ.get("MODELDEPOT_CONFIG_FILE")
    return Path(value).expanduser() if value else None


def _token_from_hub_login() -> SecretStr | None:
    """The token ``hf auth login`` saved, exactly as huggingface_hub finds it."""
    from huggingface_hub import get_token  # heavy import: only when a token is needed

    token = get_token()
    return SecretStr(token) if token else None
