"""Disk faults during downloads, on real file systems: a full disk, too little space, a
quota, a read-only models directory, a cancel mid-way, and fsync answering EIO.

RELIABILITY.md 25, 26, 27 and 29. "Disk full" and "read-only" come from a small tmpfs the
test mounts (we run as root); EIO comes from libfiu's POSIX preload (Debian package
``fiu-utils``), which makes ``fdatasync``/``fsync`` of the real service process fail at the
libc boundary. Nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, Throttle
from tests.downloads.conftest import BIG, BIG_SIZE, Repo, app_for, finish, start
from tests.downloads.crash_support import (
    PARTIAL,
    HubModel,
    ServiceProcess,
    cdn_gets,
    file_states,
    fill_disk,
    leftovers,
    publish,
    remount_read_only,
    requested_range,
    running_service,
    snapshot_problems,
    tmpfs,
)
from tests.downloads.test_control import manage
from tests.support import RunningApp
from tests.support import progress_until as wait_for

Fast = Callable[..., Settings]
Mount = Callable[[str], Path]
TINY = "models--acme--tiny-video"


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Factory: ``mount_tmpfs("8M")`` mounts a fresh tmpfs; all are unmounted afterwards."""
    with contextlib.ExitStack() as stack:
        count = 0

        def mount(size: str) -> Path:
            nonlocal count
            count += 1
            return stack.enter_context(tmpfs(tmp_path / f"disk-{count}", size=size))

        yield mount


def other_model(hub: LocalHub) -> None:
    hub.create_repo(
        "acme/other",
        {"config.json": b"{}", "model.safetensors": b"\x07" * 700_000, "README.md": b"# other\n"},
    )


async def status_of(app: RunningApp, model_id: str = "tiny") -> dict[str, Any]:
    return dict((await app.client.get(f"/api/v1/models/status/detailed/{model_id}")).json())


# --- ENOSPC mid-write (25) --------------------------------------------------------------------


async def test_disk_full_mid_download_keeps_the_checkpointed_bytes_and_resumes(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast, mount_tmpfs: Mount
) -> None:
    """RELIABILITY.md 25 and 45: the download fails with DISK_FULL, other models are
    untouched, no temp file is left, the checkpointed partial bytes stay for the next
    attempt, the progress shows exactly those, and a start after space is freed resumes
    them instead of fetching them again."""
    other_model(local_hub)
    disk = mount_tmpfs("6M")
    settings = fast_settings(models_dir=disk / "models", storage={"min_free_space_gb": 0})
    models = (("tiny", "acme/tiny-video"), ("other", "acme/other"))
    async with app_for(settings, *models) as app:
        await start(app, "other")
        assert (await finish(app, "other"))["status"] == "COMPLETED"
        other_before = file_states(settings.models_dir / "models--acme--other")
        local_hub.faults.add(Throttle(bytes_per_second=400_000), server="cdn", filename=BIG)
        await start(app, "tiny")
        await wait_for(app, lambda b: b["downloaded_mb"] > 0.3)
        # Another program fills the disk while the download runs.
        await asyncio.to_thread(fill_disk, disk / "filler")
        progress = await finish(app, "tiny")
        status = await status_of(app)
        other_status = await status_of(app, "other")
        kept = _checkpointed(settings, repo)
        file_progress = {f["path"]: f["downloaded"] for f in progress["files"]}

        (disk / "filler").unlink()
        local_hub.faults.clear()
        before_resume = len(local_hub.requests)
        await start(app, "tiny")
        resumed = await finish(app, "tiny")

    assert progress["status"] == "FAILED", progress
    assert progress["error_code"] == "DISK_FULL"
    assert "disk full" in progress["error_message"].lower()
    assert status["is_available"] is False
    assert [p for p in leftovers(settings.models_dir) if PARTIAL not in p] == []
    assert sum(b - a for a, b in kept) > 0
    assert file_progress[BIG] == sum(b - a for a, b in kept)  # what stays, not a stale figure
    assert file_states(settings.models_dir / "models--acme--other") == other_before
    assert other_status["availability_status"] == "AVAILABLE"

    assert resumed["status"] == "COMPLETED", resumed
    assert resumed["error_message"] is None
    tiny = settings.models_dir / TINY
    assert (tiny / "blobs" / repo.sha256(BIG)).read_bytes() == repo.files[BIG]
    again = cdn_gets(local_hub, repo.sha256(BIG), since=before_resume)
    for request in again:
        first, _end = requested_range(request, BIG_SIZE)
        assert not any(a <= first < b for a, b in kept), (request.range, kept)


