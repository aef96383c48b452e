"""``KEY=VALUE`` words of the command line as the nested JSON object the API takes.

``downloads.max_concurrent_downloads=5 features.usage_analytics=false`` becomes
``{"downloads": {"max_concurrent_downloads": 5}, "features": {"usage_analytics": false}}``.
A value is read as JSON when it parses as JSON (``5``, ``false``, ``null``, ``"5"``,
``[1, 2]``), else it is the string as written (``/data/models``): quote it as JSON to
send a string that looks like something else (``'key="5"'``). The service judges the
result, strictly, as it judges any client's (``"5"`` is no number).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from modeldepot.errors import InvalidInput


def nested(assignments: Iterable[str]) -> dict[str, Any]:
    """The object ``assignments`` describe.

    Raises: InvalidInput for a word without ``=``, an empty key part, or a key given twice
    (or given a value and sub-keys both).
    """
    result: dict[str, Any] = {}
    given: list[tuple[str, ...]] = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        parts = tuple(part.strip() for part in key.split("."))
        if not sep or not all(parts):
            raise InvalidInput(
                f"Expected KEY=VALUE (e.g. downloads.max_concurrent_downloads=5), not "
                f"{assignment!r}"
            )
        if any(_overlap(parts, earlier) for earlier in given):
            raise InvalidInput(f"{key.strip()} is given twice, or with sub-keys too")
        given.append(parts)
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value(raw)
    return result


def value(raw: str) -> Any:
    """``raw`` as JSON when it parses, else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One key is the other or a section of it."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]
