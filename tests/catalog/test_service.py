"""Catalogue service against the real local hub and both database backends."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from modeldepot.catalog.resolver import SourceResolver
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.db import open_database
from modeldepot.testing import LocalHub, demo_repo_files, git_blob_sha1
from tests.support import SettingsFactory, hub_entry


async def test_manifest_matches_the_bytes_and_is_shared_between_models(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    files = demo_repo_files("t2v")
    commit = local_hub.create_repo("acme/tiny-video", files)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    entries = {
        "all": hub_entry("all", "acme/tiny-video"),
        "configs": hub_entry("configs", "acme/tiny-video", allow_patterns=["*.json"]),
    }
    async with (
        httpx.AsyncClient() as http,
        open_database(settings.resolved_database_url, schema=settings.database_schema) as db,
    ):
        resolver = SourceResolver(endpoint=local_hub.endpoint, token=None, timeout=3, http=http)
        service = CatalogService(entries=entries, resolver=resolver, sessions=db, concurrency=2)
        await service.refresh_all()
        everything = service.state("all").manifest
        configs = service.state("configs").manifest

        reloaded = CatalogService(entries=entries, resolver=resolver, sessions=db, concurrency=2)
        await reloaded.load()
        assert reloaded.state("all").manifest == everything
        assert await reloaded.manifest_for_commit("configs", commit) == configs

    assert everything is not None
    assert configs is not None
    assert everything.commit == commit
    by_path = {f.path: f for f in everything.files}
    assert set(by_path) == set(files)
    for path, data in files.items():
        entry = by_path[path]
        assert entry.size == len(data)
        if entry.digest and entry.digest.startswith("sha256:"):
            assert entry.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        else:
            assert entry.digest == "gitsha1:" + git_blob_sha1(data)
    assert any(f.digest.startswith("sha256:") for f in everything.files if f.digest)
    assert [f.path for f in configs.files] == sorted(p for p in files if p.endswith(".json"))


async def test_url_sources_pinned_need_no_network_and_unpinned_learn_their_size(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    data = b"weights" * 1000
    local_hub.create_repo("acme/single", {"vae.safetensors": data})
    url = f"{local_hub.endpoint}/acme/single/resolve/main/vae.safetensors"
    pinned = CatalogEntry(
        id="pinned",
        source="https://unreachable.invalid/vae.safetensors",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    unpinned = CatalogEntry(id="unpinned", source=url)
    settings = make_settings()
    async with (
        httpx.AsyncClient() as http,
        open_database(settings.resolved_database_url) as db,
    ):
        resolver = SourceResolver(endpoint="http://127.0.0.1:9", token=None, timeout=3, http=http)
        service = CatalogService(
            entries={"pinned": pinned, "unpinned": unpinned},
            resolver=resolver,
            sessions=db,
            concurrency=2,
        )
        await service.refresh_all()
    first = service.state("pinned").manifest
    second = service.state("unpinned").manifest
    assert first is not None
    assert second is not None
    assert first.files[0].digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert first.repo_id == "modeldepot-url/pinned"
    assert (second.files[0].path, second.files[0].size, second.files[0].digest) == (
        "vae.safetensors",
        len(data),
        None,
    )


async def test_hub_gzip_bomb_is_refused_unread(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from modeldepot.testing import GzipBomb
    from tests.support import run_app

    local_hub.create_repo("acme/bomb", demo_repo_files("t2v"))
    local_hub.create_repo("acme/fine", demo_repo_files("i2v"))
    local_hub.faults.add(GzipBomb(inflated_size=10**8), server="hub", path="/api/models/acme/bomb*")
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entries = (hub_entry("bomb", "acme/bomb"), hub_entry("fine", "acme/fine"))
    async with run_app(settings, entries=entries) as app:
        bomb = (await app.client.get("/api/v1/models/status/detailed/bomb")).json()
        fine = (await app.client.get("/api/v1/models/status/detailed/fine")).json()
    assert bomb["source_error_code"] == "UPSTREAM_PROTOCOL_ERROR"
    assert "Content-Encoding gzip" in bomb["source_error"]
    assert fine["latest_version"] is not None
    api = [r for r in local_hub.requests if r.path.startswith("/api/models/acme/")]
    assert all(r.headers.get("accept-encoding") == "identity" for r in api)
