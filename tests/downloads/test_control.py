"""Start, pause, resume, cancel, priorities, coalescing and bandwidth limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, Throttle
from tests.downloads.conftest import BIG, BIG_SIZE, Repo, app_for, finish, start, stored_file
from tests.support import RunningApp
from tests.support import progress_until as wait_for

Fast = Callable[..., Settings]


async def manage(app: RunningApp, action: str, model_id: str = "tiny", **fields: Any) -> Any:
    return await app.client.post(
        "/api/v1/models/download/manage", json={"model_id": model_id, "action": action, **fields}
    )


async def test_pause_keeps_bytes_and_resume_finishes(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, bandwidth_limit_mbps=2)
        await wait_for(app, lambda b: b["downloaded_mb"] > 0.5)
        paused = await manage(app, "pause")
        assert paused.json()["new_status"] == "PAUSED"
        partial_sizes = _partials(settings)
        assert partial_sizes
        assert max(partial_sizes.values()) > 0
        done = _checkpointed_ranges(settings, repo)
        assert sum(b - a for a, b in done) > 0
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        assert status["availability_status"] == "PAUSED"
        assert status["can_resume_download"] is True
        await manage(app, "update", bandwidth_limit_mbps=0)
        before_resume = len(local_hub.requests)  # pause waited for every connection to end
        resumed = await manage(app, "resume")
        # A free slot and nothing else running: the scheduler starts it before answering.
        assert resumed.json()["new_status"] == "DOWNLOADING"
        progress = await finish(app)
    assert progress["status"] == "COMPLETED"
    # Resumed, not restarted: nothing checkpointed as written is asked for again.
    again = [r for r in local_hub.requests[before_resume:] if r.range]
    assert again
    for request in again:
        first = int(request.range.removeprefix("bytes=").partition("-")[0])
        assert not any(a <= first < b for a, b in done), (request.range, done)
    assert stored_file(settings, repo, BIG).read_bytes() == repo.files[BIG]


def _checkpointed_ranges(settings: Settings, repo: Repo) -> list[tuple[int, int]]:
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    checkpoint = json.loads((blobs / f"{repo.sha256(BIG)}.modeldepot-partial.json").read_text())
    return [(a, a + d) for a, _b, d in checkpoint["plan"]["segments"] if d]


def requested_bytes(requests: Any) -> int:
    """Bytes the client asked for in ranged GETs to the CDN (what it fetched again)."""
    total = 0
    for request in requests:
        if request.server == "cdn" and request.method == "GET" and request.range:
            first, _, last = request.range.removeprefix("bytes=").partition("-")
            total += int(last) - int(first) + 1
    return total


def _partials(settings: Settings) -> dict[str, int]:
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    return {p.name: p.stat().st_size for p in blobs.glob("*.modeldepot-partial")}


async def test_cancel_removes_partial_bytes(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, bandwidth_limit_mbps=2)
        await wait_for(app, lambda b: b["downloaded_mb"] > 0.3)
        cancelled = await manage(app, "cancel")
        progress = (await app.client.get("/api/v1/models/download/progress/tiny")).json()
        again = await manage(app, "cancel")
    assert cancelled.json()["new_status"] == "CANCELLED"
    assert progress["status"] == "CANCELLED"
    assert _partials(settings) == {}
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    assert not list(blobs.glob("*.json"))
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "DOWNLOAD_NOT_FOUND"


async def test_second_start_is_409_with_the_running_download(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(Throttle(bytes_per_second=2_000_000), server="cdn", filename=BIG)
    settings = fast_settings()
    async with app_for(settings) as app:
        first = await start(app)
        second = await manage(app, "start")
        progress = await finish(app)
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "DOWNLOAD_IN_PROGRESS"
    assert error["details"]["download_id"] == first["download_id"]
    assert progress["status"] == "COMPLETED"
    gets = [r for r in local_hub.requests if r.server == "cdn" and r.method == "GET"]
    assert sum(r.bytes_sent for r in gets) <= BIG_SIZE + 256 * 1024


async def test_blob_shared_by_two_models_is_fetched_once(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.create_repo("other/copy", {BIG: repo.files[BIG], "config.json": b"{}"})
    local_hub.faults.add(Throttle(bytes_per_second=3_000_000), server="cdn", filename=BIG)
    settings = fast_settings()
    async with app_for(settings, ("tiny", "acme/tiny-video"), ("copy", "other/copy")) as app:
        await start(app, "tiny")
        await start(app, "copy")
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
        statuses = [
            (await app.client.get(f"/api/v1/models/status/detailed/{m}")).json()
            for m in ("tiny", "copy")
        ]
    assert [s["availability_status"] for s in statuses] == ["AVAILABLE", "AVAILABLE"]
    big_gets = [r for r in local_hub.requests if r.server == "cdn" and r.method == "GET"]
    assert sum(r.bytes_sent for r in big_gets) <= BIG_SIZE + 256 * 1024
    copy = settings.models_dir / "models--other--copy" / "blobs" / repo.sha256(BIG)
    assert copy.read_bytes() == repo.files[BIG]


async def test_already_available_model_is_not_downloaded_again(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        await finish(app)
        local_hub.requests.clear()
        again = await start(app)
    assert again["new_status"] == "COMPLETED"
    assert again["download_id"] is None
    assert not [r for r in local_hub.requests if r.server == "cdn"]


async def test_priorities_order_the_queue(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    for name in ("low", "normal", "critical"):
        local_hub.create_repo(f"acme/{name}", {"model.safetensors": name.encode() * 5000})
    local_hub.faults.add(Throttle(bytes_per_second=2_000_000), server="cdn", filename=BIG)
    settings = fast_settings(downloads={"max_concurrent_downloads": 1})
    models = [("tiny", "acme/tiny-video")] + [
        (n, f"acme/{n}") for n in ("low", "normal", "critical")
    ]
    async with app_for(settings, *models) as app:
        await start(app, "tiny")
        for name in ("low", "normal", "critical"):
            await start(app, name, priority=name)
        active = (await app.client.get("/api/v1/models/download/active")).json()
        changed = await manage(app, "set_priority", "low", priority="high")
        after = (await app.client.get("/api/v1/models/download/active")).json()
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
        finished = {
            n: app.services.downloads.job(n).finished_at  # type: ignore[union-attr]
            for n in ("low", "normal", "critical")
        }
    assert [
        (d["model_id"], d["status"], d["queue_position"]) for d in active["active_downloads"]
    ] == [
        ("tiny", "DOWNLOADING", None),
        ("critical", "QUEUED", 1),
        ("normal", "QUEUED", 2),
        ("low", "QUEUED", 3),
    ]
    assert active["total_active"] == 4
    assert changed.status_code == 200
    assert [d["model_id"] for d in after["active_downloads"]] == [
        "tiny",
        "critical",
        "low",
        "normal",
    ]
    assert finished["critical"] < finished["low"] < finished["normal"]


STRICT_MBPS = 0.05  # 50 KB/s: the 3.1 MB file would need a minute, twice finish()'s bound


def reference_fetch(hub: LocalHub, repo: Repo) -> None:
    """The same file straight from the local hub, unlimited: while it moves every byte,
    a download held to STRICT_MBPS moves a few reads' worth (the test's clock is work)."""
    url = f"{hub.endpoint}/{repo.repo_id}/resolve/main/{BIG}"
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        body = client.get(url).content
    assert body == repo.files[BIG]


@pytest.mark.parametrize(
    ("global_mbps", "own_mbps"),
    [(STRICT_MBPS, 100), (100, STRICT_MBPS), (STRICT_MBPS, 0), (0, STRICT_MBPS)],
    ids=["global-stricter", "own-stricter", "global-only", "own-only"],
)
async def test_the_stricter_limit_rules_until_it_is_lifted_live(
    local_hub: LocalHub,
    repo: Repo,
    fast_settings: Fast,
    global_mbps: float,
    own_mbps: float,
) -> None:
    """Both buckets are charged, so the stricter one holds the download back; lifting it
    while the download runs lets it finish. No clock is read: the rate itself is
    measured on simulated time in test_limiter_unit.py."""
    # One connection: a read held by the limit owes 1.3 s, which it sleeps off even once
    # the limit is lifted (several connections would queue their debts behind each other).
    settings = fast_settings(
        downloads={"bandwidth_limit_mbps": global_mbps, "connections_per_file": 1}
    )
    async with app_for(settings) as app:
        await start(app, bandwidth_limit_mbps=own_mbps)
        await wait_for(app, lambda b: b["downloaded_mb"] > 0)
        await asyncio.to_thread(reference_fetch, local_hub, repo)
        held = await wait_for(app, lambda b: b["status"] == "DOWNLOADING")
        if global_mbps == STRICT_MBPS:
            lifted = await app.client.put(
                "/api/v1/config/update", json={"downloads": {"bandwidth_limit_mbps": 0}}
            )
        else:
            lifted = await manage(app, "update", bandwidth_limit_mbps=0)
        # Without the lift this would take minutes; finish() allows 30 s.
        progress = await finish(app)
    # At most the first read of each connection and one burst got past the limit.
    assert held["downloaded_mb"] < 1.0, held
    assert lifted.status_code == 200, lifted.text
    assert progress["status"] == "COMPLETED"
    assert stored_file(settings, repo, BIG).read_bytes() == repo.files[BIG]


async def test_unknown_model_and_missing_download(fast_settings: Fast, repo: Repo) -> None:
    async with app_for(fast_settings()) as app:
        unknown = await manage(app, "start", "nope")
        bad_id = await manage(app, "start", "../etc")
        none = await app.client.get("/api/v1/models/download/progress/tiny")
        pause_nothing = await manage(app, "pause")
        bad_action = await manage(app, "explode")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "MODEL_NOT_FOUND"
    assert bad_id.status_code == 422
    assert none.status_code == 404
    assert none.json()["error"]["code"] == "DOWNLOAD_NOT_FOUND"
    assert pause_nothing.status_code == 404
    assert bad_action.status_code == 422


async def test_status_reflects_a_running_download(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    settings = fast_settings()
    async with app_for(settings) as app:
        subscription = app.services.bus.subscribe()
        await start(app, bandwidth_limit_mbps=1)
        await wait_for(app, lambda b: b["speed_mbps"] > 0 and b["downloaded_mb"] > 0.3)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        summary = (await app.client.get("/api/v1/models/status/detailed")).json()["summary"]
        await manage(app, "update", bandwidth_limit_mbps=0)
        await finish(app)
        after = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        changes = []
        while subscription.pending:
            event = await subscription.get()
            if event is not None and event.type == "model_availability_change":
                changes.append((event.old_status, event.new_status))  # type: ignore[attr-defined]
    assert status["availability_status"] == "DOWNLOADING"
    assert 0 < status["download_progress"] < 100
    assert status["can_pause_download"] is True
    assert status["can_resume_download"] is False
    assert status["estimated_download_time"] is not None
    assert summary["downloading_models"] == 1
    assert after["availability_status"] == "AVAILABLE"
    assert after["download_progress"] is None
    # Stored as queued, then taken by the free slot: both steps are announced, in order.
    assert changes[:2] == [("MISSING", "QUEUED"), ("QUEUED", "DOWNLOADING")]
    assert changes[-1][1] == "AVAILABLE"


async def test_a_paused_download_keeps_reporting_its_bytes(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    """Pausing keeps the bytes on disk, so progress keeps them too (it dropped to 0)."""
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, bandwidth_limit_mbps=2)
        await wait_for(app, lambda b: b["downloaded_mb"] > 0.5)
        await manage(app, "pause")
        paused = (await app.client.get("/api/v1/models/download/progress/tiny")).json()
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        done = _checkpointed_ranges(settings, repo)
        await manage(app, "cancel")
    assert paused["status"] == "PAUSED"
    big = next(f for f in paused["files"] if f["path"] == BIG)
    assert big["downloaded"] >= sum(b - a for a, b in done) > 0
    assert paused["downloaded_mb"] > 0.5
    assert paused["progress_percent"] > 0
    assert status["download_progress"] == paused["progress_percent"]


async def test_status_and_events_show_a_started_download_at_once(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    """The answer to start is already true of status and of the event stream: no lag."""
    local_hub.faults.add(Throttle(bytes_per_second=200_000), server="cdn", filename=BIG)
    settings = fast_settings()
    async with app_for(settings) as app:
        events = app.services.bus.subscribe()
        started = await start(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        seen = []
        while events.pending:
            seen.append(await events.get())
        events.close()
        await manage(app, "cancel")
    # A free slot and nothing else running: the scheduler starts it before answering.
    assert started["new_status"] == "DOWNLOADING"
    assert status["availability_status"] == started["new_status"]
    progress = [e for e in seen if e.type == "model_download_progress"]
    assert progress
    assert progress[-1].status == started["new_status"]  # type: ignore[attr-defined]
    assert progress[-1].download_id == started["download_id"]  # type: ignore[attr-defined]
