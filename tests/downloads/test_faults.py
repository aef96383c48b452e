"""Transfer faults over real HTTP (RELIABILITY.md items 10-22): each ends verified or failed
with a reason, never with wrong bytes presented as a model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from modeldepot.settings import Settings
from modeldepot.testing import (
    ChangeETag,
    CutBody,
    ExtraBytes,
    GzipBomb,
    IgnoreRange,
    LocalHub,
    Stall,
    Status,
    WrongBytes,
    WrongContentRange,
)
from tests.downloads.conftest import BIG, BIG_SIZE, Repo, app_for, finish, start, stored_file

Fast = Callable[..., Settings]


def assert_complete(settings: Settings, repo: Repo, progress: dict[str, object]) -> None:
    assert progress["status"] == "COMPLETED", progress
    for path, data in repo.files.items():
        stored = stored_file(settings, repo, path).read_bytes()
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest(), path
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    assert not [p for p in blobs.iterdir() if "partial" in p.name]


def cdn_bytes(hub: LocalHub) -> int:
    return sum(r.bytes_sent for r in hub.requests if r.server == "cdn" and r.method == "GET")


async def test_server_ignoring_range_restarts_file_from_zero(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(IgnoreRange(), server="cdn", times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_complete(settings, repo, progress)


async def test_wrong_content_range_is_discarded_and_retried(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    rule = local_hub.faults.add(WrongContentRange(shift=4096), server="cdn", times=2)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert rule.hits == 2
    assert_complete(settings, repo, progress)


@pytest.mark.parametrize("chunked", [False, True])
async def test_cut_bodies_resume_without_refetching(
    chunked: bool, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(
        CutBody(after_bytes=100_000, chunked=chunked), server="cdn", filename=BIG, times=3
    )
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_complete(settings, repo, progress)
    # Only what was cut short is asked for again: no more than one write buffer per cut.
    assert cdn_bytes(local_hub) <= BIG_SIZE + 3 * 1024 * 1024


async def test_changed_etag_restarts_and_mismatching_bytes_fail(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(CutBody(after_bytes=200_000), server="cdn", filename=BIG, times=1)
    local_hub.faults.add(ChangeETag(etag='"v2"'), server="cdn", filename=BIG, times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "CHECKSUM_MISMATCH"
    assert not stored_file(settings, repo, BIG).exists()
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    assert repo.sha256(BIG) not in {p.name for p in blobs.iterdir()}
    assert not [p for p in blobs.iterdir() if "partial" in p.name]


async def test_wrong_bytes_are_fetched_again_then_fail(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(WrongBytes(offsets=(12345,)), server="cdn", filename=BIG, times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "CHECKSUM_MISMATCH"
    assert "fetched twice" in progress["error_message"]
    assert status["availability_status"] == "FAILED"
    assert status["is_available"] is False
    assert not stored_file(settings, repo, BIG).exists()
    assert cdn_bytes(local_hub) >= 2 * BIG_SIZE


async def test_wrong_bytes_once_are_repaired_by_one_refetch(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(WrongBytes(offsets=(0,)), server="cdn", filename=BIG, times=1)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_complete(settings, repo, progress)


async def test_stalled_connection_is_replaced(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(Stall(after_bytes=50_000, seconds=20), server="cdn", filename=BIG, times=2)
    settings = fast_settings(stall_timeout_seconds=0.3)
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app, within=15)
    assert_complete(settings, repo, progress)


@pytest.mark.parametrize("as_date", [False, True])
async def test_retry_after_is_honoured_and_visible(
    as_date: bool, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    retry_after: int | datetime = 1
    if as_date:
        retry_after = datetime.now(UTC) + timedelta(seconds=2)
    local_hub.faults.add(Status(429, retry_after=retry_after), server="cdn", filename=BIG, times=1)
    settings = fast_settings(downloads={"connections_per_file": 1})
    async with app_for(settings) as app:
        await start(app)
        seen = await _wait_for_retry(app)
        progress = await finish(app)
    assert seen["retry_count"] == 1
    assert "429" in seen["error_message"]
    assert_complete(settings, repo, progress)
    # The retry that later succeeded leaves no stale error on the completed download.
    assert progress["error_message"] is None
    assert progress["error_code"] is None


async def _wait_for_retry(app: object) -> dict[str, object]:
    import asyncio

    for _ in range(200):
        body = (await app.client.get("/api/v1/models/download/progress/tiny")).json()  # type: ignore[attr-defined]
        if body["retry_count"]:
            return dict(body)
        await asyncio.sleep(0.01)
    raise AssertionError("retry never visible")


async def test_persistent_5xx_fails_after_max_retries(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(Status(503), server="cdn", filename=BIG, times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, max_retries=2)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UPSTREAM_UNAVAILABLE"
    assert "503" in progress["error_message"]
    assert progress["max_retries"] == 2


@pytest.mark.parametrize(
    ("code", "error_code", "words"),
    [
        (404, "UPSTREAM_NOT_FOUND", "does not exist"),
        (403, "UPSTREAM_UNAUTHORIZED", "Access denied"),
        (401, "UPSTREAM_UNAUTHORIZED", "HF_TOKEN"),
    ],
)
async def test_permanent_errors_fail_at_once_with_a_reason(
    code: int, error_code: str, words: str, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    rule = local_hub.faults.add(Status(code), server="cdn", filename=BIG, times=None)
    settings = fast_settings(downloads={"connections_per_file": 1})
    async with app_for(settings) as app:
        await start(app, max_retries=5)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == error_code
    assert words in progress["error_message"]
    assert rule.hits == 1  # not retried


async def test_gated_model_says_so(local_hub: LocalHub, fast_settings: Fast) -> None:
    local_hub.create_repo("acme/gated", {"model.safetensors": b"x" * 20000}, gated=True)
    settings = fast_settings()
    async with app_for(settings, ("gated", "acme/gated")) as app:
        await start(app, "gated")
        progress = await finish(app, "gated")
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UPSTREAM_UNAUTHORIZED"
    assert "gated" in progress["error_message"]
    assert "HF_TOKEN" in progress["error_message"]


@pytest.mark.parametrize("mode", ["content_length", "chunked", "past_content_length"])
async def test_more_bytes_than_declared_abort_the_connection(
    mode: str, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(ExtraBytes(n=5000, mode=mode), server="cdn", filename=BIG, times=2)  # type: ignore[arg-type]
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_complete(settings, repo, progress)


async def test_gzip_bomb_is_never_inflated(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(
        GzipBomb(inflated_size=512 * 1024 * 1024), server="cdn", filename=BIG, times=1
    )
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert_complete(settings, repo, progress)
    cdn = [r for r in local_hub.requests if r.server == "cdn" and r.method == "GET"]
    assert all(r.headers.get("accept-encoding") == "identity" for r in cdn)
