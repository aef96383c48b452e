"""``POST /models/cleanup`` against real downloads on a real disk (issue 11): models that
share blobs, one loaded, one downloading, one pinned, an unmanaged repository and links out
of the models directory. The dry run and the real run agree, the protected models stay,
the bytes freed are the disk's change, huggingface_hub still reads the cache cleanly and
what remains still verifies."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from huggingface_hub import scan_cache_dir

from modeldepot.events import ModelAvailabilityChange
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub
from tests.support import (
    RunningApp,
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    hub_entry,
    progress_until,
    run_app,
)

V = "/api/v1"
SHARED = os.urandom(3_000_000)  # one LFS blob in two repositories (hard-linked)
MODELS = ("shared-a", "shared-b", "loaded", "pinned", "escape", "downloading")
ALL_IDS = [*MODELS, "linked"]


def lfs(data: bytes) -> dict[str, bytes]:
    return {"model.ckpt": data}  # LFS by its name; no structure check applies


def make_repos(hub: LocalHub) -> None:
    hub.create_repo("acme/shared-a", {**lfs(SHARED), "config.json": b'{"a": 1}'})
    hub.create_repo("acme/shared-b", {**lfs(SHARED), "config.json": b'{"b": 1}'})
    for name in ("loaded", "pinned", "escape", "linked"):
        hub.create_repo(f"acme/{name}", lfs(os.urandom(1_000_000)))
    hub.create_repo("acme/downloading", lfs(os.urandom(4_000_000)))
    hub.create_repo("acme/foreign", lfs(os.urandom(500_000)))


def allocated(folder: Path) -> int:
    """Allocated bytes under ``folder``, each inode once, links never followed (du)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            info = Path(parent, name).lstat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


