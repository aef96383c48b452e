"""Transfers that outlive their URL (RELIABILITY.md item 44): the hub's signed CDN URLs
expire mid-download; the file is re-resolved once per expiry and continues where it was,
and a URL refused even when fresh fails at once instead of looping."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from modeldepot.settings import Settings
from modeldepot.testing import DEFAULT_TOKEN, LocalHub, RecordedRequest, Status, Throttle
from modeldepot.testing.faults import Delay
from tests.downloads.conftest import BIG, BIG_SIZE, Repo, app_for, finish, start, stored_file
from tests.support import RunningApp, progress_until, until

Fast = Callable[..., Settings]
EXPIRED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Request has expired</Message></Error>"
)
GCS_EXPIRED_XML = (
    b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
)
# A body reread after an expiry is at most what one connection had buffered, and the
# refusals' small XML bodies: far below a restart.
SLACK = 1024 * 1024


class ExpireEvery:
    """``on_request`` hook: expire every signed URL at the k-th CDN GET since the last
    expiry, once the current URLs have served a 206 (a real CDN never refuses a URL it has
    not yet accepted: that would be a real refusal, see the next tests)."""

    def __init__(self, hub: LocalHub, k: int, *, limit: int) -> None:
        self.hub = hub
        self.k = k
        self.limit = limit
        self.expiries = 0
        self._seen = 0
        self._mark = 0

    def __call__(self, record: RecordedRequest) -> None:
        if record.server != "cdn" or record.method != "GET" or self.expiries >= self.limit:
            return
        self._seen += 1
        served = any(r.status == 206 for r in self.hub.requests[self._mark :])
        if self._seen >= self.k and served:
            self.hub.expire_signed_urls()
            self.expiries += 1
            self._seen = 0
            self._mark = len(self.hub.requests)


def resolves(hub: LocalHub, path: str = BIG) -> int:
    """How often the transfer asked the hub for the file's URL."""
    return len(hub.requests.filter(server="hub", method="HEAD", filename=path))


def refused(hub: LocalHub) -> list[RecordedRequest]:
    return [r for r in hub.requests.filter(server="cdn", method="GET") if r.status == 403]


def cdn_bytes(hub: LocalHub) -> int:
    return sum(r.bytes_sent for r in hub.requests.filter(server="cdn", method="GET"))


def assert_verified(settings: Settings, repo: Repo, progress: dict[str, Any]) -> None:
    assert progress["status"] == "COMPLETED", progress
    assert progress["retry_count"] == 0  # renewals are not retries
    stored = stored_file(settings, repo, BIG).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == repo.sha256(BIG)


