"""Recommendations, storage suggestions, pins and the cleanup request's validation
(issue 11)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldepot.testing import LocalHub
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

V = "/api/v1"
NAMES = ("old", "older", "recent", "never", "pinned")


async def setup(app: RunningApp, hub: LocalHub) -> None:
    for name in NAMES:
        answer = await app.client.post(
            f"{V}/models/download/manage", json={"model_id": name, "action": "start"}
        )
        assert answer.status_code == 200, answer.text
    await app.services.downloads.run_until_idle()
    now = datetime.now(UTC)
    uses = {
        "older": [timedelta(days=90)],
        "old": [timedelta(days=45)] * 12,
        "recent": [timedelta(hours=2)],
        "pinned": [timedelta(days=100)],
    }
    events = [
        {
            "event_id": f"{name}-{n}",
            "model_id": name,
            "type": "generation_completed",
            "at": (now - ago).isoformat(),
            "duration_seconds": 1.0,
        }
        for name, agos in uses.items()
        for n, ago in enumerate(agos)
    ]
    assert (await app.client.post(f"{V}/models/usage", json={"events": events})).is_success
    pinned = await app.client.put(f"{V}/models/pins/pinned", json={"reason": "the demo model"})
    assert pinned.status_code == 200, pinned.text


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    for name in NAMES:
        local_hub.create_repo(f"acme/{name}", {"model.ckpt": os.urandom(600_000)})
    return local_hub


def entries() -> tuple[Any, ...]:
    return tuple(hub_entry(name, f"acme/{name}") for name in NAMES)


async def test_recommendations_and_suggestions_come_from_real_usage(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=entries()) as app:
        await setup(app, hub)
        default = (await app.client.get(f"{V}/models/analytics/cleanup")).json()
        everything = (
            await app.client.get(f"{V}/models/analytics/cleanup?min_unused_days=0")
        ).json()
        storage = (await app.client.get(f"{V}/models/storage")).json()
        used = storage["storage_summary"]["used_space_bytes"]
        threshold = (used - 100_000) / 1e9  # one model is enough to get under it
        enough = (
            await app.client.get(f"{V}/models/analytics/cleanup?storage_threshold_gb={threshold}")
        ).json()
        under = (
            await app.client.get(f"{V}/models/analytics/cleanup?storage_threshold_gb=1000")
        ).json()
        dry = await app.client.post(
            f"{V}/models/cleanup",
            json={"cleanup_type": "manual", "models_to_remove": ["old", "older"], "dry_run": True},
        )
    rows = {r["model_id"]: r for r in default["recommendations"]}
    assert list(rows) == ["older", "old"]  # least recently used first
    assert rows["older"]["confidence"] == 1.0  # 90 days idle: three times 30
    assert rows["older"]["action"] == "safe_to_remove"
    assert rows["older"]["reason"] == "Not used in 90 days"
    assert rows["older"]["usage_count"] == 1
    assert rows["old"]["usage_count"] == 12
    assert rows["old"]["confidence"] == round(0.5 + 0.5 * 15 / 30 - 0.2, 2)  # many uses
    assert rows["old"]["action"] == "review"
    assert rows["old"]["size_mb"] == rows["old"]["size_bytes"] / 1e6
    assert {p["model_id"]: p["reason"] for p in default["protected"]} == {"pinned": "Pinned"}
    assert default["potential_savings_bytes"] == dry.json()["space_freed_bytes"]
    assert default["target_usage_gb"] == pytest.approx(
        default["current_usage_gb"] - default["potential_savings_gb"]
    )
    assert [r["model_id"] for r in everything["recommendations"]] == [
        "older",
        "old",
        "recent",
        "never",
    ]
    never = everything["recommendations"][-1]
    assert never["reason"] == "Never used; installed 0 days ago"
    assert never["last_used"] is None
    assert [r["model_id"] for r in enough["recommendations"]] == ["older"]
    assert under["recommendations"] == []
    assert under["potential_savings_gb"] == 0
    suggestions = storage["cleanup_suggestions"]
    assert suggestions["candidates"] == ["older", "old"]
    assert suggestions["safe_to_remove_count"] == 2
    assert suggestions["potential_savings_gb"] == default["potential_savings_gb"]
    pinned_row = next(m for m in storage["models_storage"] if m["model_id"] == "pinned")
    assert pinned_row["pinned"] is True


async def test_pins_persist_and_protect_from_a_cleanup(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=entries()) as app:
        await setup(app, hub)
        again = await app.client.put(f"{V}/models/pins/pinned", json={})
        unknown = await app.client.put(f"{V}/models/pins/nobody", json={})
        too_long = await app.client.put(f"{V}/models/pins/old", json={"reason": "x" * 201})
        refused = await app.client.post(
            f"{V}/models/cleanup",
            json={"cleanup_type": "manual", "models_to_remove": ["pinned"]},
        )
    assert again.json()["reason"] is None  # a repeat updates the reason
    assert unknown.status_code == 404
    assert too_long.status_code == 422
    assert refused.json()["models_preserved"] == ["pinned"]
    assert (settings.models_dir / "models--acme--pinned").is_dir()
    async with run_app(settings, entries=entries()) as app:
        listed = (await app.client.get(f"{V}/models/pins")).json()
        removed = await app.client.delete(f"{V}/models/pins/pinned")
        after = (await app.client.get(f"{V}/models/pins")).json()
        gone = await app.client.post(
            f"{V}/models/cleanup",
            json={"cleanup_type": "manual", "models_to_remove": ["pinned"]},
        )
    assert [p["model_id"] for p in listed["pins"]] == ["pinned"]
    assert removed.status_code == 204
    assert after == {"pins": []}
    assert gone.json()["models_removed"] == ["pinned"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"cleanup_type": "manual"},
        {"cleanup_type": "manual", "models_to_remove": []},
        {"cleanup_type": "auto", "models_to_remove": ["old"]},
        {"cleanup_type": "manual", "models_to_remove": ["old", "old"]},
        {"cleanup_type": "sweep"},
        {"cleanup_type": "auto", "min_unused_days": -1},
        {"cleanup_type": "auto", "min_unused_days": 3651},
        {"cleanup_type": "auto", "min_unused_days": "5"},
        {"cleanup_type": "auto", "min_unused_days": 1.5},
        {"cleanup_type": "auto", "dry_run": "yes"},
        {"cleanup_type": "auto", "preserve_frequently_used": 1},
        {"cleanup_type": "auto", "everything": True},
        {"cleanup_type": "manual", "models_to_remove": ["../etc"]},
    ],
)
async def test_bad_cleanup_requests_are_422_and_remove_nothing(
    make_settings: SettingsFactory, body: dict[str, Any]
) -> None:
    async with run_app(make_settings(), entries=entries(), resolve=False) as app:
        answer = await app.client.post(f"{V}/models/cleanup", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] in ("VALIDATION_ERROR", "INVALID_MODEL_ID")


async def test_cleanup_records_are_kept_90_days(make_settings: SettingsFactory) -> None:
    body = {"cleanup_type": "auto", "dry_run": True}
    async with run_app(make_settings(), entries=entries(), resolve=False) as app:
        old = (await app.client.post(f"{V}/models/cleanup", json=body)).json()["cleanup_id"]
        kept = await app.client.get(f"{V}/models/cleanup/{old}")
        later = datetime.now(UTC) + timedelta(days=91)
        app.services.cleanup._clock = lambda: later
        new = (await app.client.post(f"{V}/models/cleanup", json=body)).json()["cleanup_id"]
        gone = await app.client.get(f"{V}/models/cleanup/{old}")
        present = await app.client.get(f"{V}/models/cleanup/{new}")
    assert kept.status_code == 200
    assert gone.status_code == 404
    assert present.status_code == 200


async def test_unknown_models_and_cleanup_ids(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), entries=entries(), resolve=False) as app:
        unknown = await app.client.post(
            f"{V}/models/cleanup",
            json={"cleanup_type": "manual", "models_to_remove": ["old", "nobody"]},
        )
        missing = await app.client.get(f"{V}/models/cleanup/cleanup_0123456789abcdef")
        malformed = await app.client.get(f"{V}/models/cleanup/123")
        bad_query = await app.client.get(f"{V}/models/analytics/cleanup?min_unused_days=-1")
        bad_threshold = await app.client.get(
            f"{V}/models/analytics/cleanup?storage_threshold_gb=nan"
        )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "MODEL_NOT_FOUND"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "CLEANUP_NOT_FOUND"
    assert malformed.status_code == 422
    assert bad_query.status_code == 422
    assert bad_threshold.status_code == 422