async def post(app: RunningApp, path: str, body: dict[str, Any]) -> Any:
    answer = await app.client.post(f"{V}{path}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def prepare(app: RunningApp, settings: Settings, outside: Path) -> None:
    for model_id in MODELS[:-1]:
        await post(app, "/models/download/manage", {"model_id": model_id, "action": "start"})
    await app.services.downloads.run_until_idle()
    a = settings.models_dir / "models--acme--shared-a" / "blobs"
    b = settings.models_dir / "models--acme--shared-b" / "blobs"
    shared = ({p.name for p in a.iterdir()} & {p.name for p in b.iterdir()}).pop()
    # One inode in both repositories, as the engine leaves a blob two downloads fetched
    # at once (downloads/runner.py adopts it with a hard link); made here deterministically.
    if not (a / shared).samefile(b / shared):
        os.link(a / shared, b / f"{shared}.tmp")
        os.replace(b / f"{shared}.tmp", b / shared)
    assert (a / shared).stat().st_nlink == 2
    # Loaded by an app; pinned by the user.
    loaded = {"event_id": "l1", "model_id": "loaded", "type": "model_loaded", "client": "ui"}
    await post(app, "/models/usage", {"events": [loaded]})
    pinned = await app.client.put(f"{V}/models/pins/pinned", json={"reason": "demo"})
    assert pinned.status_code == 200, pinned.text
    # A download under way, paused with bytes on disk.
    await post(
        app,
        "/models/download/manage",
        {"model_id": "downloading", "action": "start", "bandwidth_limit_mbps": 1},
    )
    await progress_until(app, lambda p: p["downloaded_mb"] > 0.1, "downloading")
    await post(app, "/models/download/manage", {"model_id": "downloading", "action": "pause"})
    # A link out of the models directory inside a model that goes.
    snapshot = next((settings.models_dir / "models--acme--escape" / "snapshots").iterdir())
    (snapshot / "precious.bin").symlink_to(outside / "precious.bin")
    (snapshot / "elsewhere").symlink_to(outside, target_is_directory=True)


async def test_dry_run_and_real_run_agree_and_only_unprotected_models_go(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    make_repos(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_bytes(b"never removed")
    fill_cache_with_huggingface_hub(local_hub, "acme/foreign", settings.models_dir)
    # A catalogue model whose repository folder is a link out of the models directory.
    fill_cache_with_huggingface_hub(local_hub, "acme/linked", outside)
    linked_target = outside / "models--acme--linked"
    (linked_target / "keep.txt").write_text("outside")
    (settings.models_dir / "models--acme--linked").symlink_to(linked_target)
    entries = tuple(hub_entry(m, f"acme/{m}") for m in ALL_IDS)
    async with run_app(settings, entries=entries) as app:
        await prepare(app, settings, outside)
        request = {"cleanup_type": "manual", "models_to_remove": ALL_IDS}
        before = allocated(settings.models_dir)
        listing_before = sorted(p for p in settings.models_dir.rglob("*"))
        dry = await post(app, "/models/cleanup", {**request, "dry_run": True})
        assert sorted(settings.models_dir.rglob("*")) == listing_before  # nothing touched
        events = app.services.bus.subscribe()
        real = await post(app, "/models/cleanup", request)
        after = allocated(settings.models_dir)
        changes = []
        while events.pending:
            event = await events.get()
            if isinstance(event, ModelAvailabilityChange) and event.new_status == "MISSING":
                changes.append(event.model_id)
        recorded = (await app.client.get(f"{V}/models/cleanup/{real['cleanup_id']}")).json()
        statuses = {
            m: (await app.client.get(f"{V}/models/status/detailed/{m}")).json() for m in MODELS
        }
        started = {
            m: await post(app, f"/models/health/{m}/check", {"check_type": "full"})
            for m in ("loaded", "pinned")
        }
        await app.services.health.run_until_idle()
        checks = {
            m: (await app.client.get(f"{V}/models/health/checks/{s['check_id']}")).json()
            for m, s in started.items()
        }
    removed = ["escape", "shared-a", "shared-b"]
    assert dry["models_removed"] == real["models_removed"] == removed, real["decisions"]
    assert dry["models_preserved"] == real["models_preserved"]
    assert real["models_preserved"] == ["downloading", "loaded", "pinned"]
    reasons = {d["model_id"]: d["reason"] for d in real["decisions"]}
    assert reasons["pinned"] == "Pinned"
    assert reasons["loaded"] == "Loaded by a generation app"
    assert reasons["downloading"].startswith("Downloading")
    assert reasons["linked"] == "Nothing of it is in the models directory"
    assert real["summary"] == {
        "total_processed": 7,
        "removed": 3,
        "preserved": 3,
        "errors": 0,
        "absent": 1,
    }
    assert dry["summary"] == real["summary"]
    assert real["success"] is True
    assert dry["dry_run"] is True
    assert real["dry_run"] is False
    # Measured, and what the dry run predicted: the shared blob counted once.
    assert real["space_freed_bytes"] == before - after
    assert dry["space_freed_bytes"] == real["space_freed_bytes"]
    assert real["space_freed_bytes"] >= len(SHARED) + 1_000_000
    assert real["space_freed_gb"] == real["space_freed_bytes"] / 1e9
    assert recorded == real
    assert real["unmanaged_repositories"] == ["acme/foreign"]
    # Gone for the status and announced; the protected ones untouched and still verify.
    for model_id in removed:
        assert statuses[model_id]["availability_status"] == "MISSING"
        assert not (settings.models_dir / f"models--acme--{model_id}").exists()
    assert sorted(changes) == removed
    assert statuses["loaded"]["availability_status"] == "AVAILABLE"
    assert statuses["pinned"]["availability_status"] == "AVAILABLE"
    assert statuses["downloading"]["availability_status"] == "PAUSED"
    assert {m: c["overall_health"] for m, c in checks.items()} == {
        "loaded": "healthy",
        "pinned": "healthy",
    }
    assert (outside / "precious.bin").read_bytes() == b"never removed"
    assert (linked_target / "keep.txt").read_text() == "outside"
    assert (settings.models_dir / "models--acme--linked").is_symlink()
    assert (settings.models_dir / "models--acme--foreign").is_dir()
    report = scan_cache_dir(settings.models_dir)
    assert report.warnings == []
    assert {r.repo_id for r in report.repos} >= {"acme/foreign", "acme/loaded", "acme/pinned"}


def test_allocated_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(os.urandom(100_000))
    os.link(tmp_path / "a", tmp_path / "b")
    info = (tmp_path / "a").lstat()
    assert stat.S_ISREG(info.st_mode)
    assert allocated(tmp_path) == info.st_blocks * 512