def _checkpointed(settings: Settings, repo: Repo) -> list[tuple[int, int]]:
    blobs = settings.models_dir / TINY / "blobs"
    checkpoint = json.loads((blobs / f"{repo.sha256(BIG)}{PARTIAL}.json").read_text())
    return [(a, a + d) for a, _b, d in checkpoint["plan"]["segments"] if d]


# --- preflight: free space and quota ------------------------------------------------------------


async def test_model_larger_than_the_free_space_is_refused_with_507(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast, mount_tmpfs: Mount
) -> None:
    disk = mount_tmpfs("2M")
    settings = fast_settings(models_dir=disk / "models", storage={"min_free_space_gb": 0})
    async with app_for(settings) as app:
        refused = await manage(app, "start")
        progress = await app.client.get("/api/v1/models/download/progress/tiny")
        active = (await app.client.get("/api/v1/models/download/active")).json()

    assert refused.status_code == 507
    error = refused.json()["error"]
    assert error["code"] == "INSUFFICIENT_STORAGE"
    assert "disk space" in error["message"]
    assert error["details"]["needed_bytes"] >= BIG_SIZE
    assert progress.status_code == 404  # no job was created
    assert active["total_active"] == 0
    # nothing was created on disk (but the lock file of the process that owns the directory)
    assert [p.name for p in settings.models_dir.iterdir()] == [".locks"]


async def test_quota_that_would_be_exceeded_is_refused_with_507(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast
) -> None:
    other_model(local_hub)
    settings = fast_settings(storage={"min_free_space_gb": 0})
    async with app_for(settings, ("tiny", "acme/tiny-video"), ("other", "acme/other")) as app:
        await start(app, "other")
        await finish(app, "other")
        # 2 MB: "other" (0.7 MB) fits, adding "tiny" (3.1 MB) would not.
        updated = await app.client.put(
            "/api/v1/config/update", json={"storage": {"max_storage_gb": 0.002}}
        )
        refused = await manage(app, "start")
        progress = await app.client.get("/api/v1/models/download/progress/tiny")

    assert updated.status_code == 200, updated.text
    assert refused.status_code == 507
    error = refused.json()["error"]
    assert error["code"] == "INSUFFICIENT_STORAGE"
    assert "quota" in error["message"]
    assert progress.status_code == 404
    assert not (settings.models_dir / TINY).exists()


# --- read-only models directory (27) ------------------------------------------------------------


async def test_read_only_models_directory_degrades_and_fails_the_job_once(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast, mount_tmpfs: Mount
) -> None:
    disk = mount_tmpfs("8M")
    remount_read_only(disk)
    settings = fast_settings(models_dir=disk, storage={"min_free_space_gb": 0})
    async with app_for(settings) as app:
        health = (await app.client.get("/healthz")).json()
        started = await manage(app, "start")
        # Refused up front, so there is no job to retry: the queue is idle at once.
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 5)
        progress = await app.client.get("/api/v1/models/download/progress/tiny")
        health_after = await app.client.get("/healthz")

    assert health["status"] == "degraded"
    assert health["models_directory_writable"] is False
    assert health_after.status_code == 200
    assert started.status_code == 507, started.text
    assert started.json()["error"]["code"] == "STORAGE_READ_ONLY"
    assert "read-only" in started.json()["error"]["message"]
    assert progress.status_code == 404  # no job was created
    assert local_hub.requests.filter(server="cdn") == []  # not a byte was fetched
    assert list(disk.iterdir()) == []


def test_read_only_file_system_without_the_models_directory_stops_with_a_message(
    local_hub: LocalHub, tmp_path: Path, mount_tmpfs: Mount
) -> None:
    disk = mount_tmpfs("1M")
    remount_read_only(disk)
    never = HubModel(model_id="x", repo_id="acme/x", commit="0" * 40, files={})
    service = ServiceProcess(root=tmp_path / "svc", hub=local_hub, models=[never])
    service.models_dir = disk / "models"
    service.root.mkdir()
    command = [sys.executable, "-m", "modeldepot", "serve", "--port", "0"]

    result = subprocess.run(
        command, env=service.env(), capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode != 0
    assert "cannot be created" in result.stderr + result.stdout
    assert "Read-only file system" in result.stderr + result.stdout


# --- cancel during a download (29) --------------------------------------------------------------


@pytest.mark.parametrize("after_mb", [0.0, 0.4, 1.5])
async def test_cancel_during_a_download_leaves_nothing_and_stays_cancelled(
    local_hub: LocalHub, repo: Repo, fast_settings: Fast, after_mb: float
) -> None:
    local_hub.faults.add(Throttle(bytes_per_second=500_000), server="cdn", filename=BIG)
    settings = fast_settings()
    async with app_for(settings) as app:
        await start(app)
        if after_mb:
            await wait_for(app, lambda b: b["downloaded_mb"] >= after_mb)
        cancelled = await manage(app, "cancel")
        # Cancel waited for every connection and write of the job to end: nothing after
        # this point is the job's.
        cancelled_at = len(local_hub.requests)
        right_after = leftovers(settings.models_dir)
        status = await status_of(app)
    # The service has shut down (its worker threads are done): a late checkpoint or
    # write that could bring a file back would have landed by now.
    after_shutdown = leftovers(settings.models_dir)
    late = [r for r in local_hub.requests[cancelled_at:] if r.server == "cdn"]
    async with app_for(settings) as app:  # the next start resumes nothing
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 5)
        progress = (await app.client.get("/api/v1/models/download/progress/tiny")).json()

    assert cancelled.json()["new_status"] == "CANCELLED"
    assert right_after == []
    assert after_shutdown == []
    assert leftovers(settings.models_dir) == []
    assert late == []
    assert status["is_available"] is False
    assert progress["status"] == "CANCELLED"
    big_blob = settings.models_dir / TINY / "blobs" / repo.sha256(BIG)
    assert not big_blob.exists()


