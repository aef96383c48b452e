"""GET /models/status/detailed: real hub-cache directories, real local hub, real database."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from modeldepot.testing import DEFAULT_TOKEN, LocalHub, demo_repo_files
from tests.support import (
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    hub_entry,
    run_app,
)

SEED_FIELDS = {
    "model_id",
    "is_available",
    "is_loaded",
    "size_mb",
    "availability_status",
    "download_progress",
    "missing_files",
    "integrity_score",
    "last_health_check",
    "performance_score",
    "corruption_detected",
    "usage_frequency",
    "last_used",
    "average_generation_time",
    "can_pause_download",
    "can_resume_download",
    "estimated_download_time",
    "current_version",
    "latest_version",
    "update_available",
}


async def test_builtin_catalogue_listed_with_every_seed_field_without_network(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(hf_endpoint="http://127.0.0.1:9", hub_timeout_seconds=2)
    started = time.monotonic()
    async with run_app(settings) as running:
        response = await running.client.get("/api/v1/models/status/detailed")
    assert time.monotonic() - started < 10
    assert response.status_code == 200
    body = response.json()
    assert set(body["models"]) >= {"T2V-A14B", "I2V-A14B", "TI2V-5B"}
    for model_id, status in body["models"].items():
        assert set(status) >= SEED_FIELDS, model_id
        assert status["model_id"] == model_id
        assert status["availability_status"] == "MISSING"
        assert status["is_available"] is False
        assert status["source_error_code"] == "UPSTREAM_UNAVAILABLE"
        assert "cannot be reached" in status["source_error"]
    assert body["summary"] == {
        "total_models": 3,
        "available_models": 0,
        "downloading_models": 0,
        "corrupted_models": 0,
        "total_storage_gb": 0.0,
    }


async def test_cache_filled_by_huggingface_hub_is_available_without_download(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    files = demo_repo_files("t2v")
    commit = local_hub.create_repo("acme/tiny-video", files)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    local_hub.requests.clear()

    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        response = await app.client.get("/api/v1/models/status/detailed/tiny-video")

    status = response.json()
    assert response.status_code == 200
    assert status["availability_status"] == "AVAILABLE"
    assert status["is_available"] is True
    assert status["current_version"] == commit
    assert status["latest_version"] == commit
    assert status["update_available"] is False
    assert status["missing_files"] == []
    assert status["size_bytes"] == sum(len(data) for data in files.values())
    assert status["size_mb"] == pytest.approx(status["size_bytes"] / 1e6, abs=1e-3)
    assert status["file_count"] == len(files)
    assert status["manifest_source"] == "hub"
    # Only metadata was asked for: nothing was downloaded again.
    ours = [r for r in local_hub.requests if "tiny-video" in r.path]
    assert [(r.method, r.path) for r in ours] == [
        ("GET", "/api/models/acme/tiny-video/revision/main")
    ]
    assert not [r for r in local_hub.requests if r.server == "cdn" or "/resolve/" in r.path]


async def test_deleted_and_truncated_files_are_reported(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    snapshot = fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    entry = hub_entry("tiny-video", "acme/tiny-video")

    (snapshot / "model_index.json").unlink()
    async with run_app(settings, entries=(entry,)) as app:
        partial = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
        assert partial["availability_status"] == "PARTIAL"
        assert partial["is_available"] is False
        assert partial["missing_files"] == ["model_index.json"]

        config = snapshot / "config.json"
        blob = config.resolve()
        blob.write_bytes(blob.read_bytes()[:-3])
        corrupted = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
    assert corrupted["availability_status"] == "CORRUPTED"
    assert corrupted["corruption_detected"] is True
    assert corrupted["wrong_size_files"] == ["config.json"]
    assert corrupted["is_available"] is False


async def test_allow_patterns_select_the_files_that_count(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    files = demo_repo_files("t2v")
    local_hub.create_repo("acme/tiny-video", files)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entry = hub_entry("tiny-json", "acme/tiny-video", allow_patterns=["*.json"])
    async with run_app(settings, entries=(entry,)) as app:
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-json")).json()
    json_files = sorted(p for p in files if p.endswith(".json"))
    assert status["availability_status"] == "MISSING"
    assert status["missing_files"] == json_files
    assert status["size_bytes"] == sum(len(files[p]) for p in json_files)


async def test_new_upstream_commit_shows_update_available(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    old = local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    new = local_hub.commit("acme/tiny-video", add={"config.json": b'{"v": 2}\n'})
    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
    assert status["availability_status"] == "UPDATE_AVAILABLE"
    assert status["is_available"] is True
    assert (status["current_version"], status["latest_version"]) == (old, new)
    assert status["update_available"] is True


async def test_offline_restart_keeps_manifest_from_database(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    commit = local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    online = make_settings(hf_endpoint=local_hub.endpoint, **database)
    fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", online.models_dir)
    entry = hub_entry("tiny-video", "acme/tiny-video")
    async with run_app(online, entries=(entry,)):
        pass

    offline = online.model_copy(update={"hf_endpoint": "http://127.0.0.1:9"})
    async with run_app(offline, entries=(entry,)) as app:
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
    assert status["availability_status"] == "AVAILABLE"
    assert status["manifest_source"] == "hub"
    assert status["latest_version"] == commit
    assert status["source_error_code"] == "UPSTREAM_UNAVAILABLE"


async def test_never_resolved_model_in_cache_is_judged_from_the_cache(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    commit = local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint="http://127.0.0.1:9")
    fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
    assert status["availability_status"] == "AVAILABLE"
    assert status["manifest_source"] == "cache"
    assert status["current_version"] == commit
    assert status["latest_version"] is None


async def test_refresh_query_resolves_on_demand(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    commit = local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entry = hub_entry("tiny-video", "acme/tiny-video")
    async with run_app(settings, entries=(entry,), resolve=False) as app:
        before = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
        after = await app.client.get("/api/v1/models/status/detailed/tiny-video?refresh=true")
    assert before["latest_version"] is None
    assert after.json()["latest_version"] == commit


async def test_private_and_missing_repos_are_explained_per_model(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    local_hub.create_repo("acme/private", demo_repo_files("t2v"), private=True)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entries = (hub_entry("private", "acme/private"), hub_entry("gone", "acme/does-not-exist"))
    async with run_app(settings, entries=entries) as app:
        body = (await app.client.get("/api/v1/models/status/detailed")).json()
    private, gone = body["models"]["private"], body["models"]["gone"]
    assert private["source_error_code"] == "UPSTREAM_NOT_FOUND"
    assert "HF_TOKEN" in private["source_error"]
    assert gone["source_error_code"] == "UPSTREAM_NOT_FOUND"
    assert gone["availability_status"] == "MISSING"


async def test_token_is_sent_to_the_hub_for_private_repos(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    commit = local_hub.create_repo("acme/private", demo_repo_files("t2v"), private=True)
    settings = make_settings(hf_endpoint=local_hub.endpoint, hf_token=DEFAULT_TOKEN)
    async with run_app(settings, entries=(hub_entry("private", "acme/private"),)) as app:
        status = (await app.client.get("/api/v1/models/status/detailed/private")).json()
    assert status["latest_version"] == commit
    assert status["source_error"] is None


async def test_unknown_model_is_404_in_the_envelope(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.get("/api/v1/models/status/detailed/no-such-model")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "MODEL_NOT_FOUND"
    assert error["details"] == {"model_id": "no-such-model"}
    assert error["request_id"] == response.headers["x-request-id"]
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}


HOSTILE_IDS = [
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fcanary",
    "..%5C..%5Ccanary",
    "a%00b",
    "%2Fetc%2Fpasswd",
    "%5C%5Cserver%5Cshare",
    "C:%5Cwindows",
    "%2E",
    "%2E%2E",
    "",
    "x" * 129,
    "-leading-dash",
    "sp ace",
    "..%2Fcanary",
]


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
async def test_hostile_model_ids_are_422_and_touch_nothing(
    raw_id: str, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    canary.write_text("untouched")
    before = canary.stat()
    async with run_app(make_settings(), resolve=False) as app:
        response = await app.client.get(f"/api/v1/models/status/detailed/{raw_id}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "INVALID_MODEL_ID"
    assert canary.read_text() == "untouched"
    assert canary.stat().st_mtime_ns == before.st_mtime_ns


async def test_every_response_carries_a_request_id(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        own = await app.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        generated = await app.client.get("/api/v1/nope")
        hostile = await app.client.get("/healthz", headers={"X-Request-ID": "bad id; <script>"})
    assert own.headers["x-request-id"] == "abc-123"
    assert generated.status_code == 404
    assert generated.json()["error"]["code"] == "ROUTE_NOT_FOUND"
    assert generated.headers["x-request-id"].startswith("req_")
    assert hostile.headers["x-request-id"].startswith("req_")


async def test_external_change_is_announced_as_availability_event(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    snapshot = fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        subscription = app.services.bus.subscribe()
        await app.services.availability.recompute("tiny-video")
        os.unlink(snapshot / "config.json")
        await app.services.availability.recompute("tiny-video")
        event = await subscription.get()
    assert event is not None
    assert event.model_dump(include={"type", "model_id", "old_status", "new_status"}) == {
        "type": "model_availability_change",
        "model_id": "tiny-video",
        "old_status": "AVAILABLE",
        "new_status": "PARTIAL",
    }