async def test_download_continues_across_forced_expiries(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.signed_url_ttl = 3600
    hook = ExpireEvery(local_hub, 3, limit=4)
    local_hub.on_request = hook
    settings = fast_settings(downloads={"connections_per_file": 4}, hf_token=DEFAULT_TOKEN)
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_verified(settings, repo, progress)
    assert hook.expiries >= 3
    assert refused(local_hub)
    # One renewal per expiry at most, however many connections were refused.
    assert 2 <= resolves(local_hub) <= 1 + hook.expiries
    assert cdn_bytes(local_hub) <= BIG_SIZE + SLACK
    # Renewing asks the hub with the token; the CDN never sees it.
    hub = local_hub.requests.filter(server="hub", filename=BIG)
    assert all(r.authorization == f"Bearer {DEFAULT_TOKEN}" for r in hub)
    assert all(r.authorization is None for r in local_hub.requests.filter(server="cdn"))


async def test_download_spans_several_ttls_behind_a_throttled_cdn(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    # 13 segments of 256 KiB over 4 connections at 120 KB/s each: a new request every
    # 2.2 s, each after the URL's 1 s TTL (2 s at most: Expires has whole seconds).
    local_hub.signed_url_ttl = 1
    local_hub.faults.add(Throttle(bytes_per_second=120_000), server="cdn", method="GET")
    settings = fast_settings(downloads={"connections_per_file": 4}, stall_timeout_seconds=10)
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app, within=50)
    assert_verified(settings, repo, progress)
    # The transfer outlived several TTLs: its URLs were refused as expired, and renewed.
    assert len(refused(local_hub)) >= 2
    assert 3 <= resolves(local_hub) <= 1 + len(refused(local_hub))
    assert cdn_bytes(local_hub) <= BIG_SIZE + SLACK


async def test_connections_refused_together_share_one_renewal(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.signed_url_ttl = 3600
    local_hub.faults.add(Throttle(bytes_per_second=512 * 1024), server="cdn", method="GET")
    # A slow resolve: every connection is refused while the one renewal is under way.
    local_hub.faults.add(Delay(seconds=0.5), server="hub", method="HEAD", filename=BIG)
    settings = fast_settings(downloads={"connections_per_file": 8})
    async with app_for(settings) as app:
        await start(app)
        await until(lambda: len(local_hub.requests.filter(server="cdn", method="GET")) >= 8)
        local_hub.expire_signed_urls()  # while every connection streams its first segment
        progress = await finish(app)
    assert_verified(settings, repo, progress)
    assert len(refused(local_hub)) >= 3
    assert resolves(local_hub) == 2


async def test_expiry_during_a_long_pause_then_resume(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.signed_url_ttl = 3600
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, bandwidth_limit_mbps=2)
        await progress_until(app, lambda body: body["downloaded_mb"] > 0.5)
        paused = await _manage(app, "pause")
        assert paused["new_status"] == "PAUSED"
        kept = _checkpointed_ranges(settings, repo)
        local_hub.expire_signed_urls()  # the pause outlived every URL issued so far
        await _manage(app, "update", bandwidth_limit_mbps=0)
        before_resume = len(local_hub.requests)  # pause waited for every connection to end
        await _manage(app, "resume")
        progress = await finish(app)
    assert_verified(settings, repo, progress)
    # Resumed, not restarted: no byte checkpointed before the pause is asked for again.
    again = [r for r in local_hub.requests[before_resume:] if r.server == "cdn"]
    assert again
    assert kept
    for request in again:
        if request.range:
            first = int(request.range.removeprefix("bytes=").partition("-")[0])
            assert not any(a <= first < b for a, b in kept), (request.range, kept)


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (403, EXPIRED_XML),
        (401, None),
        (410, None),
        (400, GCS_EXPIRED_XML),
    ],
)
async def test_each_way_a_cdn_says_expired_renews_the_url(
    code: int, body: bytes | None, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    rule = local_hub.faults.add(
        Status(code, body=body), server="cdn", method="GET", filename=BIG, times=1
    )
    settings = fast_settings(downloads={"connections_per_file": 1})
    async with app_for(settings) as app:
        await start(app, max_retries=0)  # no retry is needed: a renewal is not one
        progress = await finish(app)
    assert rule.hits == 1
    assert_verified(settings, repo, progress)
    assert resolves(local_hub) == 2


async def test_a_400_that_does_not_say_expired_is_retried_not_renewed(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(Status(400), server="cdn", method="GET", filename=BIG, times=1)
    settings = fast_settings(downloads={"connections_per_file": 1})
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert progress["status"] == "COMPLETED"
    assert resolves(local_hub) == 1


async def test_a_url_refused_even_when_fresh_fails_fast(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.signed_url_ttl = 3600
    rule = local_hub.faults.add(
        Status(403, body=EXPIRED_XML), server="cdn", method="GET", filename=BIG, times=None
    )
    settings = fast_settings(downloads={"connections_per_file": 4})
    async with app_for(settings) as app:
        await start(app, max_retries=5)
        progress = await finish(app, within=10)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UPSTREAM_UNAUTHORIZED"
    assert "Access denied" in progress["error_message"]
    assert resolves(local_hub) == 2  # the first URL and one fresh one: no loop
    assert rule.hits <= 2 * 4
    assert not stored_file(settings, repo, BIG).exists()


async def test_a_refusal_by_the_hub_itself_is_not_renewed(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    rule = local_hub.faults.add(
        Status(403), server="hub", method="GET", filename="config.json", times=None
    )
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, max_retries=5)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UPSTREAM_UNAUTHORIZED"
    assert rule.hits == 1
    # A small file is one GET, without a HEAD first: asked for once, never again.
    assert len(local_hub.requests.filter(server="hub", filename="config.json")) == 1


def _checkpointed_ranges(settings: Settings, repo: Repo) -> list[tuple[int, int]]:
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    checkpoint = json.loads((blobs / f"{repo.sha256(BIG)}.modeldepot-partial.json").read_text())
    return [(a, a + d) for a, _b, d in checkpoint["plan"]["segments"] if d]


async def _manage(app: RunningApp, action: str, **fields: Any) -> dict[str, Any]:
    response = await app.client.post(
        "/api/v1/models/download/manage", json={"model_id": "tiny", "action": action, **fields}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())
