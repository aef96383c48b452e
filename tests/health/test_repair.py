"""Repair over real HTTP and real files: only what is broken is fetched again."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modeldepot.events import ModelHealthAlert
from modeldepot.health.models import RepairRow
from modeldepot.testing import LocalHub, make_safetensors
from modeldepot.testing.faults import Status
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

BIG = "weights/a.safetensors"
OTHER = "weights/b.safetensors"
PICKLE = "legacy/model.bin"


def publish(
    hub: LocalHub, tmp_path: Path, extra: dict[str, bytes] | None = None
) -> dict[str, bytes]:
    files = {
        "config.json": b'{"model_type": "tiny"}\n',
        BIG: make_safetensors({"w": ("F32", [160, 1024])}, seed=1),
        OTHER: make_safetensors({"w": ("F32", [128, 1024])}, seed=2),
        **(extra or {}),
    }
    hub.create_repo("acme/tiny", files)
    return files


async def installed(app: RunningApp) -> None:
    answer = await app.client.post(
        "/api/v1/models/download/manage", json={"model_id": "tiny", "action": "start"}
    )
    assert answer.status_code == 200, answer.text
    await asyncio.wait_for(app.services.downloads.run_until_idle(), 20)


async def settle(app: RunningApp) -> None:
    await asyncio.wait_for(app.services.downloads.run_until_idle(), 20)
    await asyncio.wait_for(app.services.repairs.run_until_idle(), 20)
    await asyncio.wait_for(app.services.health.run_until_idle(), 20)


def snapshot_of(models_dir: Path) -> Path:
    return next((models_dir / "models--acme--tiny" / "snapshots").iterdir())


def _rewrite(models_dir: Path, path: str, change: Callable[[bytes], bytes]) -> None:
    blob = (snapshot_of(models_dir) / path).resolve()
    blob.write_bytes(change(blob.read_bytes()))


async def repair(app: RunningApp, kind: str, **extra: Any) -> Any:
    return await app.client.post(
        "/api/v1/models/health/tiny/repair", json={"repair_type": kind, **extra}
    )


async def test_auto_repair_fetches_only_the_bad_file(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        await app.services.health.run_check("tiny", "full")
        flip_byte(settings.models_dir, BIG)
        local_hub.requests.clear()
        answer = await repair(app, "auto")
        await settle(app)
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["repair_id"].startswith("repair_")
    assert body["actions_taken"] == [
        "integrity_check",
        "partial_redownload",
    ]
    assert body["files"] == [BIG]
    assert body["download_id"].startswith("dl_")
    assert cdn_gets(local_hub) == [f"/blobs/{hashlib.sha256(files[BIG]).hexdigest()}"]
    assert (snapshot_of(settings.models_dir) / BIG).read_bytes() == files[BIG]
    assert health["overall_health"] == "healthy"
    assert health["integrity_score"] == 1.0
    assert status["availability_status"] == "AVAILABLE"


async def test_integrity_fix_relinks_without_network(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        link = snapshot_of(settings.models_dir) / OTHER
        link.unlink()
        stray = link.parent.parent.parent.parent / "blobs" / ".half.123.tmp"
        stray.write_bytes(b"x")
        local_hub.requests.clear()
        answer = await repair(app, "integrity_fix")
        await settle(app)
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["actions_taken"] == [
        "removed_temp_files",
        "relinked_snapshot_files",
        "integrity_check",
    ]
    assert body["files"] == [OTHER]
    assert link.read_bytes() == files[OTHER]
    assert not stray.exists()
    assert list(local_hub.requests) == []
    assert health["overall_health"] == "healthy"


async def test_redownload_refetches_everything(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        local_hub.requests.clear()
        answer = await repair(app, "redownload")
        await settle(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
    assert answer.json()["actions_taken"] == ["redownload"]
    fetched = {
        r.path
        for r in local_hub.requests
        if r.method == "GET" and "/resolve/" in r.path and r.status != 302
    }
    fetched |= {r.path for r in local_hub.requests if r.server == "cdn" and r.method == "GET"}
    assert len(fetched) == len(files)
    assert status["availability_status"] == "AVAILABLE"
    for path, data in files.items():
        assert (snapshot_of(settings.models_dir) / path).read_bytes() == data


async def test_nothing_installed_is_a_conflict(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        answer = await repair(app, "auto")
        bad = await repair(app, "explode")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "CONFLICT"
    assert bad.status_code == 422


def flip_byte(models_dir: Path, path: str) -> None:
    _rewrite(models_dir, path, lambda d: d[:4321] + bytes([d[4321] ^ 0xFF]) + d[4322:])


def cdn_gets(hub: LocalHub) -> list[str]:
    return [r.path for r in hub.requests if r.server == "cdn" and r.method == "GET"]


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_monitor_repairs_by_itself_only_when_auto_repair_is_enabled(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path, enabled: bool
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(
        hf_endpoint=local_hub.endpoint, health_monitoring={"auto_repair_enabled": enabled}
    )
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        await app.services.health.run_check("tiny", "full")
        flip_byte(settings.models_dir, BIG)
        local_hub.requests.clear()
        await app.services.health.run_check("tiny", "full")  # as the monitor's full round
        await settle(app)
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]

    if enabled:
        assert cdn_gets(local_hub) == [f"/blobs/{hashlib.sha256(files[BIG]).hexdigest()}"]
        assert (snapshot_of(settings.models_dir) / BIG).read_bytes() == files[BIG]
        assert health["overall_health"] == "healthy"
    else:
        assert cdn_gets(local_hub) == []
        assert health["overall_health"] == "corrupted"


async def test_auto_repair_is_tried_once_while_the_hub_keeps_failing(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    publish(local_hub, tmp_path)
    settings = make_settings(
        hf_endpoint=local_hub.endpoint,
        health_monitoring={"auto_repair_enabled": True},
        max_retry_after_seconds=0,
    )
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        flip_byte(settings.models_dir, BIG)
        damaged = (snapshot_of(settings.models_dir) / BIG).read_bytes()
        local_hub.faults.add(Status(404), server="cdn")
        local_hub.requests.clear()
        for _ in range(3):  # three monitor rounds find it broken
            await app.services.health.run_check("tiny", "full", force=True)
            await settle(app)
        job = app.services.downloads.job("tiny")
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]

    # One repair attempt (one request to the CDN, a permanent 404), no repair loop.
    assert len([r for r in local_hub.requests if r.server == "cdn"]) == 1
    assert job is not None
    assert job.status.value == "FAILED"
    # The repair could not fetch a replacement, so it removed nothing: the model is as it
    # was (corrupted, the same bytes), alerted, and not repaired again.
    assert health["overall_health"] == "corrupted"
    assert [i["path"] for i in health["issues"]] == [BIG]
    assert (snapshot_of(settings.models_dir) / BIG).read_bytes() == damaged


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that something loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _with_header(data: bytes, header: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header replaced, same total size."""
    length = struct.unpack("<Q", data[:8])[0]
    assert len(header) <= length
    return data[:8] + header.ljust(length) + data[8 + length :]


