"""The contract, exactly (issue 9): strict request bodies, ISO 8601 UTC timestamps, 405 for a
wrong method, and feature switches that either change behaviour or are not offered."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from modeldepot.testing import LocalHub, RecordedRequest, make_safetensors
from modeldepot.testing.faults import Delay
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

BIG = "weights/model.safetensors"
BIG_BYTES = make_safetensors({"w": ("F32", [1024, 1024])}, seed=3)  # 4 MiB and a header
BIG_SIZE = len(BIG_BYTES)
SMALL = {"config.json": b'{"model_type": "tiny"}\n', "README.md": b"# tiny\n"}
ENTRY = hub_entry("tiny", "acme/tiny")
MANAGE = "/api/v1/models/download/manage"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


@pytest.fixture
def tiny(local_hub: LocalHub) -> dict[str, bytes]:
    files = {**SMALL, BIG: BIG_BYTES}
    local_hub.create_repo("acme/tiny", files)
    return files


def fast(make_settings: SettingsFactory, hub: LocalHub, **overrides: Any) -> Any:
    return make_settings(
        hf_endpoint=hub.endpoint,
        min_segment_mb=0.25,
        retry_base_delay_seconds=0.01,
        retry_max_delay_seconds=0.05,
        checkpoint_interval_seconds=0.05,
        **overrides,
    )


async def download(app: RunningApp, **extra: Any) -> dict[str, Any]:
    answer = await app.client.post(MANAGE, json={"model_id": "tiny", "action": "start", **extra})
    assert answer.status_code == 200, answer.text
    await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
    progress: dict[str, Any] = (
        await app.client.get("/api/v1/models/download/progress/tiny")
    ).json()
    assert progress["status"] == "COMPLETED", progress
    return progress


# --- strict request bodies ------------------------------------------------------------------

START = {"model_id": "tiny", "action": "start"}
UPDATE = "/api/v1/models/revisions/tiny/update"
NOT_STRICT: list[tuple[str, dict[str, Any], str]] = [
    (MANAGE, {**START, "max_retries": "3"}, "max_retries"),
    (MANAGE, {**START, "max_retries": 3.5}, "max_retries"),  # 3.0 is the integer 3
    (MANAGE, {**START, "max_retries": True}, "max_retries"),
    (MANAGE, {**START, "bandwidth_limit_mbps": "50"}, "bandwidth_limit_mbps"),
    (MANAGE, {**START, "bandwidth_limit_mbps": False}, "bandwidth_limit_mbps"),
    (MANAGE, {**START, "priority": 1}, "priority"),
    (MANAGE, {**START, "action": "START"}, "action"),
    (MANAGE, {**START, "model_id": 7}, "model_id"),
    (MANAGE, {**START, "retries": 3}, "retries"),
    ("/api/v1/models/health/tiny/check", {"force_check": "yes"}, "force_check"),
    ("/api/v1/models/health/tiny/check", {"force_check": 1}, "force_check"),
    ("/api/v1/models/health/tiny/check", {"check_type": "quick"}, "check_type"),
    ("/api/v1/models/health/tiny/check", {"check_type": "full", "deep": True}, "deep"),
    ("/api/v1/models/health/tiny/repair", {"force_repair": "true"}, "force_repair"),
    ("/api/v1/models/health/tiny/repair", {"force_repair": 0}, "force_repair"),
    ("/api/v1/models/revisions/tiny/update", {"max_retries": "3"}, "max_retries"),
    (
        "/api/v1/models/revisions/tiny/update",
        {"bandwidth_limit_mbps": True},
        "bandwidth_limit_mbps",
    ),
    ("/api/v1/models/revisions/tiny/update", {"priority": "urgent"}, "priority"),
    ("/api/v1/models/revisions/tiny/rollback", {"commit": 40}, "commit"),
    ("/api/v1/models/revisions/tiny/rollback", {"to": "a" * 40}, "to"),
]


@pytest.mark.parametrize(("path", "body", "field"), NOT_STRICT)
async def test_bodies_are_strict_and_the_error_names_the_field(
    path: str, body: dict[str, Any], field: str, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(), entries=(ENTRY,), resolve=False) as app:
        response = await app.client.post(path, json=body)
        jobs = app.services.downloads.job("tiny")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in error["details"]["errors"]] == [f"body.{field}"]
    assert jobs is None


async def test_the_seed_examples_are_accepted_as_written(
    local_hub: LocalHub, tiny: dict[str, bytes], make_settings: SettingsFactory
) -> None:
    """What the seed sends (ints for floats, JSON bools, enum strings) is not refused."""
    async with run_app(fast(make_settings, local_hub), entries=(ENTRY,)) as app:
        seed_start = {
            "model_id": "tiny",
            "action": "start",
            "max_retries": 3,
            "priority": "normal",
            "bandwidth_limit_mbps": 0,
        }
        started = await app.client.post(MANAGE, json=seed_start)
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
        check = await app.client.post(
            "/api/v1/models/health/tiny/check", json={"check_type": "full", "force_check": False}
        )
        repair = await app.client.post(
            "/api/v1/models/health/tiny/repair",
            json={"repair_type": "integrity_fix", "force_repair": False},
        )
        update = await app.client.post(
            "/api/v1/models/revisions/tiny/update",
            json={"priority": "high", "bandwidth_limit_mbps": 50, "max_retries": 2},
        )
        config = await app.client.put(
            "/api/v1/config/update",
            json={
                "downloads": {"max_concurrent_downloads": 5, "bandwidth_limit_mbps": 50},
                "health_monitoring": {"check_interval_hours": 12, "auto_repair_enabled": True},
            },
        )
        await asyncio.wait_for(app.services.health.run_until_idle(), 30)
    assert started.status_code == 200, started.text
    assert started.json()["download_id"].startswith("dl_")
    assert check.status_code == 200, check.text
    assert repair.status_code == 200, repair.text
    assert update.status_code == 200, update.text
    assert update.json()["new_status"] == "COMPLETED"  # already the newest commit
    assert config.status_code == 200, config.text


# --- ISO 8601 UTC timestamps everywhere --------------------------------------------------------

TIME_KEYS = {
    "timestamp",
    "last_check",
    "last_health_check",
    "last_system_check",
    "last_used",
    "last_accessed",
    "last_modified",
    "estimated_completion",
    "keep_until",
}


def timestamps(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) of a JSON document whose key names a moment."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name in TIME_KEYS or name.endswith("_at"):
                yield name, item
            yield from timestamps(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from timestamps(item, key)


async def test_every_timestamp_is_iso_8601_utc(
    local_hub: LocalHub, tiny: dict[str, bytes], make_settings: SettingsFactory
) -> None:
    async with run_app(fast(make_settings, local_hub), entries=(ENTRY,)) as app:
        progress = await download(app)
        check = (await app.client.post("/api/v1/models/health/tiny/check", json={})).json()
        await asyncio.wait_for(app.services.health.run_until_idle(), 30)
        documents = [progress, check]
        for path in (
            "/api/v1/models/status/detailed",
            "/api/v1/models/download/active",
            "/api/v1/models/health",
            f"/api/v1/models/health/checks/{check['check_id']}",
            "/api/v1/models/revisions/tiny",
            "/api/v1/models/storage",
            "/api/v1/config/current",
            "/api/v1/models/status/detailed/nope",  # the error envelope
        ):
            documents.append((await app.client.get(path)).json())
    found = [(key, value) for document in documents for key, value in timestamps(document)]
    assert {"last_byte_at", "available_at", "created_at", "timestamp"} <= {k for k, _ in found}
    for key, value in found:
        assert value is None or (isinstance(value, str) and ISO_UTC.match(value)), (key, value)
    # The download's own moments, in order (the last two were Unix floats before issue 9).
    order = ["created_at", "started_at", "last_byte_at", "available_at"]
    moments = [datetime.fromisoformat(progress[key]) for key in order]
    assert moments == sorted(moments), dict(zip(order, moments, strict=True))
    assert moments[1] <= datetime.fromisoformat(progress["finished_at"])


# --- a wrong method is 405, not a 422 about the model id ---------------------------------------

WRONG_METHODS = [
    ("GET", "/api/v1/models/health/tiny/check", "POST"),
    ("GET", "/api/v1/models/health/tiny/repair", "POST"),
    ("GET", "/api/v1/models/revisions/tiny/update", "POST"),
    ("GET", "/api/v1/models/revisions/tiny/rollback", "POST"),
    ("PUT", "/api/v1/models/health/tiny/check", "POST"),
    ("POST", "/api/v1/models/health/tiny", "GET"),
    ("POST", "/api/v1/models/status/detailed/tiny", "GET"),
    ("GET", MANAGE, "POST"),
    ("DELETE", MANAGE, "POST"),
    ("POST", "/api/v1/config/current", "GET"),
    ("GET", "/api/v1/config/update", "PUT"),
]


@pytest.mark.parametrize(("method", "path", "allow"), WRONG_METHODS)
async def test_a_wrong_method_is_405_with_allow(
    method: str, path: str, allow: str, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(), entries=(ENTRY,), resolve=False) as app:
        response = await app.client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/health/a%2Fb",
        "/api/v1/models/revisions/..%2Fx",
        "/api/v1/models/health/sp%20ace",
    ],
)
async def test_a_bad_model_id_on_the_right_method_stays_422(
    path: str, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "INVALID_MODEL_ID"


# --- feature switches --------------------------------------------------------------------------


class RangeConcurrency:
    """An ``on_request`` hook: the most ranged GETs of one CDN file open at once.

    A request counts as open until every byte it asked for was sent (the local hub counts
    bytes before sending them, so the client cannot have asked again before that); each is
    held back a little first so that concurrent connections really overlap."""

    def __init__(self, hub: LocalHub, filename: str, size: int) -> None:
        self._hub = hub
        self._filename = filename
        self._size = size
        self._lock = threading.Lock()
        self.peak = 0
        self.requests = 0

    def __call__(self, record: RecordedRequest) -> Delay | None:
        if not self._counts(record):
            return None
        with self._lock:
            self.requests += 1
            open_now = sum(
                1 for r in self._hub.requests if self._counts(r) and r.bytes_sent < self._wanted(r)
            )
            self.peak = max(self.peak, open_now)
        return Delay(0.2)

    def _counts(self, record: RecordedRequest) -> bool:
        return (
            record.server == "cdn"
            and record.method == "GET"
            and record.filename == self._filename
            and record.range is not None
        )

    def _wanted(self, record: RecordedRequest) -> int:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", record.range or "")
        assert match is not None, record.range
        end = int(match[2]) + 1 if match[2] else self._size
        return end - int(match[1])


@pytest.mark.parametrize("enhanced", [True, False])
async def test_enhanced_downloads_off_fetches_each_file_over_one_connection(
    enhanced: bool, local_hub: LocalHub, tiny: dict[str, bytes], make_settings: SettingsFactory
) -> None:
    watch = RangeConcurrency(local_hub, BIG, BIG_SIZE)
    local_hub.on_request = watch
    settings = fast(make_settings, local_hub, downloads={"connections_per_file": 4})
    async with run_app(settings, entries=(ENTRY,)) as app:
        await switch(app, enhanced_downloads=enhanced)
        await download(app)
    blob = next(settings.models_dir.glob("models--acme--tiny/snapshots/*/" + BIG))
    assert blob.read_bytes() == tiny[BIG]
    assert watch.requests >= 4  # several segments either way
    if enhanced:
        assert watch.peak > 1
    else:
        assert watch.peak == 1


async def switch(app: RunningApp, **features: bool) -> None:
    answer = await app.client.put("/api/v1/config/update", json={"features": features})
    assert answer.status_code == 200, answer.text


async def test_health_monitoring_switch_applies_live(
    local_hub: LocalHub, tiny: dict[str, bytes], make_settings: SettingsFactory
) -> None:
    async with run_app(fast(make_settings, local_hub), entries=(ENTRY,)) as app:
        await download(app)
        monitor = app.services.health_monitor
        await app.client.put(
            "/api/v1/config/update", json={"features": {"health_monitoring": False}}
        )
        off = await monitor.run_round()
        await app.client.put(
            "/api/v1/config/update", json={"features": {"health_monitoring": True}}
        )
        on = await monitor.run_round()
    assert off == []
    assert [(r.model_id, r.check_type, r.overall_health) for r in on] == [
        ("tiny", "full", "healthy")
    ]


async def test_every_seed_feature_switch_is_offered(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        current = (await app.client.get("/api/v1/config/current")).json()
        document = (await app.client.get("/openapi.json")).json()
    seed = ["enhanced_downloads", "health_monitoring", "intelligent_fallback", "usage_analytics"]
    assert list(current["features"]) == seed
    assert list(document["components"]["schemas"]["FeaturesConfig"]["properties"]) == seed


async def test_a_saved_file_of_an_earlier_version_keeps_its_switches(
    make_settings: SettingsFactory,
) -> None:
    """Earlier versions saved ``intelligent_fallback`` before it was offered (and dropped it
    at start-up); now the saved value is the one in effect."""
    settings = make_settings()
    settings.data_dir.mkdir(parents=True)
    saved = {
        "version": 1,
        "overrides": {
            "features": {
                "enhanced_downloads": False,
                "intelligent_fallback": False,
                "usage_analytics": False,
            },
            "downloads": {"max_retries": 7},
        },
    }
    settings.runtime_config_path.write_text(json.dumps(saved))
    async with run_app(settings, resolve=False) as app:
        current = (await app.client.get("/api/v1/config/current")).json()
    assert current["set_aside"] is None
    assert current["features"] == {
        "enhanced_downloads": False,
        "health_monitoring": True,
        "intelligent_fallback": False,
        "usage_analytics": False,
    }
    assert current["downloads"]["max_retries"] == 7
    assert list(settings.data_dir.glob("runtime-config.rejected-*")) == []
