"""GET /models/storage: figures from the real file system; unmanaged repos listed."""

from __future__ import annotations

import shutil

from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry, run_app


async def test_storage_reports_models_unmanaged_repos_and_disk(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    managed = demo_repo_files("t2v")
    other = demo_repo_files("i2v", seed=7)
    local_hub.create_repo("acme/tiny-video", managed)
    local_hub.create_repo("someone/other-model", other)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    fill_cache_with_huggingface_hub(local_hub, "acme/tiny-video", settings.models_dir)
    fill_cache_with_huggingface_hub(local_hub, "someone/other-model", settings.models_dir)
    unmanaged_dir = settings.models_dir / "models--someone--other-model"
    before = sorted(
        (p.relative_to(unmanaged_dir), p.lstat().st_mtime_ns) for p in unmanaged_dir.rglob("*")
    )

    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        body = (await app.client.get("/api/v1/models/storage")).json()

    disk = shutil.disk_usage(settings.models_dir)
    summary = body["storage_summary"]
    managed_bytes = sum(len(d) for d in managed.values())
    other_bytes = sum(len(d) for d in other.values())
    # Unrounded (issue 9): these ~0.45 MB used to show as 0.0 GB.
    assert summary["used_space_bytes"] == managed_bytes + other_bytes
    assert summary["used_space_gb"] == (managed_bytes + other_bytes) / 1e9 > 0
    assert summary["total_capacity_bytes"] == (
        summary["used_space_bytes"] + summary["available_space_bytes"]
    )
    assert abs(summary["available_space_bytes"] - disk.free) < 5 * 10**8  # others write too
    assert summary["usage_percent"] > 0
    assert summary["models_count"] == 1
    assert abs(summary["disk_free_gb"] - disk.free / 1e9) < 0.5
    assert summary["available_space_gb"] <= summary["disk_free_gb"]
    assert summary["quota_gb"] is None
    assert [m["model_id"] for m in body["models_storage"]] == ["tiny-video"]
    model = body["models_storage"][0]
    assert model["size_bytes"] == managed_bytes
    assert model["size_gb"] == managed_bytes / 1e9
    assert model["storage_tier"] == "cold"
    assert model["last_accessed"] is None
    assert [r["repo_id"] for r in body["unmanaged_repositories"]] == ["someone/other-model"]
    assert body["unmanaged_repositories"][0]["refs"]["main"]
    assert body["cleanup_suggestions"] == {
        "potential_savings_gb": 0.0,
        "safe_to_remove_count": 0,
        "candidates": [],
    }
    after = sorted(
        (p.relative_to(unmanaged_dir), p.lstat().st_mtime_ns) for p in unmanaged_dir.rglob("*")
    )
    assert after == before


async def test_quota_bounds_capacity(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        await app.client.put("/api/v1/config/update", json={"storage": {"max_storage_gb": 10}})
        summary = (await app.client.get("/api/v1/models/storage")).json()["storage_summary"]
    assert summary["total_capacity_gb"] == 10
    assert summary["total_capacity_bytes"] == 10**10
    assert summary["quota_gb"] == 10
    assert summary["used_space_gb"] == 0
    assert summary["usage_percent"] == 0


async def test_a_quota_above_the_disk_does_not_raise_capacity(
    make_settings: SettingsFactory,
) -> None:
    """Capacity is what models may occupy: used + the disk's free space, capped by a smaller
    quota; a quota beyond the disk promises nothing more."""
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        await app.client.put(
            "/api/v1/config/update", json={"storage": {"max_storage_gb": 1_000_000}}
        )
        summary = (await app.client.get("/api/v1/models/storage")).json()["storage_summary"]
    free = shutil.disk_usage(settings.models_dir).free
    assert summary["quota_gb"] == 1_000_000
    assert abs(summary["total_capacity_bytes"] - free) < 5 * 10**8  # others write too
    assert summary["total_capacity_bytes"] == (
        summary["used_space_bytes"] + summary["available_space_bytes"]
    )
