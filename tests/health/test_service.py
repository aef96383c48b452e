"""HealthService over real hub-cache snapshots filled by huggingface_hub from the local hub.

Each fault is made on disk for real; the right check must find it, store it, feed the
status (CORRUPTED / PARTIAL) and publish a ``model_health_alert``. Persistence (runs and the
quick-check digest cache) runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modeldepot.events import Event, ModelHealthAlert, Subscription
from modeldepot.services import Services, open_services
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry

REPO = "acme/tiny-video"
MODEL = "tiny-video"
SHARD = "transformer/diffusion_pytorch_model-00001-of-00002.safetensors"


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that something loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


@asynccontextmanager
async def services_for(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(
        settings, extra_entries=(hub_entry(MODEL, REPO),), include_builtin=False, background=False
    ) as services:
        await services.catalog.refresh_all()
        yield services


def installed(
    local_hub: LocalHub, settings: Settings, files: dict[str, bytes] | None = None
) -> Path:
    local_hub.create_repo(REPO, files or demo_repo_files("t2v"))
    return fill_cache_with_huggingface_hub(local_hub, REPO, settings.models_dir)


async def alerts(subscription: Subscription) -> list[ModelHealthAlert]:
    """The health alerts published since ``subscription`` began (already delivered)."""
    events: list[Event] = []
    while subscription.pending:
        event = await subscription.get()
        if event is not None:
            events.append(event)
    return [e for e in events if isinstance(e, ModelHealthAlert)]


def rewrite_blob(snapshot: Path, relpath: str, change: Callable[[bytes], bytes]) -> None:
    blob = (snapshot / relpath).resolve()
    blob.write_bytes(change(blob.read_bytes()))


@pytest.fixture
def settings(make_settings: SettingsFactory, local_hub: LocalHub) -> Settings:
    return make_settings(hf_endpoint=local_hub.endpoint)


async def test_a_healthy_model_stays_healthy_with_score_one(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    installed(local_hub, settings)
    async with services_for(settings) as services:
        subscription = services.bus.subscribe()
        run = await services.health.run_check(MODEL, "full")
        status = await services.availability.status(MODEL)
    assert run.status == "completed"
    assert run.overall_health == "healthy"
    assert run.integrity_score == 1.0
    assert run.issues == []
    assert run.measurements["files_hashed"] == run.measurements["files_checked"]
    assert status.availability_status == "AVAILABLE"
    assert status.integrity_score == 1.0
    assert status.corruption_detected is False
    assert status.last_health_check == run.finished_at
    assert await alerts(subscription) == []


async def test_quick_check_of_an_unchanged_model_hashes_nothing_even_after_restart(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    snapshot = installed(local_hub, settings)
    async with services_for(settings) as services:
        first = await services.health.run_check(MODEL, "full")
        quick = await services.health.run_check(MODEL, "integrity")
    assert first.measurements["files_hashed"] == len(demo_repo_files("t2v"))
    assert quick.measurements["files_hashed"] == 0
    assert quick.overall_health == "healthy"
    async with services_for(settings) as services:  # a restart: the cache is in the database
        again = await services.health.run_check(MODEL, "integrity")
        rewrite_blob(snapshot, "config.json", lambda data: data.replace(b"t2v", b"T2V"))
        changed = await services.health.run_check(MODEL, "integrity")
        forced = await services.health.run_check(MODEL, "integrity", force=True)
        looked_up = await services.health.get_check(again.check_id)
    assert again.measurements["files_hashed"] == 0
    assert again.overall_health == "healthy"
    assert changed.measurements["files_hashed"] == 1
    assert [(i.path, i.kind) for i in changed.issues] == [("config.json", "wrong_hash")]
    assert forced.measurements["files_hashed"] == len(demo_repo_files("t2v"))
    assert looked_up == again


FAULTS: dict[str, tuple[Callable[[Path], None], str, str, str, str]] = {
    # name: (make fault, path, issue kind, overall health, availability status)
    "flipped byte": (
        lambda s: rewrite_blob(s, SHARD, lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:]),
        SHARD,
        "wrong_hash",
        "corrupted",
        "CORRUPTED",
    ),
    "truncated": (
        lambda s: rewrite_blob(s, SHARD, lambda d: d[:-100]),
        SHARD,
        "wrong_size",
        "corrupted",
        "CORRUPTED",
    ),
    "deleted": (
        lambda s: (s / "vae/config.json").unlink(),
        "vae/config.json",
        "missing",
        "degraded",
        "PARTIAL",
    ),
    "broken link": (
        lambda s: (s / "vae/config.json").resolve().unlink(),
        "vae/config.json",
        "broken_link",
        "degraded",
        "PARTIAL",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("check_type", ["full", "integrity"])
async def test_each_fault_is_found_reported_alerted_and_changes_the_status(
    local_hub: LocalHub, settings: Settings, fault: str, check_type: str
) -> None:
    make_fault, path, kind, health, availability = FAULTS[fault]
    snapshot = installed(local_hub, settings)
    async with services_for(settings) as services:
        await services.health.run_check(MODEL, "full")
        make_fault(snapshot)
        subscription = services.bus.subscribe()
        run = await services.health.run_check(MODEL, check_type)  # type: ignore[arg-type]
        status = await services.availability.status(MODEL)
    assert [(i.path, i.kind) for i in run.issues] == [(path, kind)]
    assert run.overall_health == health
    assert run.integrity_score is not None
    assert run.integrity_score < 1.0
    assert status.availability_status == availability
    assert status.is_available is False
    assert status.corruption_detected is (health == "corrupted")
    (alert,) = await alerts(subscription)
    assert alert.model_id == MODEL
    assert alert.check_id == run.check_id
    expected = "corruption_detected" if health == "corrupted" else "files_missing"
    assert alert.alert_type == expected
    assert path in alert.message


def header_file(header: dict[str, object] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


MALFORMED = {
    "offsets past the end": header_file(
        {"w": {"dtype": "U8", "shape": [64], "data_offsets": [0, 64]}}, b"\0" * 16
    ),
    "header claiming 1 GB": struct.pack("<Q", 10**9) + b"{" + b" " * 1015,
}


@pytest.mark.parametrize("fault", sorted(MALFORMED))
async def test_malformed_published_headers_are_invalid_structure(
    local_hub: LocalHub, settings: Settings, fault: str
) -> None:
    files = {"config.json": b"{}", "unet/model.safetensors": MALFORMED[fault]}
    installed(local_hub, settings, files)
    async with services_for(settings) as services:
        subscription = services.bus.subscribe()
        run = await services.health.run_check(MODEL, "integrity")
        status = await services.availability.status(MODEL)
    assert [(i.path, i.kind) for i in run.issues] == [("unet/model.safetensors", "bad_structure")]
    assert run.overall_health == "corrupted"
    assert status.availability_status == "CORRUPTED"
    (alert,) = await alerts(subscription)
    assert alert.alert_type == "structure_invalid"
    assert alert.severity == "critical"
    assert alert.recommended_action == "none"  # the published file itself is broken


async def test_pickle_payloads_are_hashed_never_executed(
    local_hub: LocalHub, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(TouchOnUnpickle(marker))
    snapshot = installed(local_hub, settings, {"config.json": b"{}", "model.bin": payload})
    async with services_for(settings) as services:
        healthy = await services.health.run_check(MODEL, "full")
        await services.health.run_check(MODEL, "performance")
        rewrite_blob(snapshot, "model.bin", lambda d: d.replace(b"PWNED", b"pwned"))
        subscription = services.bus.subscribe()
        broken = await services.health.run_check(MODEL, "full")
    assert healthy.overall_health == "healthy"
    assert [(i.path, i.kind) for i in broken.issues] == [("model.bin", "wrong_hash")]
    assert [a.alert_type for a in await alerts(subscription)] == ["corruption_detected"]
    assert not marker.exists()


async def test_nothing_installed_is_missing_without_reading(
    local_hub: LocalHub, settings: Settings
) -> None:
    local_hub.create_repo(REPO, demo_repo_files("t2v"))
    async with services_for(settings) as services:
        subscription = services.bus.subscribe()
        run = await services.health.run_check(MODEL, "full")
    assert run.overall_health == "missing"
    assert run.measurements["files_hashed"] == 0
    assert run.commit is None
    assert await alerts(subscription) == []


async def test_performance_checks_keep_history_and_score_against_it(
    local_hub: LocalHub, settings: Settings
) -> None:
    installed(local_hub, settings)
    async with services_for(settings) as services:
        first = await services.health.run_check(MODEL, "performance")
        second = await services.health.run_check(MODEL, "performance")
        status = await services.availability.status(MODEL)
    assert first.performance_score == 1.0  # its own baseline
    assert first.measurements["history_size"] == 0
    assert second.measurements["history_size"] == 1
    assert first.measurements["headers_parsed"] == 3
    assert int(first.measurements["bytes_read"] or 0) > 0
    assert second.performance_score is not None
    assert 0 < second.performance_score <= 1
    assert status.performance_score == second.performance_score


async def test_a_monitoring_round_checks_available_models(
    local_hub: LocalHub, settings: Settings
) -> None:
    snapshot = installed(local_hub, settings)
    async with services_for(settings) as services:
        first = await services.health_monitor.run_round()
        second = await services.health_monitor.run_round()
        rewrite_blob(snapshot, SHARD, lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:])
        later = datetime.now(UTC) + timedelta(days=8)  # past full_check_interval_hours
        subscription = services.bus.subscribe()
        third = await services.health_monitor.run_round(now=later)
        fourth = await services.health_monitor.run_round()  # corrupted by our verdict: watched
    assert [(r.model_id, r.check_type) for r in first] == [(MODEL, "full")]
    assert [(r.check_type, r.measurements["files_hashed"]) for r in second] == [("integrity", 0)]
    assert [(r.check_type, r.overall_health) for r in third] == [("full", "corrupted")]
    assert [(r.check_type, r.overall_health) for r in fourth] == [("integrity", "corrupted")]
    assert [a.alert_type for a in await alerts(subscription)] == ["corruption_detected"] * 2


async def test_monitoring_respects_the_feature_switch(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=local_hub.endpoint, features={"health_monitoring": False})
    installed(local_hub, settings)
    async with services_for(settings) as services:
        assert await services.health_monitor.run_round() == []
