"""What the API commands show people: aligned ``key  value`` lines and tables.

Values are written one way everywhere (``cell``): nothing is ``-``, times are UTC to the
second, booleans yes/no, lists comma-separated. ``--json`` bypasses all of this (see
``cli/service.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from modeldepot.api.pagination import Pagination

NONE = "-"


def cell(value: Any) -> str:
    """``value`` as table text."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value) or NONE
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return json.dumps(value, default=str) if value else NONE
    return str(value)


def fields(console: Console, pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """``name  value`` lines, names aligned (``title`` above them)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, cell(value))
    if title:
        console.print(title, markup=False, highlight=False, soft_wrap=True)
    console.print(grid)


def fields_of(console: Console, model: BaseModel, names: Sequence[str] | None = None) -> None:
    """``fields`` of a model: the ones named, or all of them in their order."""
    values = dict(model)
    fields(console, ((name, values[name]) for name in names or list(values)))


def table(console: Console, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table; cells fold rather than being cut, so ids stay whole to be copied."""
    rendered = Table(*columns)
    for column in rendered.columns:
        column.overflow = "fold"
    for row in rows:
        rendered.add_row(*(cell(value) for value in row))
    console.print(rendered)


def line(console: Console, text: str) -> None:
    """A sentence, as written (no rich markup, no highlighting)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def page_note(console: Console, pagination: Pagination, noun: str) -> None:
    """Where this page is in the list, when the list has more than one."""
    if pagination.pages > 1:
        line(
            console,
            f"Page {pagination.page} of {pagination.pages} ({pagination.total} {noun}); "
            f"--page N for another.",
        )
