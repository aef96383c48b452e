"""Bandwidth limits: token buckets shared by every connection they govern.

The global bucket (``downloads.bandwidth_limit_mbps``) and each download's own bucket
(``bandwidth_limit_mbps`` of the request) are both charged for every read, so the
stricter one rules. Transfers read on worker threads, so the buckets are thread-safe and
block the reading thread: a caller takes its bytes (the balance may go negative) and then
sleeps off its debt outside the lock, which keeps connections fair and the loop free.
Rates change live; 0 means unlimited. The balance never exceeds a tenth of a second of
traffic, which keeps any 10 s window within a few percent of the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from modeldepot.units import MB

MBPS = MB  # bytes per second in one MB/s


class TokenBucket:
    def __init__(
        self,
        rate_mbps: float = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The clock and the sleep are parameters: the bucket runs on any time source.
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = 0.0
        self._tokens = 0.0
        self._stamp = clock()
        self.set_rate(rate_mbps)

    @property
    def rate_mbps(self) -> float:
        return self._rate / MBPS

    @property
    def limited(self) -> bool:
        return self._rate > 0

    def set_rate(self, rate_mbps: float) -> None:
        with self._lock:
            self._refill()
            self._rate = max(0.0, rate_mbps) * MBPS
            self._tokens = min(self._tokens, self._burst)

    @property
    def _burst(self) -> float:
        return max(self._rate * 0.1, 64 * 1024)

    def _refill(self) -> None:
        now = self._clock()
        if self._rate:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self, amount: int, stop: threading.Event | None = None) -> None:
        """Blocking: charge ``amount`` bytes, then wait until the balance is paid off
        (returns early when ``stop`` is set)."""
        with self._lock:
            if not self._rate:
                return
            self._refill()
            self._tokens -= amount
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            if stop is None:
                self._sleep(wait)
            else:
                stop.wait(wait)


def take_all(buckets: tuple[TokenBucket, ...], amount: int, stop: threading.Event) -> None:
    for bucket in buckets:
        bucket.take(amount, stop)
