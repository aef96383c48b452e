"""GET /config/current and PUT /config/update: strict validation, atomic persistence, live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldepot.errors import ConfigError
from modeldepot.settings import Settings
from tests.support import SettingsFactory, run_app


async def test_current_config_has_the_seed_shape(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        body = (await app.client.get("/api/v1/config/current")).json()
    assert body["storage"]["models_directory"] == str(settings.models_dir)
    assert {"max_storage_gb", "cleanup_threshold_percent"} <= set(body["storage"])
    assert {"max_concurrent_downloads", "max_retries", "bandwidth_limit_mbps"} <= set(
        body["downloads"]
    )
    assert body["features"] == {
        "enhanced_downloads": True,
        "health_monitoring": True,
        "intelligent_fallback": True,
        "usage_analytics": True,
    }
    assert body["downloads"]["max_concurrent_downloads"] == 3


async def test_update_applies_live_and_persists_across_restart(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    update = {
        "downloads": {"max_concurrent_downloads": 5, "bandwidth_limit_mbps": 50},
        "health_monitoring": {"check_interval_hours": 12, "auto_repair_enabled": True},
    }
    async with run_app(settings, resolve=False) as app:
        response = await app.client.put("/api/v1/config/update", json=update)
        current = (await app.client.get("/api/v1/config/current")).json()
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "updated_settings": [
            "downloads.bandwidth_limit_mbps",
            "downloads.max_concurrent_downloads",
            "health_monitoring.auto_repair_enabled",
            "health_monitoring.check_interval_hours",
        ],
        "restart_required": False,
        "pending_restart": [],
    }
    assert current["downloads"]["max_concurrent_downloads"] == 5
    assert current["health_monitoring"]["check_interval_hours"] == 12

    async with run_app(settings, resolve=False) as app:
        after_restart = (await app.client.get("/api/v1/config/current")).json()
    assert after_restart == current


async def test_unchanged_values_are_not_reported_as_updated(
    make_settings: SettingsFactory,
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.put(
            "/api/v1/config/update", json={"downloads": {"max_retries": 3}}
        )
    assert response.json()["updated_settings"] == []


async def test_models_directory_change_needs_restart(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    new_dir = tmp_path / "elsewhere"
    async with run_app(settings, resolve=False) as app:
        response = await app.client.put(
            "/api/v1/config/update", json={"storage": {"models_directory": str(new_dir)}}
        )
        current = (await app.client.get("/api/v1/config/current")).json()
    assert response.json()["restart_required"] is True
    assert response.json()["pending_restart"] == ["storage.models_directory"]
    assert current["storage"]["models_directory"] == str(settings.models_dir)
    async with run_app(settings, resolve=False) as app:
        restarted = (await app.client.get("/api/v1/config/current")).json()
    assert restarted["storage"]["models_directory"] == str(new_dir)
    assert new_dir.is_dir()


BAD_UPDATES: list[Any] = [
    {"downloads": {"max_concurrent_downloads": "5"}},
    {"downloads": {"max_concurrent_downloads": 5.5}},
    {"downloads": {"max_concurrent_downloads": 0}},
    {"downloads": {"max_concurrent_downloads": None}},
    {"downloads": {"bandwidth_limit_mbps": -1}},
    {"downloads": {"no_such_key": 1}},
    {"no_such_section": {}},
    {"features": {"usage_analytics": "yes"}},
    {"downloads": None},
    {"storage": {"models_directory": "relative/dir"}},
    {"storage": {"models_directory": "/etc/modeldepot"}},
    {"storage": {"models_directory": "/tmp/x\r\nInjected: 1"}},
    {"storage": {"cleanup_threshold_percent": 150}},
    [],
    "text",
    None,
]


@pytest.mark.parametrize("body", BAD_UPDATES)
async def test_bad_updates_are_422_and_change_nothing(
    body: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        before = (await app.client.get("/api/v1/config/current")).json()
        response = await app.client.put("/api/v1/config/update", json=body)
        after = (await app.client.get("/api/v1/config/current")).json()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert after == before
    assert not settings.runtime_config_path.exists()


async def test_non_json_body_is_rejected(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.put(
            "/api/v1/config/update",
            content=b"downloads.max_retries=5",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_overrides_file_is_written_atomically(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        await app.client.put("/api/v1/config/update", json={"downloads": {"max_retries": 7}})
    data = json.loads(settings.runtime_config_path.read_text())
    assert data == {"version": 1, "overrides": {"downloads": {"max_retries": 7}}}
    leftovers = [p.name for p in settings.data_dir.iterdir() if ".tmp" in p.name]
    assert leftovers == []


@pytest.mark.parametrize(
    "content",
    ['{"version": 1, "overrides": {"downloads": {"max_ret', '{"overrides": {"bogus": {}}}', "[]"],
)
def test_unreadable_overrides_file_stops_startup_naming_it(
    content: str, make_settings: SettingsFactory
) -> None:
    from modeldepot.config.service import ConfigService

    settings: Settings = make_settings()
    settings.data_dir.mkdir(parents=True)
    settings.runtime_config_path.write_text(content)
    with pytest.raises(ConfigError) as info:
        ConfigService(settings)
    assert str(settings.runtime_config_path) in info.value.message
