"""Repositories of many small files (issue 9): one GET per file, verified, durable, resumable.

A file no bigger than a segment is fetched with a single GET (redirects followed hop by
hop), hashed as written, fsynced and renamed, and linked only after its folder was made
durable; a kill -9 in the middle leaves no corrupt blob, and the restart fetches only
the files that were not finished.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download

from modeldepot.settings import Settings
from modeldepot.testing import (
    DEFAULT_TOKEN,
    CutBody,
    LocalHub,
    Status,
    Throttle,
    WrongBytes,
    git_blob_sha1,
)
from tests.downloads.conftest import app_for, finish, start
from tests.downloads.crash_support import (
    PARTIAL,
    HubModel,
    ServiceProcess,
    leftovers,
    random_bytes,
    running_service,
    snapshot_problems,
)

Fast = Callable[..., Settings]
REPO = "acme/tiny-video"  # the name app_for's default entry ("tiny") points at
COUNT = 60
LFS_SIZE = 20_000  # *.safetensors: LFS by pattern, redirected to the CDN
GIT_SIZE = 6_000  # under the hub's 10 KiB threshold: a regular git file served by the hub
EXPIRED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Request has expired</Message></Error>"
)


def small_files(count: int = COUNT, *, seed: int = 9) -> dict[str, bytes]:
    files = {}
    for index in range(count):
        if index % 2:
            files[f"data/chunk-{index:03d}.dat"] = random_bytes(GIT_SIZE, seed=seed * 1000 + index)
        else:
            path = f"weights/shard-{index:03d}.safetensors"
            files[path] = random_bytes(LFS_SIZE, seed=seed * 1000 + index)
    return files


def blob_name(path: str, data: bytes) -> str:
    """How the hub cache names a file's blob: sha256 for LFS, the git blob id otherwise."""
    lfs = path.endswith(".safetensors")
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)


def corrupt_blobs(blobs: Path) -> list[str]:
    """Blobs whose bytes do not hash to their name (neither sha256 nor git blob id)."""
    bad = []
    for blob in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if PARTIAL in blob.name or blob.name.startswith("."):
            continue
        data = blob.read_bytes()
        if blob.name not in (hashlib.sha256(data).hexdigest(), git_blob_sha1(data)):
            bad.append(blob.name)
    return bad


def fetches(hub: LocalHub, path: str, data: bytes, *, since: float = 0.0) -> int:
    """Requests that asked for the file's bytes or its URL (hub GETs, CDN GETs)."""
    on_hub = hub.requests.filter(server="hub", filename=path)
    on_cdn = hub.requests.filter(server="cdn", method="GET", path=f"/blobs/{blob_name(path, data)}")
    return sum(r.started > since for r in [*on_hub, *on_cdn])


@pytest.fixture
def files(local_hub: LocalHub) -> dict[str, bytes]:
    content = small_files()
    local_hub.create_repo(REPO, content)
    return content


def snapshot(settings: Settings) -> Path:
    return Path(snapshot_download(REPO, cache_dir=settings.models_dir, local_files_only=True))


# --- in process ---------------------------------------------------------------------------


async def test_many_small_files_one_get_each_verified_and_loadable(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast
) -> None:
    settings = fast_settings(hf_token=DEFAULT_TOKEN)
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
    assert progress["status"] == "COMPLETED", progress
    assert status["availability_status"] == "AVAILABLE"
    folder = snapshot(settings)  # huggingface_hub itself finds every file, offline
    for path, data in files.items():
        assert (folder / path).read_bytes() == data, path
    blobs = settings.models_dir / "models--acme--tiny-video" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        blob_name(p, d) for p, d in files.items()
    )
    assert leftovers(settings.models_dir) == []
    assert scan_cache_dir(settings.models_dir).warnings == []
    # One GET per file and no HEAD; LFS files: the hub's redirect, then the CDN, no Range.
    asked = [r for r in local_hub.requests if r.filename in files or r.server == "cdn"]
    assert [r for r in asked if r.method != "GET"] == []
    for path in files:
        on_hub = local_hub.requests.filter(server="hub", filename=path)
        assert [r.status for r in on_hub] == [302 if path.endswith(".safetensors") else 200]
        assert on_hub[0].authorization == f"Bearer {DEFAULT_TOKEN}"
    on_cdn = local_hub.requests.filter(server="cdn")
    assert len(on_cdn) == COUNT // 2
    assert all(r.range is None and r.authorization is None for r in on_cdn)  # token: hub only


async def test_an_expired_url_of_a_small_file_is_asked_for_again_once(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast
) -> None:
    path = "weights/shard-004.safetensors"
    local_hub.signed_url_ttl = 3600
    local_hub.faults.add(
        Status(403, body=EXPIRED_XML), server="cdn", method="GET", filename=path, times=1
    )
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, max_retries=0)  # a renewal is not a retry
        progress = await finish(app)
    assert progress["status"] == "COMPLETED", progress
    assert progress["retry_count"] == 0
    assert len(local_hub.requests.filter(server="hub", filename=path)) == 2
    assert (snapshot(settings) / path).read_bytes() == files[path]


