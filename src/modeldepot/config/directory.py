"""Which directories may hold the models: the rule ``storage.models_directory`` must meet.

A runtime update may move the models directory only to a place that, at the time of the
update and again at every start that uses it, is

* an absolute path,
* inside an allowed root (``allowed_models_roots``) once fully resolved: symlinks are
  followed first, so a link cannot point the cache outside, and the resolved path is
  what is stored (a symlink planted later along the stored path is caught at start-up),
* a directory we can write to, or a path that does not exist yet whose nearest existing
  ancestor is a directory we can write to (the service creates it at start).

Writability is tested by creating and removing a probe file, never with ``os.access``:
access(2) answers for permission bits, and is wrong for root (who may write anywhere
the bits say no, yet not on a read-only mount), for ACLs and for NFS root squashing.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

from modeldepot.errors import InvalidInput
from modeldepot.singleflight import SingleFlight

KEY = "storage.models_directory"
PROBE_PREFIX = ".modeldepot-probe-"


def write_problem(directory: Path) -> OSError | None:
    """Blocking: the error creating a file in ``directory`` raises, or None if it can.

    The probe file is removed at once (``NamedTemporaryFile`` deletes it on close).
    """
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=PROBE_PREFIX):
            pass
    except OSError as exc:
        return exc
    return None


def usability_problem(path: Path) -> str | None:
    """Blocking: why ``path`` cannot be (or become) a writable directory, or None."""
    try:
        if path.exists():
            if not path.is_dir():
                return "exists and is not a directory"
            error = write_problem(path)
            return f"is not writable ({_reason(error)})" if error else None
        ancestor = nearest_existing(path)
        if not ancestor.is_dir():
            return f"cannot be created: {ancestor} is not a directory"
    except OSError as exc:
        return f"cannot be inspected ({_reason(exc)})"
    error = write_problem(ancestor)
    return f"cannot be created in {ancestor} ({_reason(error)})" if error else None


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``/`` at worst)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def check_models_directory(value: str, *, roots: Iterable[Path]) -> Path:
    """Blocking: the resolved path ``value`` names, if the models directory may move there.

    Raises:
        InvalidInput: not absolute, not resolvable (a symlink loop), outside every
            allowed root once resolved, a file, or not writable (nor creatable).
    """
    path = Path(value)
    if not path.is_absolute():
        raise _refused(value, "must be an absolute path")
    try:
        resolved = path.resolve()
        allowed = [root.expanduser().resolve() for root in roots]
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise _refused(value, "cannot be resolved") from exc
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise _refused(value, "must be inside an allowed root (setting allowed_models_roots)")
    problem = usability_problem(resolved)
    if problem:
        raise _refused(value, problem, resolved=resolved)
    return resolved


def _refused(value: str, problem: str, *, resolved: Path | None = None) -> InvalidInput:
    message = f"{KEY} {value} {problem}"
    details: dict[str, Any] = {
        "errors": [{"field": KEY, "message": message}],
        "models_directory": value,
    }
    if resolved is not None and str(resolved) != value:
        details["resolved"] = str(resolved)
    return InvalidInput(message, details=details)


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


class WriteProbe:
    """The truth about whether a directory takes writes now (``/healthz``).

    Every call asks the file system (``statvfs``: a read-only mount, no free block), which
    is cheap; a probe file, which also catches permissions, ACLs and NFS squashing, is
    created and removed at most once per ``interval`` seconds. All of it off the loop, in
    one hop to a worker thread; calls that arrive while a check runs share its answer (a
    burst of ``/healthz`` requests costs one check, issue 9).
    """

    def __init__(self, directory: Path, *, interval: float = 1.0) -> None:
        self._directory = directory
        self._interval = interval
        self._probed_at = -math.inf
        self._probe_problem: str | None = None
        self._checking: SingleFlight[None, str | None] = SingleFlight("write-probe")

    async def problem(self) -> str | None:
        """Why the directory refuses writes (errno's text), or None when it takes them."""
        return await self._checking.run(None, self._check)

    async def _check(self) -> str | None:
        probe = time.monotonic() - self._probed_at >= self._interval
        mounted, error = await anyio.to_thread.run_sync(_check_blocking, self._directory, probe)
        if mounted is not None:
            return mounted
        if probe:
            self._probe_problem = _reason(error) if error is not None else None
            self._probed_at = time.monotonic()
        return self._probe_problem


def _check_blocking(directory: Path, probe: bool) -> tuple[str | None, OSError | None]:
    mounted = _mount_problem(directory)
    if mounted is not None or not probe:
        return mounted, None
    return None, write_problem(directory)


def _mount_problem(directory: Path) -> str | None:
    try:
        info = os.statvfs(directory)
    except OSError as exc:
        return _reason(exc)
    if info.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS)
    if info.f_bavail == 0:
        return os.strerror(errno.ENOSPC)
    return None
