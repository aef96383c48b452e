"""Bandwidth limits: token buckets shared by every connection they govern.

The global bucket (``downloads.bandwidth_limit_mbps``) and each download's own bucket
(``bandwidth_limit_mbps`` of the request) are both charged for every chunk read, so the
stricter one rules. Rates change live; 0 means unlimited. The burst is a tenth of a
second of traffic, which keeps any 10 s window within a few percent of the rate.
"""

from __future__ import annotations

import asyncio
import time

MBPS = 1_000_000


class TokenBucket:
    def __init__(self, rate_mbps: float = 0) -> None:
        self._rate = 0.0
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self.set_rate(rate_mbps)

    @property
    def rate_mbps(self) -> float:
        return self._rate / MBPS

    def set_rate(self, rate_mbps: float) -> None:
        self._refill()
        self._rate = max(0.0, rate_mbps) * MBPS
        self._tokens = min(self._tokens, self._burst)

    @property
    def _burst(self) -> float:
        return max(self._rate * 0.1, 64 * 1024)

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self, amount: int) -> None:
        """Wait until ``amount`` bytes may pass (at once when unlimited)."""
        if not self._rate:
            return
        async with self._lock:  # FIFO among waiters: fair between connections
            while True:
                self._refill()
                if not self._rate:
                    return
                if self._tokens >= min(amount, self._burst):
                    self._tokens -= amount  # may go negative: the debt is waited off later
                    return
                await asyncio.sleep((min(amount, self._burst) - self._tokens) / self._rate)


async def acquire_all(buckets: tuple[TokenBucket, ...], amount: int) -> None:
    for bucket in buckets:
        await bucket.acquire(amount)
