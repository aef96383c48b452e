"""kill -9 of the real service during downloads, then a restart on the same directories.

RELIABILITY.md 23, 24 and 31: after SIGKILL at any moment and a restart, the service
resumes every unfinished download by itself (no API call), every file ends with the
manifest's sha256, huggingface_hub reads the cache without warnings, no temp file is left,
and what is fetched again is bounded by what the checkpoints on disk said. A file is
visible in a snapshot only with the right bytes, before and after the restart.

Each trial is seeded; the seed and the moment of the kill are printed (``pytest -s``) so a
failing trial can be replayed exactly.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import scan_cache_dir

from modeldepot.testing import CutBody, LocalHub, Throttle
from tests.downloads.crash_support import (
    PARTIAL,
    Checkpointed,
    HubModel,
    ServiceProcess,
    cdn_gets,
    leftovers,
    merge,
    overlap,
    publish,
    read_checkpoints,
    requested_range,
    running_service,
    snapshot_problems,
)

CONNECTIONS = 4
SEGMENT = 250_000  # MODELDEPOT_MIN_SEGMENT_MB=0.25
SIZES = {"weights/a.safetensors": 2_000_000, "weights/b.safetensors": 900_000}
RATE = 700_000  # bytes/s per connection: the download lasts about 0.8 s
MODEL = "crashy"

KillMoment = Callable[[ServiceProcess, HubModel, random.Random], str]


@pytest.fixture
def model(local_hub: LocalHub) -> HubModel:
    return publish(local_hub, model_id=MODEL, repo_id="acme/crashy", sizes=SIZES, seed=3)


def make_service(tmp_path: Path, hub: LocalHub, model: HubModel) -> ServiceProcess:
    return ServiceProcess(
        root=tmp_path / "svc",
        hub=hub,
        models=[model],
        extra_env={"MODELDEPOT_DOWNLOADS__CONNECTIONS_PER_FILE": str(CONNECTIONS)},
    )


# --- when to kill ---------------------------------------------------------------------------


def wait_for_cdn_bytes(hub: LocalHub, *, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not any(r.server == "cdn" and r.bytes_sent for r in hub.requests):
        assert time.monotonic() < deadline, "the download never reached the CDN"
        time.sleep(0.002)


def at_random(service: ServiceProcess, model: HubModel, rng: random.Random) -> str:
    wait_for_cdn_bytes(service.hub)
    delay = rng.uniform(0, 0.7)
    time.sleep(delay)
    return f"{delay:.3f} s after the first CDN bytes"


def right_after_start(service: ServiceProcess, model: HubModel, rng: random.Random) -> str:
    return "right after start answered"


def all_bytes_served(hub: LocalHub, model: HubModel) -> bool:
    for path, data in model.lfs_files.items():
        covered = sorted(
            (first, first + r.bytes_sent)
            for r in cdn_gets(hub, model.sha256(path), since=0)
            for first, _ in [requested_range(r, len(data))]
        )
        frontier = 0
        for first, end in covered:
            if first > frontier:
                return False
            frontier = max(frontier, end)
        if frontier < len(data):
            return False
    return True


def after_last_byte(service: ServiceProcess, model: HubModel, rng: random.Random) -> str:
    """The hub has put every byte on the wire: verifying and promoting are under way."""
    deadline = time.monotonic() + 10
    while not all_bytes_served(service.hub, model):
        assert time.monotonic() < deadline, "the hub never sent every byte"
        time.sleep(0.001)
    return "when the hub had sent the last byte"


def describe(models_dir: Path, model: HubModel) -> str:
    repo = models_dir / model.folder
    promoted = sum((repo / "blobs" / model.sha256(p)).exists() for p in model.lfs_files)
    ref = (repo / "refs" / "main").exists()
    return f"{promoted}/{len(model.lfs_files)} LFS blobs promoted, refs/main {ref}"


# --- one trial ------------------------------------------------------------------------------


def crash_and_resume(
    tmp_path: Path, hub: LocalHub, model: HubModel, *, seed: int, moment: KillMoment
) -> None:
    rng = random.Random(seed)
    hub.faults.add(Throttle(bytes_per_second=RATE), server="cdn")
    service = make_service(tmp_path, hub, model)
    with running_service(service):
        service.start()
        started = service.manage("start", MODEL)
        assert started.status_code == 200, started.text
        when = moment(service, model, rng)
        service.kill()
        models_dir = service.models_root
        print(f"seed={seed}: killed {when}; on disk then: {describe(models_dir, model)}")
        assert snapshot_problems(models_dir, model) == []  # visible => verified, even now
        checkpoints = read_checkpoints(models_dir, model)
        print({path: c.done for path, c in checkpoints.items()})

        hub.faults.clear()
        restarted_at = len(hub.requests)  # the killed process sends nothing more
        service.start()
        # No API call: the restarted service resumes the download by itself.
        final = service.wait_for_status(MODEL, ("COMPLETED", "FAILED", "CANCELLED"))
        status = service.get(f"/api/v1/models/status/detailed/{MODEL}").json()
        service.stop()

    assert final["status"] == "COMPLETED", final
    assert status["availability_status"] == "AVAILABLE", status
    assert_complete_and_clean(models_dir, model)
    assert_bounded_refetch(hub, model, checkpoints, since=restarted_at)


def assert_complete_and_clean(models_dir: Path, model: HubModel) -> None:
    snapshot = models_dir / model.folder / "snapshots" / model.commit
    for path, data in model.files.items():
        assert (snapshot / path).read_bytes() == data, path
    assert snapshot_problems(models_dir, model) == []
    assert (models_dir / model.folder / "refs" / "main").read_text() == model.commit
    assert leftovers(models_dir) == []
    cache = scan_cache_dir(models_dir)
    assert cache.warnings == []
    assert [r.repo_id for r in cache.repos] == [model.repo_id]


def assert_bounded_refetch(
    hub: LocalHub, model: HubModel, checkpoints: dict[str, Checkpointed], *, since: int
) -> None:
    """After the restart no request starts inside a range the checkpoints counted as
    written; the bytes asked for are at most the missing ones plus one segment per
    connection; and of the bytes that were already right on disk at the kill, at most one
    segment per connection is fetched again (issue 3, "Resume")."""
    for path, data in model.lfs_files.items():
        state = checkpoints[path]
        asked = []
        for request in cdn_gets(hub, model.sha256(path), since=since):
            first, end = requested_range(request, len(data))
            assert not any(a <= first < b for a, b in state.done_ranges), (
                path,
                request.range,
                state.done_ranges,
            )
            asked.append((first, end))
        # A connection that steals half of a segment asks for bytes another request
        # covers too; the union is what the client wanted from the server.
        union = merge(asked)
        requested = sum(b - a for a, b in union)
        assert requested <= state.remaining + CONNECTIONS * SEGMENT, (path, requested, state)
        again = overlap(union, state.correct_on_disk)
        print(f"{path}: {requested} bytes requested after the restart, {again} of them again")
        assert again <= CONNECTIONS * SEGMENT, (path, again, state)


# --- the trials -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [101, 202, 303, 404])
def test_kill_at_a_random_moment_then_restart_resumes_by_itself(
    local_hub: LocalHub, model: HubModel, tmp_path: Path, seed: int
) -> None:
    crash_and_resume(tmp_path, local_hub, model, seed=seed, moment=at_random)


def test_kill_right_after_start_then_restart_resumes_by_itself(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    crash_and_resume(tmp_path, local_hub, model, seed=1, moment=right_after_start)


def test_kill_after_the_last_byte_then_restart_completes(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    crash_and_resume(tmp_path, local_hub, model, seed=2, moment=after_last_byte)


# --- crash states built on disk (RELIABILITY.md 24) ------------------------------------------


def killed_mid_download(tmp_path: Path, hub: LocalHub, model: HubModel) -> ServiceProcess:
    """A first run killed while every LFS file has a partial and a checkpoint: the job row
    says DOWNLOADING. The caller then shapes the files as a later crash would leave them."""
    throttle = hub.faults.add(Throttle(bytes_per_second=100_000), server="cdn")
    service = make_service(tmp_path, hub, model)
    blobs = service.models_root / model.folder / "blobs"
    checkpoints = [blobs / f"{model.sha256(p)}{PARTIAL}.json" for p in model.lfs_files]
    try:
        service.start()
        assert service.manage("start", MODEL).status_code == 200
        deadline = time.monotonic() + 10
        while not all(c.exists() for c in checkpoints):
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.01)
        assert service.progress(MODEL)["status"] == "DOWNLOADING"
    finally:
        service.kill()
    hub.faults.remove(throttle)
    hub.requests.clear()
    return service


def restart_until_done(service: ServiceProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the service again and wait, without any API call, for the job to end."""
    with running_service(service):
        service.start()
        final = service.wait_for_status(MODEL, ("COMPLETED", "FAILED", "CANCELLED"))
        status = dict(service.get(f"/api/v1/models/status/detailed/{MODEL}").json())
        service.stop()
    return final, status


