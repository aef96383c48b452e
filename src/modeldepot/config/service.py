"""Runtime configuration: validated updates, persisted atomically, applied live.

Layers, lowest first: start-up settings (defaults, TOML file, environment), then the
overrides written by ``PUT /config/update`` to ``<data_dir>/runtime-config.json`` (see
:mod:`modeldepot.config.saved`: its format, and how a saved file that no longer
validates is set aside at start-up instead of stopping it). Services read
``ConfigService.current`` at the moment they act, so a change applies at once;
``storage.models_directory`` is the one key that needs a restart, and it must name a
usable directory (:mod:`modeldepot.config.directory`) both when it is set and when a
start uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from modeldepot.config.directory import check_models_directory
from modeldepot.config.saved import read_saved, set_aside, write_saved
from modeldepot.config.schemas import (
    ConfigPublic,
    ConfigUpdate,
    ConfigUpdateResult,
    SetAside,
)
from modeldepot.errors import ConfigError, InvalidInput
from modeldepot.settings import Settings, validation_problems

RESTART_KEYS = frozenset({"storage.models_directory"})
SECTIONS = ("storage", "downloads", "features", "health_monitoring", "rate_limits")
ConfigListener = Callable[[frozenset[str]], Awaitable[None]]


class ConfigService:
    """Holds the configuration in effect and applies updates to it."""

    def __init__(self, settings: Settings) -> None:
        """Blocking (start-up only): apply the saved overrides, or set a bad file aside.

        Never raises over the saved file: whatever is wrong with it, the service starts
        on the start-up settings alone (which have validated already).
        """
        self._settings = settings
        self._path = settings.runtime_config_path
        saved = read_saved(self._path, roots=settings.effective_allowed_roots)
        problems = list(saved.problems)
        if not problems:
            problems = _combination_problems(settings, saved.overrides)
        self._set_aside = set_aside(self._path, problems) if problems else None
        self._overrides = {} if problems else saved.overrides
        self._models_dir = _models_dir(settings, self._overrides)
        self._current = self._published(_effective(settings, self._overrides, self._models_dir))
        self._lock = asyncio.Lock()
        self._listeners: list[ConfigListener] = []

    @property
    def current(self) -> ConfigPublic:
        return self._current

    @property
    def models_dir(self) -> Path:
        """The models directory in use (fixed for the life of the process)."""
        return self._models_dir

    @property
    def set_aside(self) -> SetAside | None:
        """The saved configuration this start refused and moved aside, if any."""
        return self._set_aside

    def on_change(self, listener: ConfigListener) -> None:
        self._listeners.append(listener)

    async def update(self, raw: Any) -> ConfigUpdateResult:
        """Validate ``raw`` strictly, persist it, apply it, and say what changed.

        Raises:
            InvalidInput: unknown keys, wrong types, out-of-range values, a models
                directory that is not a writable directory inside the allowed roots.
                Nothing is changed then.
            StorageError: the overrides file could not be written (nothing applied).
        """
        patch = await self._validate(raw)
        async with self._lock:
            merged = _deep_merge(self._overrides, patch)
            try:
                candidate = _effective(self._settings, merged, _models_dir(self._settings, merged))
            except ConfigError as exc:
                raise InvalidInput(exc.message, details=exc.details) from exc
            changed = _changed_keys(self._public_dict(), candidate.model_dump())
            await anyio.to_thread.run_sync(write_saved, self._path, merged)
            self._overrides = merged
            candidate.storage.models_directory = str(self._models_dir)
            self._current = self._published(candidate)
        pending = sorted(changed & RESTART_KEYS)
        for listener in self._listeners:
            await listener(frozenset(changed))
        return ConfigUpdateResult(
            success=True,
            updated_settings=sorted(changed),
            restart_required=bool(pending),
            pending_restart=pending,
        )

    def _published(self, config: ConfigPublic) -> ConfigPublic:
        config.set_aside = self._set_aside
        return config

    def _public_dict(self) -> dict[str, Any]:
        current = self._current.model_dump()
        pending_dir = self._overrides.get("storage", {}).get("models_directory")
        if pending_dir:
            current["storage"]["models_directory"] = pending_dir
        return current

    async def _validate(self, raw: Any) -> dict[str, Any]:
        try:
            update = ConfigUpdate.model_validate(_integral_floats_as_ints(raw), strict=True)
        except ValidationError as exc:
            errors = _error_list(exc)
            raise InvalidInput(
                "Invalid configuration update: "
                + "; ".join(
                    f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors
                ),
                details={"errors": errors},
            ) from exc
        patch = update.model_dump(exclude_unset=True)
        directory = patch.get("storage", {}).get("models_directory")
        if directory is not None:
            resolved = await anyio.to_thread.run_sync(self._check_models_dir, directory)
            patch["storage"]["models_directory"] = str(resolved)
        return patch

    def _check_models_dir(self, value: str) -> Path:
        return check_models_directory(value, roots=self._settings.effective_allowed_roots)


def _models_dir(settings: Settings, overrides: dict[str, Any]) -> Path:
    saved = overrides.get("storage", {}).get("models_directory")
    return Path(saved) if saved else settings.models_dir.expanduser()


def _combination_problems(settings: Settings, overrides: dict[str, Any]) -> list[str]:
    """Why valid overrides would not combine with ``settings`` (none today: no rule spans
    two keys yet, but a start must not depend on that staying true)."""
    try:
        _effective(settings, overrides, _models_dir(settings, overrides))
    except ConfigError as exc:
        return [f"{e['field']}: {e['message']}" for e in exc.details["errors"]]
    return []


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
    for section in SECTIONS:
        for key, value in after[section].items():
            if before[section].get(key) != value:
                changed.add(f"{section}.{key}")
    return changed


def _integral_floats_as_ints(value: Any) -> Any:
    """``5.0`` as 5: JSON has one kind of number, and the published schema's ``integer`` is
    any number without a fraction (JSON Schema), so a client may send either. Strictness is
    about types: ``"5"`` and ``true`` stay refused, and ``5.5`` for an integer too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


def _error_list(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": loc, "message": message} for loc, message in validation_problems(exc)]
