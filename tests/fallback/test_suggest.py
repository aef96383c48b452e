"""``POST /models/fallback/suggest`` against the real service and local hub (issue 12):
the available compatible model first, VRAM limits and requirements respected, the ranking
following a finished download and a corruption found, the strategy and waits following
the live state."""

from __future__ import annotations

import os
from typing import Any

import pytest

from modeldepot.events import FallbackSuggestion
from modeldepot.fallback.gpu import Gpu
from modeldepot.testing import LocalHub, Throttle
from tests.support import RunningApp, SettingsFactory, hub_entry, progress_until, run_app

V = "/api/v1"
T2V = {"model_type": "text-to-video", "capabilities": ["text-to-video"]}
ENTRIES = (
    hub_entry(
        "big-t2v",
        "acme/big-t2v",
        **T2V,
        quality="high",
        speed="low",
        resolutions=["1280x720"],
        vram_gb={"1280x720": 40},
        parameters_b=14,
    ),
    hub_entry(
        "small-t2v",
        "acme/small-t2v",
        **T2V,
        quality="medium",
        speed="high",
        resolutions=["832x480"],
        vram_gb={"832x480": 12},
        parameters_b=1.3,
    ),
    hub_entry(
        "ti2v",
        "acme/ti2v",
        model_type="text-image-to-video",
        capabilities=["text-to-video", "image-to-video"],
        quality="high",
        speed="medium",
        resolutions=["1280x704"],
        vram_gb={"1280x704": 30},
        parameters_b=5,
    ),
    hub_entry("i2v", "acme/i2v", model_type="image-to-video", capabilities=["image-to-video"]),
)


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    local_hub.create_repo("acme/big-t2v", {"model.ckpt": os.urandom(3_000_000)})
    for name in ("small-t2v", "ti2v", "i2v"):
        local_hub.create_repo(f"acme/{name}", {"model.ckpt": os.urandom(300_000)})
    return local_hub


async def download(app: RunningApp, model_id: str, **extra: Any) -> None:
    answer = await app.client.post(
        f"{V}/models/download/manage", json={"model_id": model_id, "action": "start", **extra}
    )
    assert answer.status_code == 200, answer.text


