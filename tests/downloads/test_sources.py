"""Where downloads may go (RELIABILITY.md items 2, 6-9): SSRF policy on every redirect hop,
the token only for the hub, redirect loops, hostile file lists, single-file URL models."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.settings import Settings
from modeldepot.testing import DEFAULT_TOKEN, LocalHub, Redirect
from tests.downloads.conftest import BIG, Repo, app_for, finish, start
from tests.support import run_app

Fast = Callable[..., Settings]


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/blobs/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:1/blobs/x",
        "http://0.0.0.0:1/blobs/x",
        "http://[::1]:1/blobs/x",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/x",
        "http://example.com:99999/x",
    ],
)
async def test_redirects_to_internal_or_odd_targets_are_refused(
    location: str, local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    local_hub.faults.add(Redirect(location=location), server="cdn", filename=BIG, times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UNSAFE_SOURCE"
    assert progress["retry_count"] == 0  # refused at once, never retried
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    # No blob directory at all when the refusal came before any file was started.
    assert not [p for p in blobs.glob("*") if "partial" in p.name]


async def test_allowed_hosts_may_be_private(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    mirror = local_hub.mirror_url.replace("127.0.0.1", "localhost")
    local_hub.faults.add(
        Redirect(location=f"{mirror}/blobs/{repo.sha256(BIG)}"),
        server="cdn",
        filename=BIG,
        method="HEAD",
        times=None,
    )
    refused = fast_settings()
    async with app_for(refused) as app:
        await start(app)
        assert (await finish(app))["error_code"] == "UNSAFE_SOURCE"
    allowed = fast_settings(
        allowed_source_hosts=["localhost"],
        data_dir=refused.data_dir / "b",
        models_dir=refused.models_dir / "b",
    )
    async with app_for(allowed) as app:
        await start(app)
        assert (await finish(app))["status"] == "COMPLETED"


async def test_token_goes_only_to_the_hub(
    local_hub: LocalHub, fast_settings: Fast, tmp_path: Path
) -> None:
    data = b"p" * 300_000
    local_hub.create_repo("acme/private", {"model.safetensors": data}, private=True)
    local_hub.faults.add(
        Redirect(location=f"{local_hub.mirror_url}/blobs/{hashlib.sha256(data).hexdigest()}"),
        server="cdn",
        method="HEAD",
        times=None,
    )
    settings = fast_settings(hf_token=DEFAULT_TOKEN)
    async with app_for(settings, ("private", "acme/private")) as app:
        await start(app, "private")
        progress = await finish(app, "private")
    assert progress["status"] == "COMPLETED"
    hub = [r for r in local_hub.requests if r.server == "hub"]
    elsewhere = [r for r in local_hub.requests if r.server != "hub"]
    assert hub
    assert all(r.authorization == f"Bearer {DEFAULT_TOKEN}" for r in hub)
    assert {r.server for r in elsewhere} == {"cdn", "mirror"}
    assert all(r.authorization is None for r in elsewhere)


async def test_redirect_loop_fails_cleanly(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    blob = f"/blobs/{repo.sha256(BIG)}"
    local_hub.faults.add(Redirect(location=blob), server="cdn", path=blob, times=None)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, max_retries=1)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert "Redirect loop" in progress["error_message"]
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    # No blob directory at all when the refusal came before any file was started.
    assert not [p for p in blobs.glob("*") if "partial" in p.name]


@pytest.mark.parametrize("hostile", ["../evil.bin", "/etc/evil", "a/../../evil", "C:\\evil"])
async def test_hostile_file_list_fails_before_any_directory_exists(
    hostile: str, local_hub: LocalHub, fast_settings: Fast
) -> None:
    local_hub.create_repo("acme/hostile", {"config.json": b"{}", hostile: b"x"}, unsafe_paths=True)
    settings = fast_settings()
    async with app_for(settings, ("hostile", "acme/hostile")) as app:
        response = await app.client.post(
            "/api/v1/models/download/manage", json={"model_id": "hostile", "action": "start"}
        )
    assert response.status_code >= 500
    assert "unsafe" in response.json()["error"]["message"]
    assert not (settings.models_dir / "models--acme--hostile").exists()
    assert not (settings.models_dir.parent / "evil.bin").exists()


async def test_single_file_url_models_download_verified(
    local_hub: LocalHub, fast_settings: Fast
) -> None:
    data = b"v" * 700_000
    local_hub.create_repo("acme/single", {"vae.safetensors": data})
    url = f"{local_hub.endpoint}/acme/single/resolve/main/vae.safetensors"
    entries = (
        CatalogEntry(id="pinned", source=url, sha256=hashlib.sha256(data).hexdigest()),
        CatalogEntry(id="wrong", source=url, sha256="0" * 64),
    )
    settings = fast_settings()
    async with run_app(settings, entries=entries) as app:
        for model_id in ("pinned", "wrong"):
            await app.client.post(
                "/api/v1/models/download/manage", json={"model_id": model_id, "action": "start"}
            )
        await app.services.downloads.run_until_idle()
        pinned = (await app.client.get("/api/v1/models/status/detailed/pinned")).json()
        wrong = (await app.client.get("/api/v1/models/download/progress/wrong")).json()
    assert pinned["availability_status"] == "AVAILABLE"
    stored = next((settings.models_dir / "models--modeldepot-url--pinned").glob("snapshots/*/*"))
    assert stored.read_bytes() == data
    assert wrong["status"] == "FAILED"
    assert wrong["error_code"] == "CHECKSUM_MISMATCH"
