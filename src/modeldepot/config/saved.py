"""The saved runtime configuration, ``<data_dir>/runtime-config.json``, and what becomes of
a saved file that no longer validates.

The file holds the updates made through ``PUT /config/update``, merged, in the shape of
:class:`~modeldepot.config.schemas.SavedConfig` (``{"version": 1, "overrides": {...}}``).
It is replaced atomically (temp file, fsync, rename), so a crash leaves the old or the new
file, never half of one.

Because the saved file wins over the TOML file and the environment, a bad one must not
keep the service down until someone edits it by hand (issue 8). It is checked again at
every start against today's schema, bounds, allowed roots and disk; a file that does not
parse, fails the strict schema or a bound (an older version accepted ``1e300`` GB), or
names a models directory that is now a file, outside the allowed roots or not writable is
*set aside*: renamed to ``runtime-config.rejected-<UTC time>.json`` beside it and
reported with every reason, and the service starts on defaults, the TOML file and the
environment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modeldepot.config.directory import check_models_directory
from modeldepot.config.schemas import SavedConfig, SetAside
from modeldepot.errors import InvalidInput, StorageError
from modeldepot.files import atomic_write_bytes
from modeldepot.settings import validation_problems

logger = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True)
class Saved:
    """What a start may apply from the saved file: nothing when there are problems."""

    overrides: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def read_saved(path: Path, *, roots: Iterable[Path]) -> Saved:
    """Blocking: the overrides saved at ``path`` if they are valid today, else the problems.

    The models directory they name is checked as an update's would be and replaced by
    its resolved path. Reads only: setting a bad file aside is :func:`set_aside`.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Saved()
    except OSError as exc:
        return Saved(problems=(f"cannot be read ({exc.strerror})",))
    try:
        saved = SavedConfig.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        return Saved(problems=tuple(describe_errors(exc, strip=("overrides",))))
    overrides = saved.overrides.model_dump(exclude_unset=True)
    directory = overrides.get("storage", {}).get("models_directory")
    if directory is not None:
        try:
            resolved = check_models_directory(directory, roots=roots)
        except InvalidInput as exc:
            return Saved(problems=(exc.message,))
        overrides["storage"]["models_directory"] = str(resolved)
    return Saved(overrides=overrides)


def set_aside(path: Path, problems: Iterable[str]) -> SetAside:
    """Blocking: move the saved file at ``path`` out of the way and report why.

    Never raises: a file that cannot be moved (a read-only data directory) is left where
    it is, reported with ``moved_to`` null, and ignored again at the next start.
    """
    now = datetime.now(UTC)
    reasons = list(problems)
    target = _rejected_path(path, now)
    moved: str | None = str(target)
    try:
        path.rename(target)
    except OSError as exc:
        logger.error("Cannot move %s aside: %s", path, exc.strerror)
        moved = None
    logger.warning(
        "The saved runtime configuration %s no longer validates; %s, and the service "
        "starts on defaults, the config file and the environment. Reasons: %s",
        path,
        f"it was moved to {moved}" if moved else "it is ignored",
        "; ".join(reasons),
    )
    return SetAside(file=str(path), moved_to=moved, reasons=reasons, at=now)


def write_saved(path: Path, overrides: dict[str, Any]) -> None:
    """Blocking: replace the saved file atomically with ``overrides``.

    Raises:
        StorageError: it could not be written (the old file is intact).
    """
    payload = json.dumps({"version": VERSION, "overrides": overrides}, indent=2, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, payload.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"Cannot save the configuration: {exc.strerror}") from exc


def describe_errors(exc: ValidationError, *, strip: tuple[str, ...] = ()) -> list[str]:
    """``section.key: message`` for each error (``strip``: leading location parts to drop)."""
    return [
        f"{loc}: {message}" if loc else message
        for loc, message in validation_problems(exc, strip=strip)
    ]


def _rejected_path(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.stem}.rejected-{stamp}{path.suffix}")
    counter = 1
    while candidate.exists():  # two rejections within a second: keep both
        counter += 1
        candidate = path.with_name(f"{path.stem}.rejected-{stamp}-{counter}{path.suffix}")
    return candidate
