"""GET /config/current and PUT /config/update: strict validation, real bounds, atomic
persistence, live; a saved configuration that no longer validates is set aside at start."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldepot.settings import Settings
from tests.downloads.crash_support import remount_read_only, tmpfs
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
        if body is None:  # no body at all, declared JSON
            response = await app.client.put(
                "/api/v1/config/update", headers={"content-type": "application/json"}
            )
        else:
            response = await app.client.put("/api/v1/config/update", json=body)
        after = (await app.client.get("/api/v1/config/current")).json()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert after == before
    assert not settings.runtime_config_path.exists()


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/config/update", "PUT"),
        ("/api/v1/models/download/manage", "POST"),
        ("/api/v1/models/health/TI2V-5B/check", "POST"),
    ],
)
async def test_malformed_json_is_400_in_the_envelope(
    make_settings: SettingsFactory, path: str, method: str
) -> None:
    """A body that does not parse is 400; 422 stays for one that parses but is wrong."""
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.request(
            method,
            path,
            content=b'{"downloads": {"max_retries": 5}',  # cut short
            headers={"content-type": "application/json"},
        )
        valid_but_wrong = await app.client.request(method, path, json={"nope": 1})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "MALFORMED_JSON"
    assert response.json()["error"]["request_id"]
    assert valid_but_wrong.status_code == 422
    assert valid_but_wrong.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_overrides_file_is_written_atomically(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        await app.client.put("/api/v1/config/update", json={"downloads": {"max_retries": 7}})
    data = json.loads(settings.runtime_config_path.read_text())
    assert data == {"version": 1, "overrides": {"downloads": {"max_retries": 7}}}
    leftovers = [p.name for p in settings.data_dir.iterdir() if ".tmp" in p.name]
    assert leftovers == []


# --- every numeric runtime key has a range (issue 8, RELIABILITY.md 42) ---------------------

# Values outside each key's documented range: below it (or in the gap of "0 or at least
# x"), above it, absurd magnitudes, and the non-finite numbers Python's JSON parser lets in.
OUT_OF_RANGE: dict[str, list[Any]] = {
    "storage.max_storage_gb": [-1, 1e-300, 0.0005, 1_000_001, 1e300, math.nan, math.inf],
    "storage.cleanup_threshold_percent": [-1, 0, 1e-300, 100.5, 1e300, math.nan],
    "storage.min_free_space_gb": [-1, -1e-300, 100_001, 1e308, math.inf],
    "storage.revision_grace_hours": [-1, 24 * 365 + 1, 1e300, math.nan],
    "storage.cleanup_check_interval_minutes": [0, 0.5, 525_601, 1e300, math.nan],
    "downloads.max_concurrent_downloads": [-1, 0, 65, 10**30],
    "downloads.max_retries": [-1, 101, 10**30],
    "downloads.bandwidth_limit_mbps": [-1, 1e-300, 0.009, 100_001, 1e300, math.nan, -math.inf],
    "downloads.connections_per_file": [-1, 0, 65, 10**30],
    "downloads.max_connections": [-1, 0, 257, 10**30],
    "health_monitoring.check_interval_hours": [-1, 0, 1e-300, 24 * 365 + 1, 1e300, math.nan],
    "health_monitoring.full_check_interval_hours": [-1, 0, 1e-300, 24 * 365 + 1, math.inf],
    "rate_limits.default_per_minute": [0, -1, 100_001, 1.5, math.nan],
    "rate_limits.downloads_per_minute": [0, 100_001, 1e300],
    "rate_limits.admin_per_minute": [0, 100_001, -math.inf],
}
AT_THE_LIMITS: dict[str, tuple[Any, Any]] = {
    "storage.max_storage_gb": (0.001, 1_000_000),
    "storage.cleanup_threshold_percent": (1, 100),
    "storage.min_free_space_gb": (0, 100_000),
    "storage.revision_grace_hours": (0, 24 * 365),
    "storage.cleanup_check_interval_minutes": (1, 525_600),
    "downloads.max_concurrent_downloads": (1, 64),
    "downloads.max_retries": (0, 100),
    "downloads.bandwidth_limit_mbps": (0.01, 100_000),
    "downloads.connections_per_file": (1, 64),
    "downloads.max_connections": (1, 256),
    "health_monitoring.check_interval_hours": (0.01, 24 * 365),
    "health_monitoring.full_check_interval_hours": (0.01, 24 * 365),
    "rate_limits.default_per_minute": (1, 100_000),
    "rate_limits.downloads_per_minute": (1, 100_000),
    "rate_limits.admin_per_minute": (1, 100_000),
}


def nested(key: str, value: Any) -> dict[str, Any]:
    section, name = key.split(".")
    return {section: {name: value}}


def test_the_tables_cover_every_numeric_runtime_key() -> None:
    from modeldepot.config.schemas import ConfigPublic

    numeric = {
        f"{section}.{name}"
        for section, model in ConfigPublic.model_fields.items()
        if model.annotation is not None and hasattr(model.annotation, "model_fields")
        for name, field in model.annotation.model_fields.items()
        if field.annotation in (int, float)
    }
    assert numeric == set(OUT_OF_RANGE) == set(AT_THE_LIMITS)


@pytest.mark.parametrize(
    ("key", "value"),
    [(key, value) for key, values in OUT_OF_RANGE.items() for value in values],
    ids=lambda item: str(item),
)
async def test_out_of_range_values_are_422_naming_the_key_and_change_nothing(
    key: str, value: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        before = (await app.client.get("/api/v1/config/current")).json()
        response = await app.client.put(
            "/api/v1/config/update",
            # Python's json writes (and reads) NaN and Infinity; httpx's json= would refuse.
            content=json.dumps(nested(key, value)),
            headers={"content-type": "application/json"},
        )
        after = (await app.client.get("/api/v1/config/current")).json()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in error["details"]["errors"]] == [key]
    assert key in error["message"]
    assert after == before
    assert not settings.runtime_config_path.exists()


async def test_the_limits_themselves_are_accepted_and_survive_a_restart(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    for end in (0, 1):
        update: dict[str, dict[str, Any]] = {}
        for key, limits in AT_THE_LIMITS.items():
            section, name = key.split(".")
            update.setdefault(section, {})[name] = limits[end]
        async with run_app(settings, resolve=False) as app:
            response = await app.client.put("/api/v1/config/update", json=update)
            storage = await app.client.get("/api/v1/models/storage")
        assert response.status_code == 200, response.text
        assert storage.status_code == 200, storage.text  # quota and reserve convert cleanly
        async with run_app(settings, resolve=False) as app:
            current = (await app.client.get("/api/v1/config/current")).json()
        assert current["set_aside"] is None
        for section, values in update.items():
            assert {k: current[section][k] for k in values} == values


def test_the_published_schema_states_every_range() -> None:
    from modeldepot.config.schemas import ConfigUpdate

    schema = ConfigUpdate.model_json_schema()
    for key in OUT_OF_RANGE:
        section, name = key.split(".")
        ref = schema["properties"][section]["$ref"]  # a section may be absent, never null
        field = schema["$defs"][ref.rsplit("/", 1)[1]]["properties"][name]
        assert {"minimum", "maximum", "description"} <= set(field), (key, field)


# --- storage.models_directory: a writable directory inside the allowed roots -----------------


@contextlib.contextmanager
def read_only_disk(path: Path) -> Iterator[Path]:
    """A real read-only file system (root may write a chmod 0555 directory, not this)."""
    with tmpfs(path, size="1M") as disk:
        (disk / "existing").mkdir()
        remount_read_only(disk)
        yield disk


async def refuse_models_directory(settings: Settings, value: str) -> dict[str, Any]:
    async with run_app(settings, resolve=False) as app:
        before = (await app.client.get("/api/v1/config/current")).json()
        response = await app.client.put(
            "/api/v1/config/update", json={"storage": {"models_directory": value}}
        )
        after = (await app.client.get("/api/v1/config/current")).json()
    assert response.status_code == 422, response.text
    assert after == before
    assert not settings.runtime_config_path.exists()
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in error["details"]["errors"]] == ["storage.models_directory"]
    return error


async def test_a_models_directory_that_is_a_file_is_refused(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    error = await refuse_models_directory(make_settings(), str(tmp_path / "a-file"))
    assert "not a directory" in error["message"]
    error = await refuse_models_directory(make_settings(), str(tmp_path / "a-file" / "models"))
    assert "cannot be created" in error["message"]


async def test_a_symlink_pointing_outside_the_roots_is_refused(
    make_settings: SettingsFactory, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside-the-roots")
    (tmp_path / "link").symlink_to(outside)
    (tmp_path / "dangling").symlink_to(outside / "not-yet")
    for value in (tmp_path / "link", tmp_path / "link" / "models", tmp_path / "dangling"):
        error = await refuse_models_directory(make_settings(), str(value))
        assert "allowed root" in error["message"]
    assert list(outside.iterdir()) == []


async def test_unwritable_models_directories_are_refused(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    with read_only_disk(tmp_path / "ro") as disk:
        for value in (disk / "existing", disk / "new", disk / "existing" / "new"):
            error = await refuse_models_directory(make_settings(), str(value))
            assert "Read-only file system" in error["message"]


async def test_a_symlink_inside_the_roots_is_stored_resolved(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    (tmp_path / "disks" / "big").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "disks" / "big")
    async with run_app(settings, resolve=False) as app:
        response = await app.client.put(
            "/api/v1/config/update", json={"storage": {"models_directory": str(tmp_path / "link")}}
        )
    assert response.status_code == 200, response.text
    saved = json.loads(settings.runtime_config_path.read_text())
    assert saved["overrides"]["storage"]["models_directory"] == str(tmp_path / "disks" / "big")
    assert [p.name for p in (tmp_path / "disks" / "big").iterdir()] == []  # probe removed


# --- a saved configuration that no longer validates is set aside at start-up ------------------


def save(settings: Settings, content: str) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.runtime_config_path.write_text(content)


def saved_file(overrides: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "overrides": overrides})


async def start_and_expect_set_aside(
    settings: Settings, content: str, caplog: pytest.LogCaptureFixture
) -> dict[str, Any]:
    """Start on a saved file that must be set aside; return what GET /config/current says."""
    with caplog.at_level(logging.WARNING, logger="modeldepot.config"):
        async with run_app(settings, resolve=False) as app:
            current: dict[str, Any] = (await app.client.get("/api/v1/config/current")).json()
            healthz = await app.client.get("/healthz")
            assert app.services.config.set_aside is not None
    assert healthz.status_code == 200
    assert not settings.runtime_config_path.exists()
    (rejected,) = settings.data_dir.glob("runtime-config.rejected-*.json")
    assert rejected.read_text() == content  # kept for the user, byte for byte
    set_aside = current["set_aside"]
    assert set_aside["file"] == str(settings.runtime_config_path)
    assert set_aside["moved_to"] == str(rejected)
    assert set_aside["reasons"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        str(settings.runtime_config_path) in line and all(r in line for r in set_aside["reasons"])
        for line in warnings
    ), warnings
    # The defaults (and the environment/TOML) apply, now and after the next restart.
    assert current["downloads"]["max_concurrent_downloads"] == 3
    assert current["storage"]["max_storage_gb"] == 0
    assert current["storage"]["models_directory"] == str(settings.models_dir)
    async with run_app(settings, resolve=False) as app:
        again = (await app.client.get("/api/v1/config/current")).json()
    assert again["set_aside"] is None
    assert {k: v for k, v in again.items() if k != "set_aside"} == {
        k: v for k, v in current.items() if k != "set_aside"
    }
    return current


BAD_SAVED_FILES: dict[str, tuple[str, str]] = {
    "cut short": ('{"version": 1, "overrides": {"downloads": {"max_ret', "Invalid JSON"),
    "quota of an older version": (
        saved_file({"storage": {"max_storage_gb": 1e300}, "downloads": {"max_retries": 7}}),
        "storage.max_storage_gb",
    ),
    "reserve overflowing": (
        saved_file({"storage": {"min_free_space_gb": 1e308}}),
        "storage.min_free_space_gb",
    ),
    "bandwidth of 1e-300": (
        saved_file({"downloads": {"bandwidth_limit_mbps": 1e-300}}),
        "downloads.bandwidth_limit_mbps",
    ),
    "NaN": ('{"version": 1, "overrides": {"storage": {"max_storage_gb": NaN}}}', "finite"),
    "unknown section": ('{"version": 1, "overrides": {"bogus": {}}}', "bogus"),
    "no version": ('{"overrides": {}}', "version"),
    "not an object": ("[]", "an object"),
    "a null section": (saved_file({"downloads": None}), "null"),
    "a string for a number": (saved_file({"downloads": {"max_retries": "5"}}), "max_retries"),
}


@pytest.mark.parametrize(("content", "reason"), BAD_SAVED_FILES.values(), ids=BAD_SAVED_FILES)
async def test_a_saved_configuration_that_no_longer_validates_is_set_aside(
    content: str, reason: str, make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    save(settings, content)
    current = await start_and_expect_set_aside(settings, content, caplog)
    assert any(reason in line for line in current["set_aside"]["reasons"]), current["set_aside"]


async def test_the_environment_applies_when_the_saved_configuration_is_set_aside(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(downloads={"max_retries": 9, "max_concurrent_downloads": 3})
    content = saved_file({"downloads": {"max_retries": 1000}})
    save(settings, content)
    current = await start_and_expect_set_aside(settings, content, caplog)
    assert current["downloads"]["max_retries"] == 9


async def test_a_saved_models_directory_that_became_a_file_is_set_aside(
    make_settings: SettingsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    moved = tmp_path / "moved"
    async with run_app(settings, resolve=False) as app:
        await app.client.put(
            "/api/v1/config/update", json={"storage": {"models_directory": str(moved)}}
        )
    moved.write_text("someone put a file here")
    content = settings.runtime_config_path.read_text()
    current = await start_and_expect_set_aside(settings, content, caplog)
    assert "not a directory" in " ".join(current["set_aside"]["reasons"])
    assert moved.read_text() == "someone put a file here"


async def test_a_saved_models_directory_now_behind_a_symlink_out_of_the_roots_is_set_aside(
    make_settings: SettingsFactory,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    (tmp_path / "disk").mkdir()
    async with run_app(settings, resolve=False) as app:
        await app.client.put(
            "/api/v1/config/update",
            json={"storage": {"models_directory": str(tmp_path / "disk" / "models")}},
        )
    outside = tmp_path_factory.mktemp("outside-the-roots")
    (tmp_path / "disk").rmdir()
    (tmp_path / "disk").symlink_to(outside)  # planted after the update was accepted
    content = settings.runtime_config_path.read_text()
    current = await start_and_expect_set_aside(settings, content, caplog)
    assert "allowed root" in " ".join(current["set_aside"]["reasons"])
    assert list(outside.iterdir()) == []


async def test_a_saved_models_directory_outside_narrowed_roots_is_set_aside(
    make_settings: SettingsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        await app.client.put(
            "/api/v1/config/update",
            json={"storage": {"models_directory": str(tmp_path / "elsewhere")}},
        )
    narrowed = make_settings(allowed_models_roots=[tmp_path / "models"])
    content = narrowed.runtime_config_path.read_text()
    current = await start_and_expect_set_aside(narrowed, content, caplog)
    assert "allowed root" in " ".join(current["set_aside"]["reasons"])


async def test_a_saved_models_directory_on_a_now_read_only_disk_is_set_aside(
    make_settings: SettingsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    with tmpfs(tmp_path / "disk", size="1M") as disk:
        async with run_app(settings, resolve=False) as app:
            await app.client.put(
                "/api/v1/config/update",
                json={"storage": {"models_directory": str(disk / "models")}},
            )
        remount_read_only(disk)
        content = settings.runtime_config_path.read_text()
        current = await start_and_expect_set_aside(settings, content, caplog)
    assert "Read-only file system" in " ".join(current["set_aside"]["reasons"])


async def test_a_valid_saved_configuration_is_not_set_aside(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    save(settings, saved_file({"downloads": {"max_retries": 7}}))
    with caplog.at_level(logging.WARNING, logger="modeldepot.config"):
        async with run_app(settings, resolve=False) as app:
            current = (await app.client.get("/api/v1/config/current")).json()
    assert current["downloads"]["max_retries"] == 7
    assert current["set_aside"] is None
    assert settings.runtime_config_path.exists()
    assert list(settings.data_dir.glob("runtime-config.rejected-*")) == []
    assert [r for r in caplog.records if r.name.startswith("modeldepot.config")] == []
