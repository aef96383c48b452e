"""Retry decisions: which failures are worth another try, and how long to wait first.

Transient: the network or the server had a bad moment (timeouts, resets, cut bodies,
stalls, 5xx, 429, wrong Content-Range). Permanent: retrying cannot help (404, 401/403,
unsafe sources, checksum mismatch after a re-fetch, disk full, local IO errors).
Backoff is exponential with equal jitter, capped; a server's ``Retry-After`` (seconds or
an HTTP date, parsed where statuses are translated: modeldepot/upstream.py) wins but is
bounded by ``max_retry_after``. A signed URL that expired is not a failure at all: the
transfer renews it without counting a retry (downloads/sources.py, ``SourceLink``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

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
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Source of the jitter (a seeded one makes delays reproducible in tests)."""

    def delay(self, attempt: int, error: DepotError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``."""
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def is_transient(error: DepotError) -> bool:
    return isinstance(error, TRANSIENT)
