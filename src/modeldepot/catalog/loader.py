"""Reading catalogue files and merging them over the built-in catalogue by id.

A catalogue file is TOML with a ``[[models]]`` array of tables (see ``CatalogEntry``). An
entry whose id matches a built-in one replaces it whole; others are added. Any problem
fails start-up with a message naming the file, the entry and the problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.errors import CatalogError


def load_catalog_file(path: Path) -> list[CatalogEntry]:
    """Parse one catalogue file.

    Raises:
        CatalogError: unreadable file, invalid TOML, a missing ``models`` array, an invalid
            entry, or the same id twice in the file.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(path, None, f"cannot be read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _error(path, None, f"is not valid TOML: {exc}") from exc
    unknown = set(data) - {"models"}
    if unknown:
        raise _error(path, None, f"has unknown top-level keys {sorted(unknown)}")
    raw_entries = data.get("models")
    if not isinstance(raw_entries, list):
        raise _error(path, None, "needs a [[models]] array of tables")
    entries = [_parse_entry(path, index, raw) for index, raw in enumerate(raw_entries)]
    _reject_duplicates(path, entries)
    return entries


def merge_catalogs(*layers: Iterable[CatalogEntry]) -> dict[str, CatalogEntry]:
    """Merge layers in order; a later entry replaces an earlier one with the same id."""
    merged: dict[str, CatalogEntry] = {}
    for layer in layers:
        for entry in layer:
            merged[entry.id] = entry
    return merged


def _parse_entry(path: Path, index: int, raw: Any) -> CatalogEntry:
    label = _entry_label(index, raw)
    if not isinstance(raw, dict):
        raise _error(path, label, "is not a table")
    try:
        return CatalogEntry.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}"
            for err in exc.errors()
        )
        raise _error(path, label, problems) from exc


def _entry_label(index: int, raw: Any) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return f"models[{index}] (id '{raw['id'][:140]}')"
    return f"models[{index}]"


def _reject_duplicates(path: Path, entries: Sequence[CatalogEntry]) -> None:
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.id in seen:
            raise _error(path, f"models[{index}] (id '{entry.id}')", "repeats an id")
        seen.add(entry.id)


def _error(path: Path, entry: str | None, problem: str) -> CatalogError:
    where = f"{path}: {entry}" if entry else str(path)
    return CatalogError(
        f"Catalogue {where} {problem}" if entry is None else f"Catalogue {where}: {problem}",
        details={"file": str(path), "entry": entry, "problem": problem},
    )
