"""Rate limits of ``modeldepot.api.access`` (issue 10; RELIABILITY.md 35): fixed one-minute
windows per API key or client address, in three buckets, with ``X-RateLimit-*`` headers and
429 + ``Retry-After``; loopback exempt unless ``rate_limits.exempt_loopback`` is off.

The windows start with a client's first request and last a minute, so no test here comes
near a window's end. In-process (ASGI) clients come from 127.0.0.1, like the live server's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from modeldepot.auth.keys import Role
from modeldepot.settings import RateLimitsConfig, Settings
from tests.live_server import LiveServer, live_server
from tests.support import RunningApp, SettingsFactory, run_app

V = "/api/v1"
WAIT_S = 10.0
LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
READ = f"{V}/config/current"
DOWNLOAD = f"{V}/models/download/manage"
ADMIN = f"{V}/config/update"
APP_ORIGIN = "http://app.example:3000"


@asynccontextmanager
async def limited_app(
    make_settings: SettingsFactory, *, settings: dict[str, Any] | None = None, **limits: Any
) -> AsyncIterator[RunningApp]:
    """The app with loopback clients limited (as every client here is loopback)."""
    rate_limits = {"exempt_loopback": False, **limits}
    async with run_app(
        make_settings(rate_limits=rate_limits, **(settings or {})), resolve=False
    ) as app:
        yield app


async def download_action(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    """A download action (pausing a model that does not exist: refused, but counted)."""
    return await client.post(
        DOWNLOAD, json={"model_id": "no-such-model", "action": "pause"}, headers=headers
    )


async def admin_action(client: httpx.AsyncClient, retries: int = 3) -> httpx.Response:
    return await client.put(ADMIN, json={"downloads": {"max_retries": retries}})


def limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    """(limit, remaining, reset) of a limited response; fails if one is missing."""
    limit, remaining, reset = (int(response.headers[name]) for name in LIMIT_HEADERS)
    return limit, remaining, reset


def assert_unlimited(response: httpx.Response) -> None:
    assert response.status_code < 400, response.text
    for name in (*LIMIT_HEADERS, "retry-after"):
        assert name not in response.headers


def assert_rate_limited(response: httpx.Response, limit: int) -> int:
    """A 429 in the envelope with the limit headers; returns its Retry-After."""
    assert response.status_code == 429, response.text
    assert int(response.headers["x-ratelimit-limit"]) == limit
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}
    _, remaining, reset = limit_headers(response)
    assert remaining == 0
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 61, retry_after
    # Waiting Retry-After seconds reaches the end of the window (both in whole seconds,
    # and the clock read here is a little later than the server's).
    assert reset - 1 <= time.time() + int(retry_after) <= reset + 2, (retry_after, reset)
    return int(retry_after)


async def test_limited_responses_count_down_then_429(make_settings: SettingsFactory) -> None:
    async with limited_app(make_settings, default_per_minute=5) as app:
        started = time.time()
        allowed = [await app.client.get(READ) for _ in range(5)]
        refused = await app.client.get(READ)
        missing = await app.client.get(f"{V}/models/status/detailed/no-such-model")

    headers = [limit_headers(response) for response in allowed]
    assert [r.status_code for r in allowed] == [200] * 5
    assert [limit for limit, _, _ in headers] == [5] * 5
    assert [remaining for _, remaining, _ in headers] == [4, 3, 2, 1, 0]
    resets = {reset for _, _, reset in headers}
    assert len(resets) == 1, "one window"
    (reset,) = resets
    assert started <= reset <= started + 61
    assert_rate_limited(refused, 5)
    assert limit_headers(refused)[2] == reset
    # Whatever the answer would have been, an exhausted client gets the 429.
    assert_rate_limited(missing, 5)


async def test_each_bucket_has_its_own_budget(make_settings: SettingsFactory) -> None:
    limits: dict[str, Any] = {
        "default_per_minute": 2,
        "downloads_per_minute": 3,
        "admin_per_minute": 4,
    }
    async with limited_app(make_settings, **limits) as app:
        reads = [await app.client.get(READ) for _ in range(3)]
        downloads = [await download_action(app.client) for _ in range(4)]
        admins = [await admin_action(app.client, retries=n) for n in range(5)]
        read_after = await app.client.get(f"{V}/models/storage")

    assert [r.status_code for r in reads[:2]] == [200, 200]
    assert_rate_limited(reads[2], 2)
    assert [r.status_code for r in downloads[:3]] == [404] * 3, downloads[0].text
    assert [limit_headers(r)[:2] for r in downloads[:3]] == [(3, 2), (3, 1), (3, 0)]
    assert_rate_limited(downloads[3], 3)
    assert [r.status_code for r in admins[:4]] == [200] * 4
    assert [limit_headers(r)[:2] for r in admins[:4]] == [(4, 3), (4, 2), (4, 1), (4, 0)]
    assert_rate_limited(admins[4], 4)
    assert_rate_limited(read_after, 2)  # every other GET shares the default bucket


async def test_buckets_of_equal_size_are_still_separate(make_settings: SettingsFactory) -> None:
    limits: dict[str, Any] = dict.fromkeys(
        ("default_per_minute", "downloads_per_minute", "admin_per_minute"), 2
    )
    async with limited_app(make_settings, **limits) as app:
        reads = [await app.client.get(READ) for _ in range(3)]
        download = await download_action(app.client)
        admin = await admin_action(app.client)

    assert_rate_limited(reads[2], 2)
    assert limit_headers(download)[:2] == (2, 1)
    assert limit_headers(admin)[:2] == (2, 1)


async def test_budgets_are_per_api_key(make_settings: SettingsFactory) -> None:
    async with limited_app(
        make_settings, settings={"auth_required": True}, default_per_minute=3
    ) as app:
        _, alice = await app.services.keys.create("alice", Role.user)
        _, bob = await app.services.keys.create("bob", Role.user)

        async def get(key: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return await app.client.get(READ, headers=headers)

        alices = [await get(alice) for _ in range(4)]
        bobs = [await get(bob) for _ in range(3)]
        anonymous = [await get(None) for _ in range(4)]
        wrong = await get("mdk_000000000000_" + "a" * 43)

    assert [r.status_code for r in alices[:3]] == [200] * 3
    assert_rate_limited(alices[3], 3)
    assert [r.status_code for r in bobs] == [200] * 3, "bob has a budget of his own"
    assert [limit_headers(r)[1] for r in bobs] == [2, 1, 0]
    # Without a (valid) key the address is the client: it is limited too, before the key
    # is judged, so guessing keys is throttled.
    assert [r.status_code for r in anonymous[:3]] == [401] * 3
    assert [limit_headers(r)[1] for r in anonymous[:3]] == [2, 1, 0]
    assert_rate_limited(anonymous[3], 3)
    assert_rate_limited(wrong, 3)


async def test_probes_and_metrics_are_never_limited(make_settings: SettingsFactory) -> None:
    async with limited_app(make_settings, default_per_minute=2) as app:
        probes = [await app.client.get(path) for path in ("/healthz", "/metrics") * 10]
        first_limited = await app.client.get(READ)

    for response in probes:
        assert_unlimited(response)
    assert limit_headers(first_limited)[:2] == (2, 1), "probes took none of the budget"


def test_loopback_clients_are_exempt_by_default(make_settings: SettingsFactory) -> None:
    settings = make_settings(rate_limits={"default_per_minute": 1, "admin_per_minute": 1})
    assert settings.rate_limits.exempt_loopback
    with (
        live_server(settings) as server,
        httpx.Client(base_url=server.base_url, timeout=WAIT_S, trust_env=False) as client,
    ):
        responses = [client.get(READ) for _ in range(10)]
        responses += [client.put(ADMIN, json={"downloads": {"max_retries": n}}) for n in range(5)]

    for response in responses:
        assert_unlimited(response)


async def test_the_environment_turns_the_loopback_exemption_off(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELDEPOT_RATE_LIMITS__EXEMPT_LOOPBACK", "false")
    monkeypatch.setenv("MODELDEPOT_RATE_LIMITS__DEFAULT_PER_MINUTE", "2")
    base = make_settings()
    settings = Settings.load(
        models_dir=base.models_dir,
        data_dir=base.data_dir,
        hf_endpoint=base.hf_endpoint,
        offline=True,
    )
    assert settings.rate_limits == RateLimitsConfig(exempt_loopback=False, default_per_minute=2)

    async with run_app(settings, resolve=False) as app:
        responses = [await app.client.get(READ) for _ in range(3)]

    assert [limit_headers(r)[:2] for r in responses[:2]] == [(2, 1), (2, 0)]
    assert_rate_limited(responses[2], 2)


async def test_a_live_config_update_applies_to_the_next_request(
    make_settings: SettingsFactory,
) -> None:
    async with limited_app(make_settings, default_per_minute=50) as app:
        before = await app.client.get(READ)
        update = await app.client.put(ADMIN, json={"rate_limits": {"default_per_minute": 2}})
        after = [await app.client.get(READ) for _ in range(3)]

    assert limit_headers(before)[0] == 50
    assert update.status_code == 200, update.text
    assert "rate_limits.default_per_minute" in update.json()["updated_settings"]
    assert after[0].json()["rate_limits"]["default_per_minute"] == 2
    assert limit_headers(after[0])[0] == 2
    assert_rate_limited(after[2], 2)


async def test_disabled_limits_add_no_headers_and_refuse_nothing(
    make_settings: SettingsFactory,
) -> None:
    async with limited_app(make_settings, enabled=False, default_per_minute=1) as app:
        off = [await app.client.get(READ) for _ in range(5)]
    async with limited_app(make_settings, default_per_minute=1) as app:
        exhausted = [await app.client.get(READ) for _ in range(2)]
        disable = await app.client.put(ADMIN, json={"rate_limits": {"enabled": False}})
        switched_off = [await app.client.get(READ) for _ in range(3)]

    for response in off + switched_off:
        assert_unlimited(response)
    assert_rate_limited(exhausted[1], 1)
    assert disable.status_code == 200, disable.text


async def test_a_permitted_page_can_read_its_429(make_settings: SettingsFactory) -> None:
    async with limited_app(
        make_settings, settings={"cors_origins": [APP_ORIGIN]}, default_per_minute=1
    ) as app:
        responses = [await app.client.get(READ, headers={"Origin": APP_ORIGIN}) for _ in range(2)]

    assert_rate_limited(responses[1], 1)
    assert responses[1].headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = responses[1].headers["access-control-expose-headers"].lower()
    assert all(name in exposed for name in (*LIMIT_HEADERS, "retry-after"))


@pytest.fixture
def burst_server(make_settings: SettingsFactory) -> Iterator[LiveServer]:
    limits = {
        "exempt_loopback": False,
        "default_per_minute": 5,
        "downloads_per_minute": 3,
        "admin_per_minute": 4,
    }
    with live_server(make_settings(rate_limits=limits)) as running:
        yield running


async def test_a_concurrent_burst_lets_exactly_the_limit_through_per_bucket(
    burst_server: LiveServer,
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    limits = {"default": 5, "downloads": 3, "admin": 4}
    wanted = {"default": 17, "downloads": 11, "admin": 13}
    plan = [bucket for bucket, count in wanted.items() for _ in range(count)]
    random.Random(seed).shuffle(plan)
    pool = httpx.Limits(max_connections=len(plan), max_keepalive_connections=len(plan))
    async with httpx.AsyncClient(
        base_url=burst_server.base_url, timeout=WAIT_S, trust_env=False, limits=pool
    ) as client:

        async def send(bucket: str, n: int) -> httpx.Response:
            if bucket == "downloads":
                return await download_action(client)
            if bucket == "admin":
                return await admin_action(client, retries=n % 10)
            return await client.get(READ if n % 2 else f"{V}/models/storage")

        responses = await asyncio.wait_for(
            asyncio.gather(*(send(bucket, n) for n, bucket in enumerate(plan))), WAIT_S
        )

    passed = Counter(b for b, r in zip(plan, responses, strict=True) if r.status_code != 429)
    refused = Counter(b for b, r in zip(plan, responses, strict=True) if r.status_code == 429)
    assert all(r.status_code < 500 for r in responses), f"seed {seed}"
    assert passed == limits, f"seed {seed}"
    assert refused == {b: wanted[b] - limits[b] for b in limits}, f"seed {seed}"
    for bucket, limit in limits.items():
        remaining = sorted(
            limit_headers(r)[1]
            for b, r in zip(plan, responses, strict=True)
            if b == bucket and r.status_code != 429
        )
        assert remaining == list(range(limit)), f"{bucket}, seed {seed}"


@pytest.mark.parametrize(
    "field", ["default_per_minute", "downloads_per_minute", "admin_per_minute"]
)
async def test_out_of_range_limits_are_refused(make_settings: SettingsFactory, field: str) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        before = (await app.client.get(READ)).json()["rate_limits"]
        answers = {
            repr(value): await app.client.put(ADMIN, json={"rate_limits": {field: value}})
            for value in (0, -1, 1e9, 1_000_000_000, 100_001, "5", 5.5, True, None)
        }
        flags = [
            await app.client.put(ADMIN, json={"rate_limits": {flag: "false"}})
            for flag in ("enabled", "exempt_loopback")
        ]
        after = (await app.client.get(READ)).json()["rate_limits"]

    for value, response in [*answers.items(), ("'false'", flags[0]), ("'false'", flags[1])]:
        assert response.status_code == 422, (value, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR", value
    assert after == before


def test_a_client_cannot_pick_its_address_with_x_forwarded_for(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(rate_limits={"exempt_loopback": False, "default_per_minute": 2})
    with (
        live_server(settings) as server,
        httpx.Client(base_url=server.base_url, timeout=WAIT_S, trust_env=False) as client,
    ):
        statuses = [
            client.get(READ, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(5)
        ]

    assert statuses == [200, 200, 429, 429, 429]


async def test_queuing_a_request_counts_as_a_download_action(
    make_settings: SettingsFactory,
) -> None:
    """``POST /models/fallback/queue`` may start a download: it spends the downloads
    budget, so queuing cannot get round the download limit."""
    async with limited_app(make_settings, downloads_per_minute=2) as app:
        first = await download_action(app.client)
        queued = await app.client.post(
            f"{V}/models/fallback/queue",
            json={"model_id": "nope", "request": {"prompt": "x"}},
        )
        refused = await download_action(app.client)
    assert limit_headers(first)[:2] == (2, 1)
    assert queued.status_code == 404  # unknown model, but counted
    assert limit_headers(queued)[:2] == (2, 0)
    assert_rate_limited(refused, 2)
