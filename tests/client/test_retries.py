"""429 and 503 are retried after their ``Retry-After``, POSTs too, a bounded number of
times; nothing else is. Faults are injected at the transport seam, in front of the real
service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from modeldepot.client import AsyncClient, Backoff, Client, RateLimited, RetryPolicy, ServiceError
from modeldepot.errors import DepotError
from modeldepot.testing import LocalHub
from tests.client.support import ENTRIES, Injecting, envelope, first_answers, make_repos
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory


@pytest.fixture
def service(local_hub: LocalHub, make_settings: SettingsFactory) -> Iterator[LiveServer]:
    make_repos(local_hub)
    with live_server(make_settings(hf_endpoint=local_hub.endpoint), entries=ENTRIES) as running:
        running.call(lambda services: services.catalog.refresh_all(), timeout=20)
        yield running


def test_429_and_503_are_retried_then_answered(service: LiveServer) -> None:
    transport = Injecting(
        first_answers(
            envelope(429, "RATE_LIMITED", **{"Retry-After": "0"}),
            envelope(503, "UPSTREAM_UNAVAILABLE", **{"Retry-After": "0"}),
        )
    )
    with Client(service.base_url, transport=transport) as client:
        status = client.model_status("tiny")
    assert status.model_id == "tiny"
    assert len(transport.requests) == 3


def test_a_post_is_retried_and_acts_once(service: LiveServer) -> None:
    transport = Injecting(first_answers(envelope(429, "RATE_LIMITED", **{"Retry-After": "0"})))
    with Client(service.base_url, transport=transport) as client:
        started = client.download("tiny")
        service.call(lambda services: services.downloads.run_until_idle(), timeout=20)
        progress = client.progress("tiny")
    assert [r.method for r in transport.requests] == ["POST", "POST", "GET"]
    assert started.success
    assert (progress.download_id, progress.status) == (started.download_id, "COMPLETED")


@pytest.mark.parametrize(
    ("status", "code"), [(400, "MALFORMED_JSON"), (500, "INTERNAL_ERROR"), (502, "UPSTREAM_ERROR")]
)
def test_other_errors_are_never_retried(service: LiveServer, status: int, code: str) -> None:
    transport = Injecting(first_answers(envelope(status, code)))
    with Client(service.base_url, transport=transport) as client:
        with pytest.raises(DepotError) as error:
            client.download("tiny")
        assert client.model_status("tiny").availability_status == "MISSING"  # nothing started
    assert (error.value.code, error.value.status) == (code, status)
    assert [r.method for r in transport.requests] == ["POST", "GET"]


def test_retries_are_bounded(service: LiveServer) -> None:
    transport = Injecting(lambda _request: envelope(429, "RATE_LIMITED", **{"Retry-After": "0"}))
    policy = RetryPolicy(attempts=3)
    with (
        Client(service.base_url, transport=transport, retry=policy) as client,
        pytest.raises(RateLimited),
    ):
        client.healthz()
    assert len(transport.requests) == 3


def test_the_wait_is_the_retry_after(service: LiveServer) -> None:
    transport = Injecting(
        first_answers(envelope(503, "UPSTREAM_UNAVAILABLE", **{"Retry-After": "1"}))
    )
    with Client(service.base_url, transport=transport) as client:
        started = time.monotonic()
        client.healthz()
        waited = time.monotonic() - started
    assert waited >= 1.0  # the SDK's own wait, which is what is under test
    assert len(transport.requests) == 2


async def test_the_async_client_retries_too(service: LiveServer) -> None:
    transport = Injecting(
        first_answers(
            envelope(503, "UPSTREAM_UNAVAILABLE", **{"Retry-After": "0"}),
            None,
            envelope(400, "MALFORMED_JSON"),
        )
    )
    async with AsyncClient(service.base_url, transport=transport) as client:
        assert (await client.healthz()).status == "ok"
        with pytest.raises(ServiceError):
            await client.healthz()
        assert (await client.healthz()).status == "ok"
    assert len(transport.requests) == 4


def test_the_policy_decides_from_status_retry_after_and_attempt() -> None:
    policy = RetryPolicy(attempts=3, max_delay=30, backoff=Backoff(first=2, cap=8))
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    def delay(status: int, attempt: int = 0, **headers: str) -> float | None:
        return policy.delay(httpx.Response(status, headers=headers), attempt)

    assert delay(429, **{"Retry-After": "7"}) == 7
    assert delay(503, **{"Retry-After": "120"}) == 30  # capped
    assert delay(503, **{"Retry-After": in_a_minute}) == 30
    assert 1 <= (delay(503) or 0) <= 2  # no Retry-After: backoff with jitter
    assert 2 <= (delay(503, attempt=1) or 0) <= 4
    assert delay(429, attempt=2) is None  # the third try was the last
    for never in (400, 404, 409, 500, 502, 504):
        assert delay(never, **{"Retry-After": "1"}) is None
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