LOCAL_FAULTS: dict[str, tuple[str, Callable[[Path], None], str, str]] = {
    # name: (file, break it, issue a quick check reports, words in its detail)
    "flipped byte": (
        BIG,
        lambda m: flip_byte(m, BIG),
        "wrong_hash",
        "expected",
    ),
    "truncated": (BIG, lambda m: _rewrite(m, BIG, lambda d: d[:-100]), "wrong_size", "expected"),
    "deleted": (OTHER, lambda m: (snapshot_of(m) / OTHER).unlink(), "missing", ""),
    "broken link": (
        "config.json",
        lambda m: (snapshot_of(m) / "config.json").resolve().unlink(),
        "broken_link",
        "",
    ),
    "offsets past the end": (
        BIG,
        lambda m: _rewrite(
            m,
            BIG,
            lambda d: _with_header(
                d, b'{"w":{"dtype":"F32","shape":[160,1024],"data_offsets":[0,999999999]}}'
            ),
        ),
        "wrong_hash",
        "is past the",
    ),
    "header claiming 1 GB": (
        BIG,
        lambda m: _rewrite(m, BIG, lambda d: struct.pack("<Q", 10**9) + d[8:]),
        "wrong_hash",
        "header",
    ),
    "pickle payload": (
        PICKLE,
        lambda m: _rewrite(m, PICKLE, lambda d: d.replace(b"PWNED", b"pwned")),
        "wrong_hash",
        "expected",
    ),
}


