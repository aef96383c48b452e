"""Runtime configuration: validated updates, persisted atomically, applied live.

Layers, lowest first: start-up settings (defaults, TOML file, environment), then the
overrides written by ``PUT /config/update`` to ``<data_dir>/runtime-config.json``. The
overrides file is replaced atomically (temp file, fsync, rename), so a crash leaves the
old or the new file, never half of one; a file that does not parse stops start-up with a
message naming it. Services read ``ConfigService.current`` at the moment they act, so a
change applies at once; ``storage.models_directory`` is the one key that needs a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from modeldepot.config.schemas import ConfigPublic, ConfigUpdate, ConfigUpdateResult
from modeldepot.errors import ConfigError, InvalidInput, StorageError
from modeldepot.settings import Settings
from modeldepot.store.layout import atomic_write_bytes

RESTART_KEYS = frozenset({"storage.models_directory"})
SECTIONS = ("storage", "downloads", "features", "health_monitoring")
ConfigListener = Callable[[frozenset[str]], Awaitable[None]]


class ConfigService:
    """Holds the configuration in effect and applies updates to it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.runtime_config_path
        self._overrides = _read_overrides(self._path)
        self._models_dir = Path(
            self._overrides.get("storage", {}).get("models_directory") or settings.models_dir
        ).expanduser()
        self._current = _effective(settings, self._overrides, self._models_dir)
        self._lock = asyncio.Lock()
        self._listeners: list[ConfigListener] = []

    @property
    def current(self) -> ConfigPublic:
        return self._current

    @property
    def models_dir(self) -> Path:
        """The models directory in use (fixed for the life of the process)."""
        return self._models_dir

    def on_change(self, listener: ConfigListener) -> None:
        self._listeners.append(listener)

    async def update(self, raw: Any) -> ConfigUpdateResult:
        """Validate ``raw`` strictly, persist it, apply it, and say what changed.

        Raises:
            InvalidInput: unknown keys, wrong types, out-of-range values, a models
                directory outside the allowed roots. Nothing is changed then.
            StorageError: the overrides file could not be written (nothing applied).
        """
        patch = self._validate(raw)
        async with self._lock:
            merged = _deep_merge(self._overrides, patch)
            models_dir = Path(
                merged.get("storage", {}).get("models_directory") or self._settings.models_dir
            )
            try:
                candidate = _effective(self._settings, merged, models_dir)
            except ConfigError as exc:
                raise InvalidInput(exc.message, details=exc.details) from exc
            changed = _changed_keys(self._public_dict(), candidate.model_dump())
            await anyio.to_thread.run_sync(_write_overrides, self._path, merged)
            self._overrides = merged
            live = candidate.model_copy(deep=True)
            live.storage.models_directory = str(self._models_dir)
            self._current = live
        pending = sorted(changed & RESTART_KEYS)
        for listener in self._listeners:
            await listener(frozenset(changed))
        return ConfigUpdateResult(
            success=True,
            updated_settings=sorted(changed),
            restart_required=bool(pending),
            pending_restart=pending,
        )

    def _public_dict(self) -> dict[str, Any]:
        current = self._current.model_dump()
        pending_dir = self._overrides.get("storage", {}).get("models_directory")
        if pending_dir:
            current["storage"]["models_directory"] = pending_dir
        return current

    def _validate(self, raw: Any) -> dict[str, Any]:
        try:
            update = ConfigUpdate.model_validate(raw, strict=True)
        except ValidationError as exc:
            raise InvalidInput(
                "Invalid configuration update",
                details={"errors": _error_list(exc)},
            ) from exc
        patch = update.model_dump(exclude_unset=True)
        nulls = [section for section, value in patch.items() if value is None]
        if nulls:
            raise InvalidInput("Configuration sections cannot be null", details={"sections": nulls})
        directory = patch.get("storage", {}).get("models_directory")
        if directory is not None:
            patch["storage"]["models_directory"] = str(self._check_models_dir(directory))
        return patch

    def _check_models_dir(self, value: str) -> Path:
        path = Path(value)
        if not path.is_absolute():
            raise InvalidInput(
                "storage.models_directory must be an absolute path",
                details={"models_directory": value},
            )
        resolved = path.resolve()
        roots = [root.expanduser().resolve() for root in self._settings.effective_allowed_roots]
        if not any(resolved.is_relative_to(root) for root in roots):
            raise InvalidInput(
                "storage.models_directory must be inside an allowed root "
                "(setting allowed_models_roots)",
                details={"models_directory": value},
            )
        return resolved


def _effective(settings: Settings, overrides: dict[str, Any], models_dir: Path) -> ConfigPublic:
    base = {section: getattr(settings, section).model_dump() for section in SECTIONS}
    merged = _deep_merge(base, overrides)
    merged["storage"]["models_directory"] = str(models_dir)
    try:
        return ConfigPublic.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            "The runtime configuration is invalid", details={"errors": _error_list(exc)}
        ) from exc


def _read_overrides(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
        overrides = data["overrides"]
        ConfigUpdate.model_validate(overrides, strict=True)
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ConfigError(
            f"{path} is not a valid modeldepot runtime configuration; fix or remove it",
            details={"file": str(path)},
        ) from exc
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path} is not a valid modeldepot runtime configuration")
    return overrides


def _write_overrides(path: Path, overrides: dict[str, Any]) -> None:
    payload = json.dumps({"version": 1, "overrides": overrides}, indent=2, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, payload.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"Cannot save the configuration: {exc.strerror}") from exc


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    changed: set[str] = set()
    for section, values in after.items():
        for key, value in values.items():
            if before.get(section, {}).get(key) != value:
                changed.add(f"{section}.{key}")
    return changed


def _error_list(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