async def test_a_small_file_refused_even_when_fresh_fails_and_leaves_nothing(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast
) -> None:
    path = "weights/shard-010.safetensors"
    local_hub.signed_url_ttl = 3600
    rule = local_hub.faults.add(
        Status(403, body=EXPIRED_XML), server="cdn", method="GET", filename=path, times=None
    )
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app, max_retries=5)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UPSTREAM_UNAUTHORIZED"
    assert rule.hits == 2  # the first URL and one fresh one, then believed: no loop
    assert leftovers(settings.models_dir) == []
    assert not (settings.models_dir / "models--acme--tiny-video" / "refs" / "main").exists()


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
async def test_wrong_bytes_of_a_small_file_are_fetched_again_then_refused(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast, times: int | None
) -> None:
    path = "data/chunk-007.dat"
    local_hub.faults.add(WrongBytes(offsets=(100,)), server="hub", filename=path, times=times)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    blob = settings.models_dir / "models--acme--tiny-video" / "blobs" / blob_name(path, files[path])
    assert len(local_hub.requests.filter(server="hub", filename=path)) == 2
    assert corrupt_blobs(blob.parent) == []
    assert leftovers(settings.models_dir) == []
    if times == 1:
        assert progress["status"] == "COMPLETED", progress
        assert blob.read_bytes() == files[path]
    else:
        assert progress["status"] == "FAILED"
        assert progress["error_code"] == "CHECKSUM_MISMATCH"
        assert path in progress["error_message"]
        assert not blob.exists()


async def test_a_cut_body_of_a_small_file_is_fetched_again(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast
) -> None:
    path = "weights/shard-020.safetensors"
    local_hub.faults.add(CutBody(after_bytes=5000), server="cdn", filename=path, times=1)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert progress["status"] == "COMPLETED", progress
    assert (snapshot(settings) / path).read_bytes() == files[path]
    assert len(local_hub.requests.filter(server="cdn", method="GET")) == COUNT // 2 + 1


async def test_a_redirect_of_a_small_file_to_an_internal_address_is_refused(
    local_hub: LocalHub, files: dict[str, bytes], fast_settings: Fast
) -> None:
    local_hub.redirect_base_url = "http://169.254.169.254"  # cloud metadata
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        progress = await finish(app)
    assert progress["status"] == "FAILED"
    assert progress["error_code"] == "UNSAFE_SOURCE"
    assert "169.254.169.254" in progress["error_message"]
    assert leftovers(settings.models_dir) == []


# --- kill -9 ------------------------------------------------------------------------------


def promoted(blobs: Path) -> set[str]:
    try:
        return {p.name for p in blobs.iterdir() if PARTIAL not in p.name}
    except FileNotFoundError:
        return set()


@pytest.mark.parametrize("seed", [91, 92])
def test_kill_during_many_small_files_resumes_without_refetching_finished_ones(
    local_hub: LocalHub, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    content = small_files(seed=seed)
    commit = local_hub.create_repo("acme/smalls", content)
    model = HubModel(model_id="smalls", repo_id="acme/smalls", commit=commit, files=content)
    # Slow enough that the kill lands with some files done and others on the wire.
    local_hub.faults.add(Throttle(bytes_per_second=40_000), server="any", method="GET")
    service = ServiceProcess(root=tmp_path / "svc", hub=local_hub, models=[model])
    blobs = service.models_root / model.folder / "blobs"
    with running_service(service):
        service.start()
        assert service.manage("start", "smalls").status_code == 200
        wanted = rng.randint(5, COUNT - 15)
        deadline = time.monotonic() + 30
        while len(promoted(blobs)) < wanted:
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.002)
        service.kill()
        finished = promoted(blobs)
        print(f"seed={seed}: killed with {len(finished)} of {COUNT} blobs promoted")
        assert 0 < len(finished) < COUNT
        assert corrupt_blobs(blobs) == []  # a blob's name is a promise about its bytes
        # Visible => verified; a temp link caught mid-rename is swept at start-up.
        problems = snapshot_problems(service.models_root, model)
        assert [p for p in problems if not p.endswith(".tmp-link")] == []

        local_hub.faults.clear()
        restarted_at = time.monotonic()
        service.start()  # resumes by itself
        final = service.wait_for_status("smalls", ("COMPLETED", "FAILED", "CANCELLED"))
        service.stop()

    assert final["status"] == "COMPLETED", final
    for path, data in content.items():
        again = fetches(local_hub, path, data, since=restarted_at)
        if blob_name(path, data) in finished:
            assert again == 0, path  # finished before the kill: never asked for again
        else:
            assert again > 0, path
    models = service.models_root
    folder = Path(snapshot_download("acme/smalls", cache_dir=models, local_files_only=True))
    for path, data in content.items():
        assert (folder / path).read_bytes() == data, path
    assert corrupt_blobs(blobs) == []
    assert snapshot_problems(models, model) == []
    assert leftovers(models) == []
    assert scan_cache_dir(models).warnings == []
