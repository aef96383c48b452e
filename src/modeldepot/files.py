"""Durable file writes shared by every layer: replace a file atomically, fsync a folder.

A reader (another process, or this one after a crash) sees the old or the new file, never
half of one; the data directory's runtime configuration, checkpoints, refs and lock
records all go through here.
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so a reader sees the old or the new file, never a half.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.

    Raises:
        OSError: from the file system (callers translate it).
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable.

    Raises:
        OSError: from the file system.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
