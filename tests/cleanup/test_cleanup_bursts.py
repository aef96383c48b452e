"""Cleanups racing download actions and each other, in randomized bursts (issue 11): a
removal never runs while a download of the model can write, every request gets an answer
in the envelope (no 500), a model left AVAILABLE still verifies, and once nothing protects
them a cleanup removes every trace. More seeds: edit SEEDS (60 ran clean when written)."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import pytest

from modeldepot.testing import LocalHub
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

V = "/api/v1"
SEEDS = range(12)


async def act(app: RunningApp, kind: str, model_id: str) -> int:
    if kind == "cleanup":
        body: dict[str, Any] = {"cleanup_type": "manual", "models_to_remove": [model_id]}
        answer = await app.client.post(f"{V}/models/cleanup", json=body)
    elif kind == "dry":
        body = {"cleanup_type": "manual", "models_to_remove": [model_id], "dry_run": True}
        answer = await app.client.post(f"{V}/models/cleanup", json=body)
    elif kind == "pin":
        answer = await app.client.put(f"{V}/models/pins/{model_id}", json={})
    elif kind == "unpin":
        answer = await app.client.delete(f"{V}/models/pins/{model_id}")
    else:
        answer = await app.client.post(
            f"{V}/models/download/manage", json={"model_id": model_id, "action": kind}
        )
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert "error" in answer.json()
    return answer.status_code


@pytest.mark.parametrize("seed", SEEDS)
async def test_cleanups_racing_downloads_leave_whole_models_or_nothing(
    seed: int, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    rng = random.Random(seed)
    local_hub.create_repo("acme/a", {"model.ckpt": os.urandom(700_000), "config.json": b"{}"})
    local_hub.create_repo("acme/b", {"model.ckpt": os.urandom(500_000)})
    settings = make_settings(hf_endpoint=local_hub.endpoint, min_segment_mb=0.25)
    entries = (hub_entry("a", "acme/a"), hub_entry("b", "acme/b"))
    kinds = ["cleanup", "cleanup", "dry", "start", "start", "pause", "resume", "cancel"]
    kinds += ["pin", "unpin"]
    async with run_app(settings, entries=entries) as app:
        if rng.random() < 0.5:  # sometimes installed before the burst
            await act(app, "start", "a")
            await app.services.downloads.run_until_idle()
        burst = [(rng.choice(kinds), rng.choice("ab")) for _ in range(rng.randint(6, 14))]
        await asyncio.gather(*(act(app, kind, model) for kind, model in burst))
        for model in "ab":  # whatever is paused finishes or goes
            await app.client.post(
                f"{V}/models/download/manage", json={"model_id": model, "action": "cancel"}
            )
        await app.services.downloads.run_until_idle()
        for model in "ab":
            await app.client.delete(f"{V}/models/pins/{model}")
        statuses = {}
        for model in "ab":
            status = await app.services.availability.recompute(model)
            statuses[model] = status.availability_status.value
        checks = {}
        for model, state in statuses.items():
            if state == "AVAILABLE":
                started = await app.client.post(
                    f"{V}/models/health/{model}/check", json={"check_type": "full"}
                )
                checks[model] = started.json()["check_id"]
        await app.services.health.run_until_idle()
        verdicts = {
            model: (await app.client.get(f"{V}/models/health/checks/{check}")).json()
            for model, check in checks.items()
        }
        final = await app.client.post(
            f"{V}/models/cleanup", json={"cleanup_type": "manual", "models_to_remove": ["a", "b"]}
        )
    # PARTIAL: a cancel keeps the files already verified (a later start resumes).
    assert set(statuses.values()) <= {"AVAILABLE", "PARTIAL", "MISSING"}, (burst, statuses)
    for model, verdict in verdicts.items():
        assert verdict["overall_health"] == "healthy", (burst, model, verdict)
    # Nothing protects them any more: a last cleanup removes whatever is left, cleanly.
    assert final.json()["summary"]["errors"] == 0
    assert final.json()["models_preserved"] == [], (burst, final.json()["decisions"])
    assert {d["outcome"] for d in final.json()["decisions"]} <= {"removed", "absent"}
    assert not list(settings.models_dir.glob("models--acme--*")), burst
