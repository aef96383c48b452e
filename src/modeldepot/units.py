"""Units, in one place (PRODUCT.md): ``*_mb`` fields are 10^6 bytes, ``*_gb`` 10^9 bytes,
``*_mbps`` 10^6 bytes per second. Binary sizes (``MiB``) are for buffers, segments and
windows, never for what the API reports.
"""

from __future__ import annotations

MB = 1_000_000
GB = 1_000_000_000
MiB = 1024 * 1024


def to_mb(n_bytes: float, *, digits: int = 3) -> float:
    """Bytes as the API's megabytes (10^6), rounded."""
    return round(n_bytes / MB, digits)


def to_gb(n_bytes: float, *, digits: int = 3) -> float:
    """Bytes as the API's gigabytes (10^9), rounded."""
    return round(n_bytes / GB, digits)


def mb_bytes(megabytes: float) -> int:
    """Megabytes (10^6), as a setting or a request states them, in whole bytes."""
    return int(megabytes * MB)


def gb_bytes(gigabytes: float) -> int:
    """Gigabytes (10^9), as a setting or a request states them, in whole bytes."""
    return int(gigabytes * GB)


def readable(n_bytes: float) -> str:
    """A size for a sentence: ``512 bytes``, ``3.1 MB``, ``12.40 GB`` (10^6, 10^9)."""
    if n_bytes < 1_000:
        return f"{n_bytes:.0f} bytes"
    if n_bytes < GB:
        return f"{n_bytes / MB:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes / 1000:.0f} kB"
    return f"{n_bytes / GB:.2f} GB"