@pytest.mark.parametrize("fault", sorted(LOCAL_FAULTS))
async def test_each_local_fault_is_found_alerted_and_auto_repair_fetches_only_that_file(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path, fault: str
) -> None:
    marker = tmp_path / "PWNED"
    files = publish(local_hub, tmp_path, extra={PICKLE: pickle.dumps(_TouchOnUnpickle(marker))})
    path, make_fault, kind, words = LOCAL_FAULTS[fault]
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        await app.services.health.run_check("tiny", "full")
        make_fault(settings.models_dir)
        subscription = app.services.bus.subscribe()
        found = await app.services.health.run_check("tiny", "integrity")  # the monitor's
        local_hub.requests.clear()
        answer = await repair(app, "auto")
        await settle(app)
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]
        events = []
        while subscription.pending:
            events.append(await subscription.get())

    (issue,) = found.issues
    assert (issue.path, issue.kind) == (path, kind)
    assert words in issue.detail
    (alert,) = [e for e in events if isinstance(e, ModelHealthAlert)][:1]
    assert path in alert.message
    assert answer.json()["files"] == [path]
    fetched = {r.path for r in local_hub.requests if r.server == "cdn" and r.method == "GET"}
    fetched |= {
        r.path
        for r in local_hub.requests
        if r.method == "GET" and "/resolve/" in r.path and r.status != 302
    }
    # Only the broken file is fetched; a deleted link whose blob is intact is re-linked.
    assert len(fetched) == (0 if fault == "deleted" else 1)
    assert (snapshot_of(settings.models_dir) / path).read_bytes() == files[path]
    assert health["overall_health"] == "healthy"
    assert not marker.exists()  # the pickle was hashed, never loaded


async def record(app: RunningApp, repair_id: str) -> Any:
    return await app.client.get(f"/api/v1/models/health/repairs/{repair_id}")


async def test_a_repair_can_be_looked_up_and_says_how_it_ended(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path, database: dict[str, Any]
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        flip_byte(settings.models_dir, BIG)
        started = (await repair(app, "auto")).json()
        await settle(app)
        done = await record(app, started["repair_id"])
        offline = (await repair(app, "integrity_fix")).json()
        await settle(app)
        fixed = await record(app, offline["repair_id"])
    # After a restart the records are still there.
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        again = await record(app, started["repair_id"])

    assert done.status_code == 200, done.text
    body = done.json()
    assert body["model_id"] == "tiny"
    assert body["repair_type"] == "auto"
    assert body["status"] == "completed"
    assert body["actions_taken"] == started["actions_taken"]
    assert body["files"] == [BIG]
    assert body["download_id"] == started["download_id"]
    assert body["overall_health"] == "healthy"
    assert body["finished_at"] is not None
    assert fixed.json()["status"] == "completed"
    assert fixed.json()["download_id"] is None
    assert again.json() == body
    assert (snapshot_of(settings.models_dir) / BIG).read_bytes() == files[BIG]


async def test_a_repair_whose_download_fails_is_recorded_as_failed(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as app:
        await installed(app)
        flip_byte(settings.models_dir, BIG)
        damaged = (snapshot_of(settings.models_dir) / BIG).read_bytes()
        local_hub.faults.add(Status(404), server="cdn")
        started = (await repair(app, "auto")).json()
        await settle(app)
        body = (await record(app, started["repair_id"])).json()

    assert body["status"] == "failed"
    assert "404" in body["error"]
    # Nothing was removed before a replacement verified: the model is exactly as it was.
    assert body["overall_health"] == "corrupted"
    assert (snapshot_of(settings.models_dir) / BIG).read_bytes() == damaged


@pytest.mark.parametrize(
    ("repair_id", "status", "code"),
    [
        ("repair_0123456789abcdef", 404, "REPAIR_NOT_FOUND"),
        ("repair_XYZ", 422, "INVALID_REPAIR_ID"),
        ("check_0123456789abcdef", 422, "INVALID_REPAIR_ID"),
        ("repair_0123456789abcdef0", 422, "INVALID_REPAIR_ID"),
    ],
)
async def test_unknown_and_malformed_repair_ids(
    make_settings: SettingsFactory, repair_id: str, status: int, code: str
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        answer = await record(app, repair_id)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


async def test_a_repair_left_running_by_a_stopped_service_is_marked_interrupted(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with (
        run_app(settings, resolve=False) as app,
        app.services.sessions() as session,
        session.begin(),
    ):
        session.add(
            RepairRow(
                id="repair_00000000000000aa",
                model_id="tiny",
                repair_type="auto",
                force_repair=False,
                commit_hash="a" * 40,
                status="running",
                actions_taken=["integrity_check"],
                files=[BIG],
                requested_at=datetime.now(UTC),
            )
        )
    async with run_app(settings, resolve=False) as app:
        body = (await record(app, "repair_00000000000000aa")).json()
    assert body["status"] == "interrupted"
    assert body["finished_at"] is not None
