"""Repairs never destroy (RELIABILITY.md 43, 27, 25): with the hub unreachable, on a
read-only models directory and on a full disk, a repair fails with a clear answer and the
model stays exactly as it was, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download

from modeldepot.testing import LocalHub
from tests.downloads.crash_support import file_states, fill_disk, remount_read_only, tmpfs
from tests.health.test_repair import (
    BIG,
    installed,
    publish,
    record,
    repair,
    settle,
    snapshot_of,
)
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

TINY = "models--acme--tiny"
ENTRY = (hub_entry("tiny", "acme/tiny"),)


def quick_failures(**more: Any) -> dict[str, Any]:
    """No waiting on a hub that is down: one attempt, no backoff."""
    return {
        "downloads": {"max_retries": 0},
        "retry_base_delay_seconds": 0.01,
        "retry_max_delay_seconds": 0.02,
        "hub_timeout_seconds": 1,
        **more,
    }


async def status_of(app: RunningApp) -> dict[str, Any]:
    return dict((await app.client.get("/api/v1/models/status/detailed/tiny")).json())


def loads_with_huggingface_hub(models_dir: Path, files: dict[str, bytes]) -> None:
    folder = Path(snapshot_download("acme/tiny", cache_dir=models_dir, local_files_only=True))
    for path, data in files.items():
        assert (folder / path).read_bytes() == data, path


@pytest.mark.parametrize("kind", ["redownload", "auto"])
async def test_repair_with_the_hub_down_keeps_a_healthy_model_intact(
    kind: str,
    local_hub: LocalHub,
    make_settings: SettingsFactory,
    tmp_path: Path,
    database: dict[str, Any],
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database, **quick_failures())
    async with run_app(settings, entries=ENTRY) as app:
        await installed(app)
        before = file_states(settings.models_dir / TINY)
        local_hub.stop()  # the machine goes offline
        answer = await repair(app, kind, force_repair=True)
        await settle(app)
        status = await status_of(app)
        body = (await record(app, answer.json()["repair_id"])).json() if answer.is_success else {}

    assert answer.status_code == 200, answer.text
    if kind == "redownload":
        assert body["status"] == "failed", body
        # The hub's port is closed: the first file asked for says so.
        assert "connection failed" in body["error"], body
        assert "Connection refused" in body["error"], body
    else:  # a healthy model: auto finds nothing to repair and touches nothing
        assert answer.json()["actions_taken"] == ["integrity_check", "nothing_to_repair"]
    assert file_states(settings.models_dir / TINY) == before
    assert status["availability_status"] == "AVAILABLE"
    loads_with_huggingface_hub(settings.models_dir, files)


async def test_auto_repair_with_the_hub_down_leaves_a_corrupted_file_as_it_was(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **quick_failures())
    async with run_app(settings, entries=ENTRY) as app:
        await installed(app)
        blob = (snapshot_of(settings.models_dir) / BIG).resolve()
        damaged = bytearray(blob.read_bytes())
        damaged[100] ^= 0xFF
        blob.write_bytes(bytes(damaged))
        before = file_states(settings.models_dir / TINY)
        local_hub.stop()
        answer = await repair(app, "auto")
        await settle(app)
        body = (await record(app, answer.json()["repair_id"])).json()

    assert answer.status_code == 200, answer.text
    assert body["status"] == "failed"
    assert body["overall_health"] == "corrupted"
    assert file_states(settings.models_dir / TINY) == before
    untouched = {p: d for p, d in files.items() if p != BIG}
    loads_with_huggingface_hub(settings.models_dir, untouched)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(tmpfs(tmp_path / "disk", size="8M"))


async def test_repair_and_download_on_a_read_only_models_directory_are_507_and_healthz_tells(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path, small_disk: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(
        hf_endpoint=local_hub.endpoint,
        models_dir=small_disk / "models",
        storage={"min_free_space_gb": 0},
    )
    async with run_app(settings, entries=ENTRY) as app:
        await installed(app)
        healthy = (await app.client.get("/healthz")).json()
        before = file_states(settings.models_dir / TINY)
        await asyncio.to_thread(remount_read_only, small_disk)
        answer = await repair(app, "redownload")
        health = (await app.client.get("/healthz")).json()
        status = await status_of(app)

    assert healthy["models_directory_writable"] is True
    assert answer.status_code == 507, answer.text
    assert answer.json()["error"]["code"] == "STORAGE_READ_ONLY"
    assert "read-only" in answer.json()["error"]["message"]
    assert health["models_directory_writable"] is False
    assert health["status"] == "degraded"
    assert file_states(settings.models_dir / TINY) == before
    assert status["availability_status"] == "AVAILABLE"
    loads_with_huggingface_hub(settings.models_dir, files)


async def test_redownload_on_a_full_disk_is_refused_and_keeps_the_model(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path, small_disk: Path
) -> None:
    files = publish(local_hub, tmp_path)
    settings = make_settings(
        hf_endpoint=local_hub.endpoint,
        models_dir=small_disk / "models",
        storage={"min_free_space_gb": 0},
    )
    async with run_app(settings, entries=ENTRY) as app:
        await installed(app)
        before = file_states(settings.models_dir / TINY)
        await asyncio.to_thread(fill_disk, small_disk / "filler")
        answer = await repair(app, "redownload")
        await settle(app)
        status = await status_of(app)

    assert answer.status_code == 507, answer.text
    # The space check runs before the first byte is written: refused, not failed mid-way.
    assert answer.json()["error"]["code"] == "INSUFFICIENT_STORAGE", answer.json()
    assert file_states(settings.models_dir / TINY) == before
    assert status["availability_status"] == "AVAILABLE"
    loads_with_huggingface_hub(settings.models_dir, files)
