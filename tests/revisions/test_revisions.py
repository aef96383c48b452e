"""Revisions over real HTTP and real files: update beside the installed commit, switch only
when verified, keep the previous one, roll back, sweep after the grace period.

huggingface_hub itself (``local_files_only=True``) is the judge of which revision is in use.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from modeldepot.testing import LocalHub, make_safetensors
from modeldepot.testing.faults import Throttle
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app
from tests.support import progress_until as wait_for

REPO = "acme/tiny"
SHARED = "weights/shared.safetensors"
CHANGING = "weights/changing.safetensors"
V1 = {
    "config.json": b'{"model_type": "tiny", "version": 1}\n',
    SHARED: make_safetensors({"w": ("F32", [128, 1024])}, seed=1),
    CHANGING: make_safetensors({"w": ("F32", [96, 1024])}, seed=2),
}
V2_CHANGES = {
    "config.json": b'{"model_type": "tiny", "version": 2}\n',
    CHANGING: make_safetensors({"w": ("F32", [96, 1024])}, seed=3),
}
ENTRY = hub_entry("tiny", REPO)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_reads(models_dir: Path, filename: str) -> tuple[str, bytes]:
    """What huggingface_hub, offline, sees: the snapshot commit and one file's bytes."""
    folder = Path(snapshot_download(REPO, cache_dir=models_dir, local_files_only=True))
    path = hf_hub_download(REPO, filename, cache_dir=models_dir, local_files_only=True)
    return folder.name, Path(path).read_bytes()


async def settle(app: RunningApp) -> None:
    await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
    await asyncio.wait_for(app.services.health.run_until_idle(), 30)


async def install(app: RunningApp) -> None:
    answer = await app.client.post(
        "/api/v1/models/download/manage", json={"model_id": "tiny", "action": "start"}
    )
    assert answer.status_code == 200, answer.text
    await settle(app)


async def post(app: RunningApp, action: str, body: dict[str, Any] | None = None) -> Any:
    return await app.client.post(f"/api/v1/models/revisions/tiny/{action}", json=body or {})


