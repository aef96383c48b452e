"""Performance of an installed model: how fast its files read and its headers parse.

:func:`measure` is blocking IO (run it in a worker thread): it reads up to ``read_limit``
bytes of every snapshot file that resolves to a regular file inside the models directory
and times it, and times the structure check of every ``.safetensors`` header. Pickle
files are only read as bytes, never loaded.

:func:`score` is pure. Against the model's own baseline, the median of its earlier
measurements (none yet: the measurement is its own baseline, score 1.0)::

    read  = min(1, read_mbps / baseline_read_mbps)
    parse = min(1, baseline_parse_ms / header_parse_ms)   (1 when no headers or 0 ms)
    score = 0.7 * read + 0.3 * parse

Scores from other sources (usage data: generation and load times, a later capability)
arrive through :class:`PerformanceSource`; each one that answers is averaged in with the
same weight as the disk score. Reads may be served by the page cache: the score compares
a model with itself under the same conditions, it is not a disk benchmark.
"""

from __future__ import annotations

import os
import stat
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.health.structure import check_safetensors
from modeldepot.units import MB

READ_BLOCK = 1024 * 1024
READ_WEIGHT = 0.7
PARSE_WEIGHT = 0.3


class PerformanceSource(Protocol):
    """A later capability's view of a model's performance, as a 0..1 score or None."""

    def performance_score(self, model_id: str) -> float | None: ...


@dataclass(frozen=True)
class Measurement:
    """One performance measurement of a snapshot."""

    bytes_read: int
    read_seconds: float
    headers_parsed: int
    header_parse_ms: float
    files_read: int

    @property
    def read_mbps(self) -> float:
        return self.bytes_read / MB / self.read_seconds if self.read_seconds > 0 else 0.0


@dataclass(frozen=True)
class Score:
    value: float
    read_ratio: float
    parse_ratio: float
    baseline_read_mbps: float
    baseline_parse_ms: float


def measure(
    *, root: Path, snapshot_dir: Path, files: Iterable[ManifestFile], read_limit: int
) -> Measurement:
    """Read and time the snapshot's files. Blocking; never raises for what is on disk."""
    total, seconds, parsed, parse_ms, count = 0, 0.0, 0, 0.0, 0
    resolved_root = root.resolve()
    for manifest_file in files:
        target = _contained_file(resolved_root, snapshot_dir / manifest_file.path)
        if target is None:
            continue
        started = time.perf_counter()
        got = _read_up_to(target, read_limit)
        seconds += time.perf_counter() - started
        total, count = total + got, count + 1
        if manifest_file.path.lower().endswith(".safetensors"):
            started = time.perf_counter()
            check_safetensors(target)
            parse_ms += (time.perf_counter() - started) * 1000
            parsed += 1
    return Measurement(total, seconds, parsed, parse_ms, count)


def score(current: Measurement, history: Sequence[Measurement]) -> Score:
    """Score ``current`` against the median of ``history`` (formula in the module doc)."""
    usable = [m for m in history if m.read_mbps > 0] or [current]
    base_read = statistics.median(m.read_mbps for m in usable)
    base_parse = statistics.median(m.header_parse_ms for m in usable)
    read = min(1.0, current.read_mbps / base_read) if base_read > 0 else 1.0
    parse = 1.0
    if current.header_parse_ms > 0 and base_parse > 0:
        parse = min(1.0, base_parse / current.header_parse_ms)
    value = round(READ_WEIGHT * read + PARSE_WEIGHT * parse, 3)
    return Score(value, round(read, 3), round(parse, 3), base_read, base_parse)


def combine(disk: float, others: Iterable[float | None]) -> float:
    """The disk score averaged with every other source's answer (equal weights)."""
    values = [disk, *(v for v in others if v is not None)]
    return round(sum(values) / len(values), 3)


def _contained_file(root: Path, entry: Path) -> Path | None:
    try:
        target = entry.resolve(strict=True)
        info = target.stat()
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or not stat.S_ISREG(info.st_mode):
        return None
    return target


def _read_up_to(path: Path, limit: int) -> int:
    got = 0
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return 0
    try:
        while got < limit:
            chunk = os.read(fd, min(READ_BLOCK, limit - got))
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    return got
