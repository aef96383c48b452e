"""HubCache: what is installed (one rule, each fallback), its writers, and containment.

Caches are filled by huggingface_hub from the local hub, or written by hand where a test
needs a shape huggingface_hub would not leave; the service graph is the real one.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import hf_hub_download

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.errors import ModelNotFound, UnsafePath
from modeldepot.ids import make_digest
from modeldepot.services import Services, open_services
from modeldepot.settings import Settings
from modeldepot.store.cache import HubCache
from modeldepot.store.layout import RepoLayout
from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry

REPO = "acme/tiny-video"
MODEL = "tiny-video"
OLD, NEW = "1" * 40, "2" * 40


@asynccontextmanager
async def services_for(
    settings: Settings, *entries: CatalogEntry, resolve: bool = True
) -> AsyncIterator[Services]:
    async with open_services(
        settings,
        extra_entries=entries or (hub_entry(MODEL, REPO),),
        include_builtin=False,
        background=False,
    ) as services:
        if resolve:
            await services.catalog.refresh_all()
        yield services


def put_blob(layout: RepoLayout, data: bytes) -> str:
    """Write a verified blob the way the download engine leaves one; return its digest."""
    digest = make_digest("sha256", hashlib.sha256(data).hexdigest())
    layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    layout.blob_path(digest).write_bytes(data)
    return digest


@pytest.fixture
def offline_settings(make_settings: SettingsFactory) -> Settings:
    """The hub points nowhere: only stored manifests and the cache itself are known."""
    return make_settings()


@pytest.fixture
async def cache(offline_settings: Settings) -> AsyncIterator[HubCache]:
    async with services_for(offline_settings, resolve=False) as services:
        yield services.cache


# --- what is installed ---------------------------------------------------------------------


async def test_installed_uses_the_stored_hub_manifest_of_the_installed_commit(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    old = local_hub.create_repo(REPO, demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    fill_cache_with_huggingface_hub(local_hub, REPO, settings.models_dir)
    async with services_for(settings) as services:
        new = local_hub.commit(REPO, add={"config.json": b'{"v": 2}\n'})
        await services.catalog.refresh(MODEL)  # the old commit's manifest stays stored
        installed = await services.cache.installed(MODEL)
    assert installed.commit == old
    assert installed.manifest is not None
    assert (installed.manifest.source, installed.manifest.commit) == ("hub", old)
    assert installed.latest is not None
    assert installed.latest.commit == new
    assert installed.expected == installed.manifest
    assert installed.layout.path == settings.models_dir / "models--acme--tiny-video"


async def test_installed_falls_back_to_a_manifest_derived_from_the_cache(
    local_hub: LocalHub, offline_settings: Settings
) -> None:
    files = demo_repo_files("t2v")
    commit = local_hub.create_repo(REPO, files)
    fill_cache_with_huggingface_hub(local_hub, REPO, offline_settings.models_dir)
    async with services_for(offline_settings) as services:  # the hub cannot be reached
        installed = await services.cache.installed(MODEL)
    assert installed.commit == commit
    assert installed.latest is None
    assert installed.manifest is not None
    assert installed.manifest.source == "cache"
    assert {f.path: f.size for f in installed.manifest.files} == {
        path: len(data) for path, data in files.items()
    }


async def test_installed_without_stored_or_cached_files_has_no_manifest(
    cache: HubCache,
) -> None:
    cache.layout(REPO).write_ref("main", OLD)  # a ref naming a snapshot that is not there
    installed = await cache.installed(MODEL)
    assert (installed.commit, installed.manifest, installed.latest) == (OLD, None, None)
    assert installed.expected is None
    assert await cache.observe(installed) == ()


async def test_nothing_installed_expects_the_newest_commit(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    commit = local_hub.create_repo(REPO, demo_repo_files("t2v"))
    async with services_for(make_settings(hf_endpoint=local_hub.endpoint)) as services:
        installed = await services.cache.installed(MODEL)
        observed = await services.cache.observe(installed)
    assert (installed.commit, installed.manifest) == (None, None)
    assert installed.latest is not None
    assert installed.expected == installed.latest
    assert installed.latest.commit == commit
    assert [o.present for o in observed] == [False] * len(installed.latest.files)


async def test_a_commit_pinned_revision_is_installed_when_its_snapshot_exists(
    local_hub: LocalHub, offline_settings: Settings
) -> None:
    commit = local_hub.create_repo(REPO, demo_repo_files("t2v"))
    pinned = hub_entry(MODEL, REPO, revision=commit)
    async with services_for(offline_settings, pinned, resolve=False) as services:
        before = await services.cache.installed(pinned)
        fill_cache_with_huggingface_hub(local_hub, REPO, offline_settings.models_dir)
        after = await services.cache.installed(pinned)
    assert before.commit is None
    assert after.commit == commit
    assert after.manifest is not None
    assert after.manifest.source == "cache"


async def test_installed_of_an_unknown_model_is_not_found(cache: HubCache) -> None:
    with pytest.raises(ModelNotFound):
        await cache.installed("no-such-model")


# --- the writers ---------------------------------------------------------------------------


async def test_linked_files_and_a_switched_ref_are_what_huggingface_hub_loads(
    cache: HubCache,
) -> None:
    layout = cache.layout(REPO)
    digest = put_blob(layout, b"weights")
    link = await cache.link_file(REPO, commit=OLD, path="unet/model.bin", digest=digest)
    assert await cache.switch_ref(REPO, revision="main", commit=OLD) is None
    loaded = hf_hub_download(REPO, "unet/model.bin", cache_dir=cache.root, local_files_only=True)
    assert Path(loaded) == link
    assert link.read_bytes() == b"weights"

    cache.link_file_blocking(REPO, commit=NEW, path="unet/model.bin", digest=digest)
    assert cache.switch_ref_blocking(REPO, revision="main", commit=NEW) == OLD
    assert layout.read_ref("main") == NEW
    # A commit-pinned revision has no ref: nothing to switch, nothing written.
    assert await cache.switch_ref(REPO, revision=OLD, commit=OLD) is None
    assert sorted(p.name for p in (layout.path / "refs").iterdir()) == ["main"]


async def test_pruning_a_revision_keeps_blobs_another_snapshot_links(cache: HubCache) -> None:
    layout = cache.layout(REPO)
    shared, own = put_blob(layout, b"shared"), put_blob(layout, b"only-old")
    for commit in (OLD, NEW):
        await cache.link_file(REPO, commit=commit, path="shared.bin", digest=shared)
    await cache.link_file(REPO, commit=OLD, path="old.bin", digest=own)
    await cache.switch_ref(REPO, revision="main", commit=NEW)
    assert await cache.refs_pointing_at(REPO, OLD) == []
    assert await cache.refs_pointing_at(REPO, NEW) == ["main"]

    async with cache.lock(REPO):
        freed = await cache.prune_revision(REPO, OLD)
    assert freed == len(b"only-old")
    assert await cache.snapshot_commits(REPO) == [NEW]
    assert layout.blob_path(shared).read_bytes() == b"shared"
    assert not layout.blob_path(own).exists()


async def test_repair_removals_spare_what_another_revision_links(cache: HubCache) -> None:
    layout = cache.layout(REPO)
    shared, own = put_blob(layout, b"shared"), put_blob(layout, b"own")
    for commit in (OLD, NEW):
        await cache.link_file(REPO, commit=commit, path="shared.bin", digest=shared)
    await cache.link_file(REPO, commit=NEW, path="own.bin", digest=own)

    assert await cache.remove_snapshot_entry(REPO, commit=NEW, path="own.bin") is True
    assert await cache.remove_snapshot_entry(REPO, commit=NEW, path="own.bin") is False
    assert await cache.remove_blob(REPO, own, owner=NEW) is True
    assert await cache.remove_blob(REPO, shared, owner=NEW) is False  # OLD still links it
    assert layout.blob_path(shared).read_bytes() == b"shared"
    assert (layout.snapshot_dir(OLD) / "shared.bin").read_bytes() == b"shared"
    assert not layout.blob_path(own).exists()


async def test_temp_files_and_partials_are_swept(cache: HubCache) -> None:
    layout = cache.layout(REPO)
    digest = put_blob(layout, b"kept")
    await cache.link_file(REPO, commit=OLD, path="kept.bin", digest=digest)
    await cache.switch_ref(REPO, revision="main", commit=OLD)
    leftovers = [
        layout.path / "refs" / ".main.123.tmp",
        layout.blobs_dir / ".abc.123.tmp",
        layout.snapshot_dir(OLD) / ".kept.bin.123.tmp-link",
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"x")
    partial = layout.partial_path(make_digest("sha256", "c" * 64))
    partial.write_bytes(b"half")
    partial.with_name(partial.name + ".json").write_text("{}")

    assert sorted(await cache.sweep_temp_files(REPO)) == sorted(leftovers)
    await cache.remove_partials(REPO, (ManifestFile("big.bin", 10, "sha256:" + "c" * 64),))
    assert sorted(p.name for p in layout.blobs_dir.iterdir()) == [
        Path(layout.blob_path(digest)).name
    ]
    assert layout.read_ref("main") == OLD
    assert (layout.snapshot_dir(OLD) / "kept.bin").read_bytes() == b"kept"


async def test_one_lock_per_repository(offline_settings: Settings) -> None:
    """The download engine, repair and the revision sweep all take ``cache.lock`` (the
    download service no longer has locks of its own)."""
    async with services_for(offline_settings, resolve=False) as services:
        cache = services.cache
        assert cache.lock(REPO) is cache.lock(REPO)
        assert cache.lock(REPO) is not cache.lock("acme/other")
        assert not hasattr(services.downloads, "repo_locks")


# --- containment ---------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the models directory with canary files a write must never touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "canary").write_bytes(b"canary")
    return folder


def untouched(outside: Path, *names: str) -> bool:
    return sorted(p.name for p in outside.iterdir()) == sorted(["canary", *names]) and (
        (outside / "canary").read_bytes() == b"canary"
    )


async def test_a_linked_snapshots_folder_is_never_written_through(
    cache: HubCache, outside: Path
) -> None:
    layout = cache.layout(REPO)
    digest = put_blob(layout, b"data")
    (layout.path / "snapshots").symlink_to(outside, target_is_directory=True)
    (outside / OLD).mkdir()
    (outside / OLD / "victim.bin").write_bytes(b"victim")
    with pytest.raises(UnsafePath):
        await cache.link_file(REPO, commit=OLD, path="new.bin", digest=digest)
    with pytest.raises(UnsafePath):
        await cache.remove_snapshot_entry(REPO, commit=OLD, path="victim.bin")
    with pytest.raises(UnsafePath):
        await cache.prune_revision(REPO, OLD)
    assert untouched(outside, OLD)
    assert [p.name for p in (outside / OLD).iterdir()] == ["victim.bin"]


async def test_a_linked_refs_folder_is_never_written_through(
    cache: HubCache, outside: Path
) -> None:
    layout = cache.layout(REPO)
    layout.path.mkdir(parents=True)
    (layout.path / "refs").symlink_to(outside, target_is_directory=True)
    (outside / ".main.1.tmp").write_bytes(b"not ours")
    with pytest.raises(UnsafePath):
        await cache.switch_ref(REPO, revision="main", commit=OLD)
    assert await cache.sweep_temp_files(REPO) == []
    assert untouched(outside, ".main.1.tmp")


async def test_a_linked_blobs_folder_is_never_written_through(
    cache: HubCache, outside: Path
) -> None:
    layout = cache.layout(REPO)
    layout.path.mkdir(parents=True)
    (layout.path / "blobs").symlink_to(outside, target_is_directory=True)
    name = hashlib.sha256(b"victim").hexdigest()
    (outside / name).write_bytes(b"victim")
    (outside / (name + ".modeldepot-partial")).write_bytes(b"vic")
    digest = make_digest("sha256", name)
    with pytest.raises(UnsafePath):
        await cache.remove_blob(REPO, digest, owner=OLD)
    with pytest.raises(UnsafePath):
        await cache.remove_partials(REPO, (ManifestFile("victim.bin", 6, digest),))
    assert untouched(outside, name, name + ".modeldepot-partial")


async def test_a_snapshot_entry_linking_out_is_removed_not_followed(
    cache: HubCache, outside: Path
) -> None:
    layout = cache.layout(REPO)
    snapshot = layout.snapshot_dir(OLD)
    snapshot.mkdir(parents=True)
    (snapshot / "evil.bin").symlink_to(outside / "canary")
    digest = put_blob(layout, b"good")
    # Replacing or removing the entry itself never follows it to its target.
    await cache.link_file(REPO, commit=OLD, path="evil.bin", digest=digest)
    assert (snapshot / "evil.bin").read_bytes() == b"good"
    (snapshot / "other.bin").symlink_to(outside / "canary")
    assert await cache.remove_snapshot_entry(REPO, commit=OLD, path="other.bin") is True
    assert untouched(outside)
