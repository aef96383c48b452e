"""The storage quota (issue 11): a download that does not fit evicts least recently used
idle models when ``storage.auto_cleanup`` is on, and otherwise is refused with 507 naming
them; nothing is removed without automatic cleanup, nor when removing would not be enough.
The scheduled check keeps usage under ``cleanup_threshold_percent`` the same way."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from modeldepot.cleanup.tables import CleanupRow
from modeldepot.testing import LocalHub
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

V = "/api/v1"
NAMES = ("old", "recent", "pinned", "new")
INSTALLED = ("old", "recent", "pinned")


def make_repos(hub: LocalHub) -> None:
    for name in INSTALLED:
        hub.create_repo(f"acme/{name}", {"model.ckpt": os.urandom(1_000_000)})
    hub.create_repo("acme/new", {"model.ckpt": os.urandom(1_400_000)})


async def install(app: RunningApp) -> None:
    for name in INSTALLED:
        answer = await app.client.post(
            f"{V}/models/download/manage", json={"model_id": name, "action": "start"}
        )
        assert answer.status_code == 200, answer.text
    await app.services.downloads.run_until_idle()
    now = datetime.now(UTC)
    events = [
        {
            "event_id": f"use-{name}",
            "model_id": name,
            "type": "generation_completed",
            "at": (now - ago).isoformat(),
            "duration_seconds": 3.0,
        }
        for name, ago in (("old", timedelta(days=40)), ("recent", timedelta(hours=1)))
    ]
    assert (await app.client.post(f"{V}/models/usage", json={"events": events})).is_success
    assert (await app.client.put(f"{V}/models/pins/pinned", json={})).is_success


async def configure(app: RunningApp, **storage: Any) -> None:
    answer = await app.client.put(f"{V}/config/update", json={"storage": storage})
    assert answer.status_code == 200, answer.text


def folders(models: Path) -> set[str]:
    return {p.name.removeprefix("models--acme--") for p in models.glob("models--acme--*")}


async def start_new(app: RunningApp) -> Any:
    return await app.client.post(
        f"{V}/models/download/manage", json={"model_id": "new", "action": "start"}
    )


@pytest.fixture
def entries() -> tuple[Any, ...]:
    return tuple(hub_entry(name, f"acme/{name}") for name in NAMES)


async def test_without_auto_cleanup_the_download_is_refused_naming_what_would_go(
    local_hub: LocalHub, make_settings: SettingsFactory, entries: tuple[Any, ...]
) -> None:
    make_repos(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=entries) as app:
        await install(app)
        # 3 MB held; a 3.5 MB quota: the 1.4 MB model needs about 0.9 MB more.
        await configure(app, max_storage_gb=0.0035, min_free_space_gb=0)
        refused = await start_new(app)
        active = (await app.client.get(f"{V}/models/download/active")).json()
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["code"] == "INSUFFICIENT_STORAGE"
    assert error["details"]["candidates"] == ["old"]  # least recently used, not pinned
    assert error["details"]["auto_cleanup"] is False
    assert "Removing old would free enough" in error["message"]
    assert "quota" in error["message"]
    assert active["total_active"] == 0
    assert folders(settings.models_dir) == set(INSTALLED)  # nothing removed


async def test_with_auto_cleanup_the_least_recently_used_model_makes_room(
    local_hub: LocalHub, make_settings: SettingsFactory, entries: tuple[Any, ...]
) -> None:
    make_repos(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=entries) as app:
        await install(app)
        await configure(app, max_storage_gb=0.0035, min_free_space_gb=0, auto_cleanup=True)
        started = await start_new(app)
        assert started.status_code == 200, started.text
        await app.services.downloads.run_until_idle()
        statuses = {
            name: (await app.client.get(f"{V}/models/status/detailed/{name}")).json()[
                "availability_status"
            ]
            for name in NAMES
        }
        storage = (await app.client.get(f"{V}/models/storage")).json()
        async with app.services.sessions() as session:
            rows = (await session.scalars(select(CleanupRow))).all()
    assert statuses == {
        "old": "MISSING",
        "recent": "AVAILABLE",
        "pinned": "AVAILABLE",
        "new": "AVAILABLE",
    }
    assert folders(settings.models_dir) == {"recent", "pinned", "new"}
    assert storage["storage_summary"]["used_space_bytes"] <= 3_500_000
    assert [(row.trigger, row.result["models_removed"]) for row in rows] == [("quota", ["old"])]


async def test_nothing_is_removed_when_removing_would_not_be_enough(
    local_hub: LocalHub, make_settings: SettingsFactory, entries: tuple[Any, ...]
) -> None:
    make_repos(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=entries) as app:
        await install(app)
        # 1.5 MB quota: even without old and recent, pinned (1 MB) + new (1.4 MB) is over.
        await configure(app, max_storage_gb=0.0015, min_free_space_gb=0, auto_cleanup=True)
        refused = await start_new(app)
    assert refused.status_code == 507
    details = refused.json()["error"]["details"]
    assert details["candidates"] == ["old", "recent"]
    assert "would not free enough" in refused.json()["error"]["message"]
    assert folders(settings.models_dir) == set(INSTALLED)


async def test_the_scheduled_check_keeps_usage_under_the_threshold(
    local_hub: LocalHub,
    make_settings: SettingsFactory,
    entries: tuple[Any, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_repos(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=entries) as app:
        await install(app)
        # 10 MB quota, 3 MB used: 30 %. A 15 % threshold needs two models gone.
        await configure(app, max_storage_gb=0.01, cleanup_threshold_percent=15)
        with caplog.at_level(logging.WARNING, logger="modeldepot.cleanup"):
            assert await app.services.quota.check_threshold() is None  # auto cleanup off
        assert folders(settings.models_dir) == set(INSTALLED)
        assert any("over the 15% threshold" in r.getMessage() for r in caplog.records)
        await configure(app, auto_cleanup=True)
        result = await app.services.quota.check_threshold()
        again = await app.services.quota.check_threshold()
        summary = (await app.client.get(f"{V}/models/storage")).json()["storage_summary"]
    assert result is not None
    assert (result.trigger, result.models_removed) == ("schedule", ["old", "recent"])
    assert again is None  # under the threshold now
    assert folders(settings.models_dir) == {"pinned"}
    assert summary["usage_percent"] <= 15
