"""``GET /models/analytics/performance``: trends from reported generation times, the newest
health check and the revisions, and the system's download and health record, on SQLite and
PostgreSQL (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modeldepot.testing import LocalHub
from tests.support import SettingsFactory, hub_entry, run_app

V = "/api/v1"
ENTRIES = (hub_entry("tiny", "acme/tiny"), hub_entry("idle", "acme/idle"))


def completed(n: int, model: str, at: datetime, seconds: float) -> dict[str, Any]:
    return {
        "event_id": f"{model}-{n}",
        "model_id": model,
        "type": "generation_completed",
        "at": at.isoformat(),
        "duration_seconds": seconds,
    }


async def test_trends_scores_and_recommendations_follow_the_real_record(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    local_hub.create_repo("acme/tiny", {"model.ckpt": bytes(3_000_000), "config.json": b"{}"})
    local_hub.create_repo("acme/idle", {"config.json": b'{"b": 1}'})
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    now = datetime.now(UTC)
    # 10 generations at 10 s, 20 days ago; 6 at 15 s and 2 failures in the last 7 days.
    events = [completed(n, "tiny", now - timedelta(days=20), 10.0) for n in range(10)]
    events += [completed(100 + n, "tiny", now - timedelta(days=1), 15.0) for n in range(6)]
    events += [
        {
            "event_id": f"fail-{n}",
            "model_id": "tiny",
            "type": "generation_failed",
            "at": (now - timedelta(hours=2)).isoformat(),
        }
        for n in range(2)
    ]
    async with run_app(settings, entries=ENTRIES) as app:
        empty = (await app.client.get(f"{V}/models/analytics/performance")).json()
        started = await app.client.post(
            f"{V}/models/download/manage", json={"model_id": "tiny", "action": "start"}
        )
        assert started.status_code == 200, started.text
        await app.services.downloads.run_until_idle()
        check = await app.client.post(f"{V}/models/health/tiny/check", json={})
        assert check.status_code == 200, check.text
        await app.services.health.run_until_idle()
        reported = await app.client.post(f"{V}/models/usage", json={"events": events})
        assert reported.json()["accepted"] == len(events)
        local_hub.commit("acme/tiny", add={"config.json": b'{"a": 2}'})  # an update
        await app.services.catalog.refresh_all()
        await app.services.availability.recompute("tiny")
        body = (await app.client.get(f"{V}/models/analytics/performance")).json()
    assert empty["system_performance"] == {
        "overall_score": None,
        "download_success_rate": None,
        "average_download_speed_mbps": None,
        "health_check_success_rate": None,
        "downloads_completed": 0,
        "downloads_failed": 0,
        "health_checks": 0,
        "window_days": 30,
    }
    tiny = body["performance_trends"]["tiny"]
    month_mean = (10 * 10 + 6 * 15) / 16
    assert tiny["last_7_days_avg"] == 15.0
    assert tiny["last_30_days_avg"] == round(month_mean, 3)
    assert tiny["trend"] == "degrading"  # 15 / 11.875 = 1.26 >= 1.1
    assert (tiny["generations_7_days"], tiny["generations_30_days"]) == (6, 16)
    assert tiny["success_rate_7_days"] == 0.75
    assert tiny["overall_health"] == "healthy"
    # success 0.75 x integrity 1 x performance 1 x speed 11.875 / 15
    assert tiny["current_score"] == round(0.75 * month_mean / 15, 3)
    assert any("longer over the last 7 days" in issue for issue in tiny["performance_issues"])
    assert "2 of 8 generations failed in the last 7 days" in tiny["performance_issues"]
    assert any("updating to the latest version" in r for r in tiny["recommendations"])
    idle = body["performance_trends"]["idle"]
    assert (idle["trend"], idle["current_score"], idle["last_7_days_avg"]) == (
        "insufficient_data",
        None,
        None,
    )
    system = body["system_performance"]
    assert system["download_success_rate"] == 1.0
    assert system["downloads_completed"] == 1
    assert system["average_download_speed_mbps"] > 0
    assert system["health_check_success_rate"] == 1.0
    scores = [1.0, 1.0, tiny["current_score"]]
    assert system["overall_score"] == round(sum(scores) / 3, 3)


async def test_a_steady_model_is_stable_and_a_faster_one_improving(
    make_settings: SettingsFactory,
) -> None:
    now = datetime.now(UTC)
    steady = [completed(n, "tiny", now - timedelta(days=n % 25), 10.0) for n in range(25)]
    faster = [completed(n, "idle", now - timedelta(days=20), 20.0) for n in range(10)]
    faster += [completed(50 + n, "idle", now - timedelta(hours=1), 10.0) for n in range(5)]
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        reported = await app.client.post(f"{V}/models/usage", json={"events": steady + faster})
        assert reported.is_success, reported.text
        body = (await app.client.get(f"{V}/models/analytics/performance")).json()
    trends = body["performance_trends"]
    assert trends["tiny"]["trend"] == "stable"
    assert trends["tiny"]["current_score"] == 1.0
    assert trends["idle"]["trend"] == "improving"  # 10 / (300 / 15) = 0.5
    assert trends["idle"]["performance_issues"] == []