async def revisions(app: RunningApp, **params: Any) -> dict[str, Any]:
    answer = await app.client.get("/api/v1/models/revisions/tiny", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def by_commit(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["commit"]: r for r in listing["revisions"]}


async def test_update_fetches_only_changed_files_and_switches_only_when_verified(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    models = settings.models_dir
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        v2 = local_hub.commit(REPO, add=V2_CHANGES)
        listing = await revisions(app, refresh="true")
        assert (listing["current_version"], listing["latest_version"]) == (v1, v2)
        assert listing["update_available"] is True
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        assert status["availability_status"] == "UPDATE_AVAILABLE"

        # The new shard arrives slowly: meanwhile every reader still gets v1.
        local_hub.faults.add(
            Throttle(bytes_per_second=600_000),
            server="cdn",
            path=f"/blobs/{sha256(V2_CHANGES[CHANGING])}",
        )
        local_hub.requests.clear()
        answer = await post(app, "update", {"priority": "high"})
        body = answer.json()
        assert answer.status_code == 200, body
        assert (body["from_version"], body["to_version"]) == (v1, v2)
        assert body["download_id"].startswith("dl_")
        progress = await wait_for(
            app, lambda p: any(f["path"] == CHANGING and f["downloaded"] for f in p["files"])
        )
        assert progress["status"] == "DOWNLOADING"
        assert hf_reads(models, CHANGING) == (v1, V1[CHANGING])
        assert (await revisions(app))["updating"] == body["download_id"]
        await settle(app)

        fetched = {r.path for r in local_hub.requests if r.server == "cdn" and r.method == "GET"}
        listing = await revisions(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()

    # Only the changed LFS file went over the wire (config.json is a small git file).
    assert fetched == {f"/blobs/{sha256(V2_CHANGES[CHANGING])}"}
    assert hf_reads(models, CHANGING) == (v2, V2_CHANGES[CHANGING])
    assert hf_reads(models, "config.json") == (v2, V2_CHANGES["config.json"])
    assert (models / "models--acme--tiny" / "snapshots" / v1 / CHANGING).read_bytes() == V1[
        CHANGING
    ]
    kept = by_commit(listing)
    assert kept[v2]["state"] == "current"
    assert kept[v2]["complete"] is True
    assert kept[v1]["state"] == "previous"
    assert kept[v1]["complete"] is True
    assert kept[v1]["keep_until"] is not None
    assert listing["update_available"] is False
    assert listing["updating"] is None
    assert (status["current_version"], status["availability_status"]) == (v2, "AVAILABLE")


async def test_rollback_switches_back_and_huggingface_hub_reads_the_old_revision(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    models = settings.models_dir
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        v2 = local_hub.commit(REPO, add=V2_CHANGES)
        assert (await post(app, "update")).status_code == 200
        await settle(app)
        local_hub.requests.clear()

        answer = await post(app, "rollback")
        await settle(app)
        after_rollback = hf_reads(models, CHANGING)
        listing = await revisions(app)
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()
        health = (await app.client.get("/api/v1/models/health/tiny")).json()["models"]["tiny"]

        # Forward again: the v2 snapshot is still there, so nothing is fetched.
        again = await post(app, "update")
        await settle(app)
        forward = hf_reads(models, CHANGING)

    body = answer.json()
    assert answer.status_code == 200, body
    assert (body["from_version"], body["to_version"]) == (v2, v1)
    assert body["previous_kept_until"] is not None
    assert after_rollback == (v1, V1[CHANGING])
    assert [r for r in local_hub.requests if r.server == "cdn"] == []
    kept = by_commit(listing)
    assert (kept[v1]["state"], kept[v2]["state"]) == ("current", "previous")
    assert (status["current_version"], status["latest_version"]) == (v1, v2)
    assert status["update_available"] is True
    assert health["overall_health"] == "healthy"  # the rollback queued a check of v1
    assert again.status_code == 200
    assert again.json()["to_version"] == v2
    assert forward == (v2, V2_CHANGES[CHANGING])


async def test_sweep_removes_the_previous_revision_after_the_grace_only(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    repo_dir = settings.models_dir / "models--acme--tiny"
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        v2 = local_hub.commit(REPO, add=V2_CHANGES)
        await post(app, "update")
        await settle(app)
        within_grace = await app.services.revisions.sweep()

        answer = await app.client.put(
            "/api/v1/config/update", json={"storage": {"revision_grace_hours": 0}}
        )
        assert answer.status_code == 200, answer.text
        swept = await app.services.revisions.sweep()
        listing = await revisions(app)
        refused = await post(app, "rollback")
        status = (await app.client.get("/api/v1/models/status/detailed/tiny")).json()

    assert within_grace == []
    assert swept == [v1]
    assert not (repo_dir / "snapshots" / v1).exists()
    blobs = {p.name for p in (repo_dir / "blobs").iterdir()}
    assert sha256(V1[CHANGING]) not in blobs  # only v1 used it
    assert sha256(V1[SHARED]) in blobs  # v2 links it too
    assert hf_reads(settings.models_dir, SHARED) == (v2, V1[SHARED])
    removed = by_commit(listing)[v1]
    assert removed["state"] == "removed"
    assert removed["on_disk"] is False
    assert removed["freed_bytes"] >= len(V1[CHANGING])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "REVISION_UNAVAILABLE"
    assert status["availability_status"] == "AVAILABLE"


async def test_sweep_spares_a_revision_another_ref_names(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint, storage={"revision_grace_hours": 0})
    repo_dir = settings.models_dir / "models--acme--tiny"
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        (repo_dir / "refs" / "v1.0").write_text(v1)  # e.g. a user's hf_hub_download(revision=)
        local_hub.commit(REPO, add=V2_CHANGES)
        await post(app, "update")
        await settle(app)
        swept = await app.services.revisions.sweep()

    assert swept == []
    assert (repo_dir / "snapshots" / v1 / CHANGING).read_bytes() == V1[CHANGING]


async def test_rollback_refuses_an_incomplete_revision_and_keeps_the_current_one(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    repo_dir = settings.models_dir / "models--acme--tiny"
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        v2 = local_hub.commit(REPO, add=V2_CHANGES)
        await post(app, "update")
        await settle(app)
        (repo_dir / "snapshots" / v1 / CHANGING).unlink()
        answer = await post(app, "rollback", {"commit": v1})

    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "REVISION_UNAVAILABLE"
    assert error["details"]["missing_files"] == [CHANGING]
    assert (repo_dir / "refs" / "main").read_text() == v2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"commit": "main"}, 422, "VALIDATION_ERROR"),
        ({"commit": "../" * 13 + "a"}, 422, "VALIDATION_ERROR"),
        ({"commit": "a" * 40}, 409, "REVISION_UNAVAILABLE"),
        ({"unknown": 1}, 422, "VALIDATION_ERROR"),
        (None, 409, "REVISION_UNAVAILABLE"),
    ],
)
async def test_bad_rollback_requests_get_clear_errors_and_change_nothing(
    local_hub: LocalHub,
    make_settings: SettingsFactory,
    body: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        answer = await post(app, "rollback", body)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert hf_reads(settings.models_dir, CHANGING) == (v1, V1[CHANGING])


async def test_update_of_a_model_not_installed_or_already_newest(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(ENTRY,)) as app:
        not_installed = await post(app, "update")
        unknown = await app.client.post("/api/v1/models/revisions/nope/update", json={})
        await install(app)
        local_hub.requests.clear()
        newest = await post(app, "update")

    assert not_installed.status_code == 409
    assert not_installed.json()["error"]["code"] == "MODEL_NOT_INSTALLED"
    assert unknown.status_code == 404
    assert newest.status_code == 200
    assert newest.json() | {"message": ""} == {
        "success": True,
        "message": "",
        "model_id": "tiny",
        "from_version": v1,
        "to_version": v1,
        "download_id": None,
        "new_status": "COMPLETED",
        "estimated_completion": None,
    }
    assert [r for r in local_hub.requests if r.server == "cdn"] == []


async def test_rollback_waits_for_no_download(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
        local_hub.commit(REPO, add=V2_CHANGES)
        local_hub.faults.add(Throttle(bytes_per_second=300_000), server="cdn")
        await post(app, "update")
        answer = await post(app, "rollback")
        await app.client.post(
            "/api/v1/models/download/manage", json={"model_id": "tiny", "action": "cancel"}
        )

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "CONFLICT"


async def test_a_switch_made_by_another_tool_is_recorded_at_start_up(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    v1 = local_hub.create_repo(REPO, V1)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    async with run_app(settings, entries=(ENTRY,)) as app:
        await install(app)
    v2 = local_hub.commit(REPO, add=V2_CHANGES)
    # While modeldepot is down, huggingface_hub moves refs/main to v2.
    snapshot_download(REPO, cache_dir=settings.models_dir, endpoint=local_hub.endpoint)
    async with run_app(settings, entries=(ENTRY,)) as app:
        listing = await revisions(app)
        answer = await post(app, "rollback")

    kept = by_commit(listing)
    assert (kept[v2]["state"], kept[v1]["state"]) == ("current", "previous")
    assert answer.status_code == 200, answer.text
    assert hf_reads(settings.models_dir, CHANGING) == (v1, V1[CHANGING])


async def test_stopping_the_service_finishes_a_sweep_under_way(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    async with run_app(settings, entries=(ENTRY,), resolve=False) as app:
        revisions_service = app.services.revisions
        started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def slow_sweep() -> list[str]:
            started.set()
            await release.wait()  # stands for a database call in flight
            finished.set()
            return []

        monkeypatch.setattr(revisions_service, "sweep", slow_sweep)
        loop = asyncio.create_task(revisions_service.run_sweep_loop())
        await started.wait()
        loop.cancel()
        # Released only after the stop: a sweep cut off by it would never get here.
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await loop

    assert finished.is_set()


async def test_switches_recorded_at_the_same_moment_do_not_collide(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    commit = "c" * 40
    async with run_app(make_settings(**database), entries=(ENTRY,), resolve=False) as app:
        service = app.services.revisions
        # e.g. a resumed download finishing while start-up reconciles the same ref
        await asyncio.gather(*(service.record_switch("tiny", None, commit) for _ in range(3)))
        listing = await revisions(app)
    assert [(r["commit"], r["state"]) for r in listing["revisions"]] == [(commit, "current")]