# --- fsync EIO (26) -----------------------------------------------------------------------------

FIU_RUN = shutil.which("fiu-run")
FIU_CTRL = shutil.which("fiu-ctrl")


@pytest.fixture
def eio_model(local_hub: LocalHub) -> HubModel:
    return publish(
        local_hub,
        model_id="eio",
        repo_id="acme/eio",
        sizes={"weights/a.safetensors": 1_500_000, "weights/b.safetensors": 600_000},
        seed=7,
    )


def enable_fault(prefix: Path, pid: int, command: str) -> None:
    assert FIU_CTRL is not None
    deadline = time.monotonic() + 5
    while not Path(f"{prefix}-{pid}.in").exists():
        assert time.monotonic() < deadline, "libfiu's control pipe never appeared"
        time.sleep(0.01)
    subprocess.run([FIU_CTRL, "-f", str(prefix), "-c", command, str(pid)], timeout=10, check=True)


@pytest.mark.skipif(
    (FIU_RUN is None or FIU_CTRL is None) and not os.environ.get("CI"),
    reason="needs libfiu's fiu-run/fiu-ctrl: apt-get install fiu-utils (scripts/check does)",
)
@pytest.mark.parametrize(
    ("function", "when"),
    [("fdatasync", 0.1), ("fsync", 0.85)],
)
def test_fsync_eio_fails_the_job_and_is_never_taken_for_success(
    local_hub: LocalHub, eio_model: HubModel, tmp_path: Path, function: str, when: float
) -> None:
    """The fault is switched on once ``when`` of the bytes were sent: the next checkpoint
    (fdatasync of the partial, fsync of the checkpoint file) or the promotion (fsync of the
    complete file) fails, whichever comes first."""
    assert FIU_RUN is not None
    prefix = tmp_path / "fiu"
    local_hub.faults.add(Throttle(bytes_per_second=600_000), server="cdn")
    service = ServiceProcess(root=tmp_path / "svc", hub=local_hub, models=[eio_model])
    with running_service(service):
        service.start(command_prefix=(FIU_RUN, "-x", "-f", str(prefix)))
        assert service.process is not None
        pid = service.process.pid
        assert service.manage("start", "eio", max_retries=3).status_code == 200
        wait_until_sent(local_hub, eio_model, fraction=when)
        enable_fault(prefix, pid, f"enable name=posix/io/sync/{function},failinfo=5")
        failed = service.wait_for_status("eio", ("FAILED", "COMPLETED"), within=15)
        enable_fault(prefix, pid, f"disable name=posix/io/sync/{function}")
        later = service.progress("eio")
        status = service.get("/api/v1/models/status/detailed/eio").json()
        service.kill()
        service.start()  # after a crash, the failed job is not resumed either
        after_restart = service.progress("eio")
        service.stop()

    assert failed["status"] == "FAILED", failed
    assert failed["error_code"] == "STORAGE_ERROR"
    assert "Input/output error" in failed["error_message"]
    assert later["status"] == "FAILED"
    assert status["is_available"] is False
    assert after_restart["status"] == "FAILED"
    assert snapshot_problems(service.models_root, eio_model) == []
    assert not (service.models_root / eio_model.folder / "refs" / "main").exists()
    assert [p for p in leftovers(service.models_root) if PARTIAL in p] == []


def wait_until_sent(hub: LocalHub, model: HubModel, *, fraction: float) -> None:
    deadline = time.monotonic() + 10
    total = sum(len(b) for b in model.lfs_files.values())
    while (sent := hub.requests.bytes_sent(server="cdn")) < fraction * total:
        assert time.monotonic() < deadline, f"only {sent} bytes sent"
        time.sleep(0.002)