def restart_and_expect_no_cdn_bytes(service: ServiceProcess, model: HubModel) -> None:
    restarted_at = len(service.hub.requests)  # the killed process sends nothing more
    final, status = restart_until_done(service)
    assert final["status"] == "COMPLETED", final
    assert status["availability_status"] == "AVAILABLE"
    for path in model.lfs_files:
        assert cdn_gets(service.hub, model.sha256(path), since=restarted_at) == [], path
    assert_complete_and_clean(service.models_root, model)


def test_kill_between_fsync_and_rename_is_finished_without_refetching(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    service = killed_mid_download(tmp_path, local_hub, model)
    blobs = service.models_root / model.folder / "blobs"
    for path, data in model.lfs_files.items():
        # Every byte written and fsynced, the final checkpoint written; not yet renamed.
        partial = blobs / f"{model.sha256(path)}{PARTIAL}"
        partial.write_bytes(data)
        checkpoint = partial.with_name(partial.name + ".json")
        saved = json.loads(checkpoint.read_text())
        saved["plan"]["segments"] = [[a, b, b - a] for a, b, _ in saved["plan"]["segments"]]
        checkpoint.write_text(json.dumps(saved))

    restart_and_expect_no_cdn_bytes(service, model)


def test_kill_between_rename_and_database_update_is_reconciled(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    service = killed_mid_download(tmp_path, local_hub, model)
    repo = service.models_root / model.folder
    first, second = sorted(model.lfs_files)
    for path, data in model.lfs_files.items():
        sha = model.sha256(path)
        (repo / "blobs" / sha).write_bytes(data)  # renamed: verified bytes under their sha
        for leftover in (repo / "blobs").glob(f"{sha}{PARTIAL}*"):
            leftover.unlink()
    # The first file was also linked into the snapshot; the crash came before the second.
    link = repo / "snapshots" / model.commit / first
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(repo / "blobs" / model.sha256(first), link.parent))
    assert not (repo / "snapshots" / model.commit / second).exists()

    restart_and_expect_no_cdn_bytes(service, model)


def test_kill_during_a_checkpoint_write_leaves_no_temp_file_after_resume(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    service = killed_mid_download(tmp_path, local_hub, model)
    blobs = service.models_root / model.folder / "blobs"
    path = sorted(model.lfs_files)[0]
    checkpoint = blobs / f"{model.sha256(path)}{PARTIAL}.json"
    # What atomic_write_bytes has on disk when killed before its os.replace.
    half = checkpoint.with_name(f".{checkpoint.name}.{99999}.tmp")
    half.write_bytes(checkpoint.read_bytes()[:20])

    final, _ = restart_until_done(service)

    assert final["status"] == "COMPLETED", final
    assert_complete_and_clean(service.models_root, model)


def test_kill_between_rename_and_checkpoint_removal_leaves_no_checkpoint(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    service = killed_mid_download(tmp_path, local_hub, model)
    blobs = service.models_root / model.folder / "blobs"
    path = sorted(model.lfs_files)[0]
    partial = blobs / f"{model.sha256(path)}{PARTIAL}"
    partial.unlink()
    (blobs / model.sha256(path)).write_bytes(model.files[path])  # renamed; checkpoint stays

    final, _ = restart_until_done(service)

    assert final["status"] == "COMPLETED", final
    assert_complete_and_clean(service.models_root, model)


def test_kill_during_the_ref_write_leaves_no_temp_ref(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    service = killed_mid_download(tmp_path, local_hub, model)
    repo = service.models_root / model.folder
    for path, data in model.files.items():
        sha = model.sha256(path)
        (repo / "blobs" / sha).write_bytes(data)
        for leftover in (repo / "blobs").glob(f"{sha}{PARTIAL}*"):
            leftover.unlink()
    # Every file verified; killed while writing refs/main (before its rename).
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ".main.99999.tmp").write_text(model.commit[:12])

    final, _ = restart_until_done(service)

    assert final["status"] == "COMPLETED", final
    assert_complete_and_clean(service.models_root, model)


# --- orphans after a crash (RELIABILITY.md 31) ------------------------------------------------


def test_partials_without_an_unfinished_job_are_collected_at_start_up(
    local_hub: LocalHub, model: HubModel, tmp_path: Path
) -> None:
    """A job that failed (its partials are kept for a retry), then a crash; a catalogue
    model never downloaded but with partials on disk; a repository we do not manage."""
    ghost = publish(local_hub, model_id="ghost", repo_id="acme/ghost", sizes=SIZES, seed=4)
    service = make_service(tmp_path, local_hub, model)
    service.models.append(ghost)
    first, second = sorted(model.lfs_files)
    local_hub.faults.add(Throttle(bytes_per_second=100_000), server="cdn")
    # The second file's connections break after 50 kB (~0.5 s): with max_retries=0 the job
    # fails once the first file has partial bytes and checkpoints on disk.
    local_hub.faults.add(CutBody(after_bytes=50_000), server="cdn", method="GET", filename=second)
    models_dir = service.models_root
    kept = models_dir / model.folder / "blobs" / f"{model.sha256(first)}{PARTIAL}"
    with running_service(service):
        service.start()
        assert service.manage("start", MODEL, max_retries=0).status_code == 200
        failed = service.wait_for_status(MODEL, ("FAILED", "COMPLETED"))
        assert failed["status"] == "FAILED", failed
        assert kept.exists()  # a failed job keeps what it fetched...
        assert kept.with_name(kept.name + ".json").exists()
        service.kill()  # ...and then the process dies
    ghost_blobs = models_dir / ghost.folder / "blobs"
    ghost_blobs.mkdir(parents=True)
    for path, data in ghost.lfs_files.items():
        partial = ghost_blobs / f"{ghost.sha256(path)}{PARTIAL}"
        partial.write_bytes(data[: len(data) // 2])
        partial.with_name(partial.name + ".json").write_text('{"etag": null}')
    foreign = models_dir / "models--someone--else" / "blobs" / f"{'e' * 64}{PARTIAL}"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"not ours")

    with running_service(service):
        service.start()
        storage = service.get("/api/v1/models/storage").json()
        statuses = [
            service.get(f"/api/v1/models/status/detailed/{m}").json() for m in (MODEL, "ghost")
        ]
        progress = service.progress(MODEL)
        service.stop()

    assert leftovers(models_dir) == [f"models--someone--else/blobs/{foreign.name}"]
    assert foreign.read_bytes() == b"not ours"  # outside the catalogue: never written
    # Only verified blobs count: "crashy" holds its config.json (29 bytes), "ghost" nothing.
    listed = {m["model_id"]: m["size_gb"] * 1e9 for m in storage["models_storage"]}
    assert "ghost" not in listed
    assert listed.get(MODEL, 0) <= len(model.files["config.json"])
    assert [s["is_available"] for s in statuses] == [False, False]
    assert progress["status"] == "FAILED"