async def suggest(app: RunningApp, **body: Any) -> dict[str, Any]:
    answer = await app.client.post(
        f"{V}/models/fallback/suggest", json={"requested_model": "big-t2v", **body}
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


OURS = {entry.id for entry in ENTRIES}


def ranking(body: dict[str, Any]) -> list[str]:
    """The suggestions among this test's models (the built-in WAN2.2 ones, not installed,
    rank after them)."""
    return [s["suggested_model"] for s in body["suggestions"] if s["suggested_model"] in OURS]


async def test_the_available_compatible_model_comes_first_and_the_ranking_follows_the_state(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=ENTRIES) as app:
        for model_id in ("small-t2v", "i2v"):
            await download(app, model_id)
        await app.services.downloads.run_until_idle()
        events = app.services.bus.subscribe()
        first = await suggest(app)
        announced = [e for e in [await events.get()] if isinstance(e, FallbackSuggestion)]
        await download(app, "ti2v")
        await app.services.downloads.run_until_idle()
        after_download = await suggest(app)
        blob = next((settings.models_dir / "models--acme--ti2v" / "blobs").iterdir())
        data = bytearray(blob.read_bytes())
        data[100] ^= 1
        blob.write_bytes(bytes(data))
        check = await app.client.post(f"{V}/models/health/ti2v/check", json={"check_type": "full"})
        assert check.status_code == 200, check.text
        await app.services.health.run_until_idle()
        after_corruption = await suggest(app)
    # i2v cannot serve a text-to-video request; the requested model is never suggested.
    assert ranking(first) == ["small-t2v", "ti2v"]
    best = first["suggestions"][0]
    assert best["availability_status"] == "AVAILABLE"
    assert best["compatibility_score"] == round(0.8 / 0.9, 3)  # see fallback/scoring.py
    assert best["estimated_quality_difference"] in ("lower", "much_lower", "slightly_lower")
    assert best["performance_difference"] == 0.5  # two speed levels faster, no measurements
    assert first["fallback_strategy"]["strategy_type"] == "ALTERNATIVE_MODEL"
    assert first["fallback_strategy"]["recommended_action"] == "Use small-t2v immediately"
    assert first["fallback_strategy"]["can_queue_request"] is True
    assert first["requested_model_status"] == "MISSING"
    assert first["gpus"] is None  # no GPU on this machine: the VRAM term left out
    assert "No GPU detected" in first["note"]
    assert [(e.requested_model, e.suggested_model) for e in announced] == [("big-t2v", "small-t2v")]
    # Downloaded: the higher-quality model overtakes.
    assert ranking(after_download) == ["ti2v", "small-t2v"]
    assert after_download["suggestions"][0]["compatibility_score"] == 1.0
    # Corrupted: never ready, ranked last of ours, and not what the strategy recommends.
    (corrupted,) = [s for s in after_corruption["suggestions"] if s["suggested_model"] == "ti2v"]
    assert ranking(after_corruption) == ["small-t2v", "ti2v"]
    assert (corrupted["suggested_model"], corrupted["availability_status"]) == (
        "ti2v",
        "CORRUPTED",
    )
    assert corrupted["score_parts"]["health"] == 0.0
    assert after_corruption["fallback_strategy"]["recommended_action"] == (
        "Use small-t2v immediately"
    )


async def test_vram_limits_and_the_gpus_of_the_machine_are_respected(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=ENTRIES) as app:
        limited = await suggest(app, requirements={"max_vram_gb": 20})
        # A 24 GB card with 20 GB free: ti2v (30 GB) does not fit at all.
        app.services.fallback._gpus = lambda: [Gpu(name="test", total_gb=24, free_gb=20)]
        on_gpu = await suggest(app)
    assert ranking(limited) == ["small-t2v"]  # ti2v needs 30 GB
    parts = {s["suggested_model"]: s["score_parts"]["vram"] for s in on_gpu["suggestions"]}
    assert parts["small-t2v"] == 1.0
    assert parts["ti2v"] == 0.0
    assert parts["T2V-A14B"] == 0.0  # 48 GB at its smallest
    assert on_gpu["gpus"] == [{"name": "test", "total_gb": 24, "free_gb": 20}]
    assert on_gpu["note"] is None


async def test_strategy_and_waits_follow_the_live_download(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Throttle(bytes_per_second=300_000), repo="acme/big-t2v", times=None)
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=ENTRIES) as app:
        nothing_ready = await suggest(app, requirements={"model_type": "image-to-video"})
        await download(app, "big-t2v")
        await progress_until(app, lambda p: p["speed_mbps"] > 0, "big-t2v")
        waiting = await suggest(app, user_preferences={"max_wait_time_minutes": 60})
        await download(app, "small-t2v")
        await progress_until(app, lambda p: p["status"] == "COMPLETED", "small-t2v")
        impatient = await suggest(app, user_preferences={"max_wait_time_minutes": 0})
        cancel = {"model_id": "big-t2v", "action": "cancel"}
        assert (await app.client.post(f"{V}/models/download/manage", json=cancel)).is_success
        await app.services.downloads.run_until_idle()
        available = await app.client.post(
            f"{V}/models/fallback/suggest", json={"requested_model": "small-t2v"}
        )
        unknown = await app.client.post(
            f"{V}/models/fallback/suggest", json={"requested_model": "nobody"}
        )
    assert nothing_ready["fallback_strategy"]["strategy_type"] == "DOWNLOAD_AND_RETRY"
    strategy = waiting["fallback_strategy"]
    assert strategy["strategy_type"] == "QUEUE_AND_WAIT"
    assert 0 < strategy["estimated_wait_time"] <= 60
    assert impatient["fallback_strategy"]["strategy_type"] == "ALTERNATIVE_MODEL"
    assert available.json()["fallback_strategy"]["strategy_type"] == "USE_REQUESTED_MODEL"
    assert unknown.json()["requested_model_status"] is None
    assert unknown.json()["fallback_strategy"]["can_queue_request"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"requested_model": "../x"},
        {"requested_model": "big-t2v", "requirements": {"quality": "ultra"}},
        {"requested_model": "big-t2v", "requirements": {"max_vram_gb": 0}},
        {"requested_model": "big-t2v", "requirements": {"max_vram_gb": "24"}},
        {"requested_model": "big-t2v", "requirements": {"resolution": "huge"}},
        {"requested_model": "big-t2v", "user_preferences": {"max_wait_time_minutes": -1}},
        {"requested_model": "big-t2v", "user_preferences": {"prefer_smaller_models": "yes"}},
        {"requested_model": "big-t2v", "extra": 1},
    ],
)
async def test_bad_requests_are_422(make_settings: SettingsFactory, body: dict[str, Any]) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(f"{V}/models/fallback/suggest", json=body)
    assert answer.status_code == 422, answer.text
