"""``/api/v1/models/health``: seed shapes, check requests in the background, lookup by id,
errors in the envelope; real hub-cache snapshots filled from the local hub over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modeldepot.events import ModelHealthAlert
from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry, run_app

SHARD = "transformer/diffusion_pytorch_model-00001-of-00002.safetensors"
HEALTH_FIELDS = {
    "model_id",
    "overall_health",
    "integrity_score",
    "performance_score",
    "last_check",
    "issues",
    "recommendations",
}
SYSTEM_FIELDS = {
    "overall_score",
    "healthy_models",
    "degraded_models",
    "corrupted_models",
    "last_system_check",
}
ENTRIES = (hub_entry("tiny-video", "acme/tiny-video"), hub_entry("absent", "acme/absent"))


def install(local_hub: LocalHub, models_dir: Path) -> Path:
    local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    local_hub.create_repo("acme/absent", {"config.json": b"{}"})
    return fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", models_dir)


async def test_health_before_and_after_checks(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    snapshot = install(local_hub, settings.models_dir)
    async with run_app(settings, entries=ENTRIES) as app:
        before = (await app.client.get("/api/v1/models/health")).json()
        assert set(before) == {"models", "system_health", "pagination"}
        assert set(before["system_health"]) == SYSTEM_FIELDS
        tiny = before["models"]["tiny-video"]
        assert set(tiny) == HEALTH_FIELDS
        assert tiny["overall_health"] == "unknown"
        assert before["models"]["absent"]["overall_health"] == "missing"
        assert before["system_health"]["overall_score"] is None

        started = await app.client.post(
            "/api/v1/models/health/tiny-video/check", json={"check_type": "full"}
        )
        assert started.status_code == 200
        body = started.json()
        assert set(body) == {"success", "check_id", "estimated_completion"}
        assert body["success"] is True
        assert body["check_id"].startswith("check_")
        await app.services.health.run_until_idle()
        run = (await app.client.get(f"/api/v1/models/health/checks/{body['check_id']}")).json()
        assert run["status"] == "completed"
        assert run["overall_health"] == "healthy"

        healthy = (await app.client.get("/api/v1/models/health/tiny-video")).json()
        assert healthy["models"]["tiny-video"]["overall_health"] == "healthy"
        assert healthy["models"]["tiny-video"]["integrity_score"] == 1.0
        assert healthy["system_health"]["overall_score"] == 1.0
        assert healthy["system_health"]["healthy_models"] == 1

        blob = (snapshot / SHARD).resolve()
        data = blob.read_bytes()
        blob.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
        subscription = app.services.bus.subscribe()
        await app.client.post("/api/v1/models/health/tiny-video/check", json={})
        await app.services.health.run_until_idle()
        after = (await app.client.get("/api/v1/models/health")).json()
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()
    model = after["models"]["tiny-video"]
    assert model["overall_health"] == "corrupted"
    assert model["issues"] == [
        {"path": SHARD, "kind": "wrong_hash", "detail": model["issues"][0]["detail"]}
    ]
    assert model["recommendations"] == [f"run repair (auto) to re-fetch 1 file: {SHARD}"]
    assert after["system_health"]["corrupted_models"] == 1
    assert status["availability_status"] == "CORRUPTED"
    assert status["corruption_detected"] is True
    assert status["integrity_score"] < 1.0
    events = []
    while subscription.pending:
        event = await subscription.get()
        if event is not None:
            events.append(event)
    (alert,) = [e for e in events if isinstance(e, ModelHealthAlert)]
    assert alert.model_dump(mode="json").keys() >= {
        "type",
        "model_id",
        "alert_type",
        "severity",
        "message",
        "recommended_action",
        "timestamp",
    }
    assert alert.type == "model_health_alert"
    assert any(e.type == "model_availability_change" for e in events)


async def test_errors_use_the_envelope(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        client = app.client
        unknown = await client.get("/api/v1/models/health/nope")
        bad = await client.get("/api/v1/models/health/..%2Fetc")
        no_check = await client.get("/api/v1/models/health/checks/check_0123456789abcdef")
        bad_check = await client.get("/api/v1/models/health/checks/dl_123")
        bad_type = await client.post(
            "/api/v1/models/health/tiny-video/check", json={"check_type": "deep"}
        )
        unknown_post = await client.post("/api/v1/models/health/nope/check", json={})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "MODEL_NOT_FOUND")
    assert bad.status_code == 422
    assert (no_check.status_code, no_check.json()["error"]["code"]) == (404, "CHECK_NOT_FOUND")
    assert (bad_check.status_code, bad_check.json()["error"]["code"]) == (422, "INVALID_CHECK_ID")
    assert bad_type.status_code == 422
    assert unknown_post.status_code == 404
