"""Retry decisions: which failures are worth another try, and how long to wait first.

Transient: the network or the server had a bad moment (timeouts, resets, cut bodies,
stalls, 5xx, 429, wrong Content-Range). Permanent: retrying cannot help (404, 401/403,
unsafe sources, checksum mismatch after a re-fetch, disk full, local IO errors).
Backoff is exponential with equal jitter, capped; a server's ``Retry-After`` (seconds or
an HTTP date) wins but is bounded by ``max_retry_after``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from modeldepot.errors import (
    DepotError,
    TransferInterrupted,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

TRANSIENT = (
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamRateLimited,
    TransferInterrupted,
    UpstreamProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, error: DepotError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``."""
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def is_transient(error: DepotError) -> bool:
    return isinstance(error, TRANSIENT)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
