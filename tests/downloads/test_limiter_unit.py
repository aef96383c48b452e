"""The token bucket on a simulated clock: rate, burst, live changes, unlimited, stop.

The bucket takes its clock and its sleep as arguments; here both are a ``SimClock`` whose
sleep advances the time it reports, so a rate is measured in simulated seconds, exactly,
and no test waits for real.
"""

from __future__ import annotations

import threading

import pytest

from modeldepot.downloads.limiter import MBPS, TokenBucket, take_all

CHUNK = 64 * 1024


class SimClock:
    """Simulated monotonic time: ``sleep`` advances it and records what was asked."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SimStop(threading.Event):
    """A stop event whose waits pass on the simulated clock (or return at once when set)."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if not self.is_set():
            self.clock.advance(timeout)
        return self.is_set()


def bucket_on(clock: SimClock, rate_mbps: float) -> TokenBucket:
    return TokenBucket(rate_mbps, clock=clock, sleep=clock.sleep)


def transfer(bucket: TokenBucket, total: int, chunk: int = CHUNK) -> None:
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        bucket.take(size)
        sent += size


@pytest.mark.parametrize("rate_mbps", [0.01, 0.5, 3])
@pytest.mark.parametrize("chunk", [1000, CHUNK, 1024 * 1024])
def test_a_transfer_takes_bytes_over_rate_seconds(rate_mbps: float, chunk: int) -> None:
    clock = SimClock()
    bucket = bucket_on(clock, rate_mbps)
    total = int(rate_mbps * MBPS * 10)  # ten seconds' worth
    began = clock()

    transfer(bucket, total, chunk)

    assert clock() - began == pytest.approx(10, rel=1e-6)


def test_the_first_read_pays_for_itself() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 1)

    bucket.take(MBPS // 2)

    assert clock.sleeps == [pytest.approx(0.5)]


@pytest.mark.parametrize(
    ("rate_mbps", "burst"),
    [
        (1, 0.1 * MBPS),  # a tenth of a second of traffic
        (100, 10 * MBPS),
        (0.1, CHUNK),  # never below one 64 KiB read
        (0.01, CHUNK),
    ],
)
def test_idle_time_saves_up_at_most_one_burst(rate_mbps: float, burst: float) -> None:
    clock = SimClock()
    bucket = bucket_on(clock, rate_mbps)
    clock.advance(3600)  # an hour idle saves no more than the burst

    bucket.take(int(burst))
    assert clock.sleeps == [], "the saved burst is spent without waiting"

    bucket.take(int(rate_mbps * MBPS))
    assert clock.sleeps == [pytest.approx(1.0)], "past the burst the rate rules again"


def test_any_ten_second_window_stays_within_a_few_percent_of_the_rate() -> None:
    clock = SimClock()
    rate_mbps = 4
    bucket = bucket_on(clock, rate_mbps)
    clock.advance(60)  # start with a full burst, the worst case for the first window
    began = clock()
    sent = 0
    while clock() - began < 10:
        bucket.take(CHUNK)
        sent += CHUNK

    # Everything charged by the time the window closed, minus the debt still being slept.
    assert sent <= rate_mbps * MBPS * 10 * 1.02 + CHUNK


def test_raising_the_rate_takes_effect_for_the_next_read() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 1)
    transfer(bucket, 2 * MBPS)
    assert clock() - 1000 == pytest.approx(2)

    bucket.set_rate(4)
    began = clock()
    transfer(bucket, 8 * MBPS)

    assert bucket.rate_mbps == 4
    assert clock() - began == pytest.approx(2)


def test_lowering_the_rate_shrinks_what_was_saved_up() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 10)
    clock.advance(60)  # a full burst at 10 MB/s: one MB saved

    bucket.set_rate(1)  # the burst at 1 MB/s is a tenth of that
    bucket.take(MBPS)

    assert clock.sleeps == [pytest.approx(0.9)]


def test_a_debt_survives_a_rate_change() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 1)
    stop = SimStop(clock)
    stop.set()  # the read returns at once, leaving its debt unpaid
    bucket.take(MBPS, stop)
    assert stop.waits == [pytest.approx(1.0)]

    bucket.set_rate(2)
    bucket.take(CHUNK)

    # One MB still owed plus this read, at the new rate.
    assert clock.sleeps == [pytest.approx((MBPS + CHUNK) / (2 * MBPS))]


@pytest.mark.parametrize("rate_mbps", [0, -5])
def test_zero_or_less_is_unlimited(rate_mbps: float) -> None:
    clock = SimClock()
    bucket = bucket_on(clock, rate_mbps)

    transfer(bucket, 1024 * MBPS, chunk=16 * 1024 * 1024)

    assert not bucket.limited
    assert bucket.rate_mbps == 0
    assert clock.sleeps == []


def test_removing_the_limit_live_stops_all_waiting() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 1)
    bucket.take(MBPS)
    assert len(clock.sleeps) == 1

    bucket.set_rate(0)
    transfer(bucket, 100 * MBPS)

    assert not bucket.limited
    assert len(clock.sleeps) == 1


def test_limiting_an_unlimited_bucket_starts_from_an_empty_balance() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 0)
    clock.advance(3600)
    transfer(bucket, 10 * MBPS)

    bucket.set_rate(1)
    bucket.take(MBPS)

    assert bucket.limited
    assert clock.sleeps == [pytest.approx(1.0)]


def test_a_set_stop_returns_without_sleeping_off_the_debt() -> None:
    clock = SimClock()
    bucket = bucket_on(clock, 1)
    stop = SimStop(clock)
    stop.set()

    bucket.take(5 * MBPS, stop)

    assert stop.waits == [pytest.approx(5.0)]
    assert clock.sleeps == []
    assert clock() == 1000.0, "no simulated time passed"


@pytest.mark.parametrize(
    ("global_mbps", "own_mbps", "seconds"),
    [(1, 4, 8), (4, 1, 8), (0, 2, 4), (2, 0, 4), (0, 0, 0)],
)
def test_the_stricter_of_two_buckets_rules(
    global_mbps: float, own_mbps: float, seconds: float
) -> None:
    clock = SimClock()
    stop = SimStop(clock)
    buckets = (bucket_on(clock, global_mbps), bucket_on(clock, own_mbps))
    chunk = 50_000

    for _ in range(8 * MBPS // chunk):  # 8 MB
        take_all(buckets, chunk, stop)

    assert clock() - 1000 == pytest.approx(seconds, rel=1e-6)
    assert clock.sleeps == [], "with a stop event the wait is on the event"


def test_the_default_bucket_is_unlimited_on_the_real_clock() -> None:
    bucket = TokenBucket()

    bucket.take(1024 * MBPS)

    assert not bucket.limited
