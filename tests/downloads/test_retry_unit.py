"""Retry decisions on their own: backoff growth and cap, jitter, Retry-After, permanence.

The jitter comes from the policy's own ``rng``; a seeded one makes every delay here
reproducible, so the bounds are checked over many draws without any chance of flaking.
"""

from __future__ import annotations

import itertools
import random

import pytest

from modeldepot.downloads.retry import RetryPolicy, is_transient
from modeldepot.errors import (
    ChecksumMismatch,
    DepotError,
    DiskFull,
    InsufficientStorage,
    InvalidInput,
    RedirectError,
    StorageError,
    StorageReadOnly,
    TransferInterrupted,
    UnsafePath,
    UnsafeSource,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

DRAWS = 200


def policy(seed: int = 7, **fields: float) -> RetryPolicy:
    return RetryPolicy(**fields, rng=random.Random(seed))


def cut() -> TransferInterrupted:
    return TransferInterrupted("connection reset")


@pytest.mark.parametrize("attempt", range(1, 9))
def test_backoff_doubles_with_equal_jitter(attempt: int) -> None:
    retry = policy(base_delay=1.0, max_delay=1000.0)
    ceiling = 2.0 ** (attempt - 1)

    delays = [retry.delay(attempt, cut()) for _ in range(DRAWS)]

    # Equal jitter: never less than half the ceiling, never more than all of it.
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # ...and the jitter really spreads over that half (seeded: the same draws every run).
    spread = ceiling / 2
    assert min(delays) < ceiling / 2 + 0.1 * spread
    assert max(delays) > ceiling - 0.1 * spread


def test_backoff_grows_from_attempt_to_attempt() -> None:
    retry = policy(base_delay=0.5, max_delay=1000.0)

    lows = [min(retry.delay(a, cut()) for _ in range(DRAWS)) for a in range(1, 8)]

    # Each attempt's shortest wait is at least the previous attempt's longest possible one.
    for attempt, low in enumerate(lows, start=1):
        assert low >= 0.5 * 2 ** (attempt - 1) / 2
    assert all(later > earlier for earlier, later in itertools.pairwise(lows))


@pytest.mark.parametrize("attempt", [7, 8, 20, 100, 1000])
def test_backoff_is_capped_at_max_delay(attempt: int) -> None:
    retry = policy(base_delay=1.0, max_delay=60.0)

    delays = [retry.delay(attempt, cut()) for _ in range(DRAWS)]

    assert all(30.0 <= d <= 60.0 for d in delays)


def test_the_first_retry_waits_about_the_base_delay() -> None:
    retry = policy(base_delay=0.01, max_delay=0.05)

    assert all(0.005 <= retry.delay(1, cut()) <= 0.01 for _ in range(DRAWS))


def test_a_seeded_policy_repeats_its_delays() -> None:
    first, second = policy(seed=42), policy(seed=42)

    assert [first.delay(a, cut()) for a in range(1, 10)] == [
        second.delay(a, cut()) for a in range(1, 10)
    ]


@pytest.mark.parametrize("error_class", [UpstreamRateLimited, UpstreamUnavailable])
@pytest.mark.parametrize("retry_after", [0.0, 2.0, 7.5, 120.0, 300.0])
def test_retry_after_wins_over_backoff(
    error_class: type[UpstreamError], retry_after: float
) -> None:
    retry = policy(base_delay=1.0, max_delay=60.0, max_retry_after=300.0)
    error = error_class("slow down", retry_after=retry_after)

    # Whatever the attempt, the server's word is the wait: shorter or longer than backoff.
    assert {retry.delay(attempt, error) for attempt in (1, 5, 30)} == {retry_after}


@pytest.mark.parametrize(("retry_after", "expected"), [(301.0, 300.0), (86_400.0, 300.0)])
def test_retry_after_is_bounded(retry_after: float, expected: float) -> None:
    retry = policy(max_retry_after=300.0)

    assert retry.delay(1, UpstreamRateLimited("later", retry_after=retry_after)) == expected


def test_a_retry_after_in_the_past_means_now() -> None:
    # An HTTP date already gone by arrives as a negative number of seconds.
    retry = policy()

    assert retry.delay(3, UpstreamRateLimited("later", retry_after=-30.0)) == 0.0


def test_without_retry_after_a_rate_limit_backs_off() -> None:
    retry = policy(base_delay=1.0, max_delay=60.0)

    assert all(2.0 <= retry.delay(3, UpstreamRateLimited("later")) <= 4.0 for _ in range(DRAWS))


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable("503"),
        UpstreamTimeout("read timed out"),
        UpstreamRateLimited("429", retry_after=1),
        TransferInterrupted("body cut short"),
        UpstreamProtocolError("wrong Content-Range"),
    ],
)
def test_network_and_server_hiccups_are_transient(error: DepotError) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        UpstreamNotFound("404: no such file"),
        UpstreamUnauthorized("401: bad token"),
        UpstreamError("an upstream error of no known kind"),
        RedirectError("redirect loop"),
        UnsafeSource("file:// is not allowed"),
        UnsafePath("../ in a file name"),
        ChecksumMismatch("sha256 differs"),
        DiskFull("no space left"),
        InsufficientStorage("would not fit"),
        StorageReadOnly("read-only models directory"),
        StorageError("EIO on fsync"),
        InvalidInput("bad request"),
        DepotError("anything else"),
    ],
)
def test_failures_a_retry_cannot_fix_are_permanent(error: DepotError) -> None:
    assert not is_transient(error)


def test_a_subclass_of_a_transient_error_is_transient() -> None:
    class ConnectionReset(TransferInterrupted):
        pass

    assert is_transient(ConnectionReset("reset by peer"))
