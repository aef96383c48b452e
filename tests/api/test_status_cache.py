"""The status cache (issue 9): served from a serialised body, yet never stale on what a
user would notice. Real hub, real hub cache, real downloads.

* the listing is exactly the schema's serialisation of every model's status;
* a running download's progress is fresh in every read, however long the TTL;
* a change made behind our back is seen once a read finds the observations older than
  the TTL, through the watch loop (whose own interval here is an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from huggingface_hub import snapshot_download

from modeldepot.api.routes.status import DetailedStatusPage
from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.testing import LocalHub, demo_repo_files, write_random_file
from tests.support import (
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    hub_entry,
    progress_until,
    run_app,
)

LISTING = "/api/v1/models/status/detailed"
HOUR = 3600.0


def _publish(hub: LocalHub) -> tuple[CatalogEntry, ...]:
    entries: list[CatalogEntry] = []
    for name in ("installed", "partial", "missing"):
        hub.create_repo(f"acme/{name}", demo_repo_files("t2v", seed=len(entries)))
        entries.append(hub_entry(name, f"acme/{name}"))
    return tuple(entries)


async def test_the_listing_is_the_schema_serialisation_of_every_status(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    entries = _publish(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint, status_cache_ttl_seconds=HOUR)
    fill_cache_with_huggingface_hub(local_hub, "acme/installed", settings.models_dir)
    snapshot_download(
        "acme/partial",
        cache_dir=settings.models_dir,
        endpoint=local_hub.endpoint,
        allow_patterns=["*.json"],
    )
    async with run_app(settings, entries=entries) as app:
        first = await app.client.get(LISTING)
        again = await app.client.get(LISTING)
        singles = {
            model_id: (await app.client.get(f"{LISTING}/{model_id}")).json()
            for model_id in ("installed", "partial", "missing")
        }
        detailed = (await app.services.availability.detailed()).model_dump(mode="json")

    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == again.content
    body = first.json()
    pagination = {"page": 1, "limit": 20, "total": 6, "pages": 1}
    assert body == {**detailed, "pagination": {**pagination, "has_next": False, "has_prev": False}}
    assert DetailedStatusPage.model_validate_json(first.content).model_dump(mode="json") == body
    ours = {m: body["models"][m] for m in singles}
    statuses = {m: s["availability_status"] for m, s in ours.items()}
    assert statuses == {"installed": "AVAILABLE", "partial": "PARTIAL", "missing": "MISSING"}
    assert body["summary"]["total_models"] == 6  # and the three built-in ones
    assert body["summary"]["available_models"] == 1
    assert singles == ours


async def test_download_progress_is_fresh_in_every_read_however_long_the_ttl(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    big = write_random_file(tmp_path / "big.bin", 3 * 1024 * 1024, seed=5)
    local_hub.create_repo("acme/slow", {"model.safetensors": big, "config.json": b"{}"})
    settings = make_settings(
        hf_endpoint=local_hub.endpoint, status_cache_ttl_seconds=HOUR, min_segment_mb=0.25
    )
    async with run_app(settings, entries=(hub_entry("slow", "acme/slow"),)) as app:
        before = (await app.client.get(LISTING)).json()["models"]["slow"]
        started = await app.client.post(
            "/api/v1/models/download/manage",
            json={"model_id": "slow", "action": "start", "bandwidth_limit_mbps": 0.5},
        )
        assert started.status_code == 200, started.text
        await progress_until(app, lambda p: p["downloaded_mb"] > 0, "slow")
        first = (await app.client.get(LISTING)).json()["models"]["slow"]
        # Bytes keep arriving; no transition, no observation of the disk in between.
        await progress_until(
            app, lambda p: p["progress_percent"] > first["download_progress"], "slow"
        )
        second = (await app.client.get(LISTING)).json()["models"]["slow"]
        single = (await app.client.get(f"{LISTING}/slow")).json()
        await app.client.post(
            "/api/v1/models/download/manage", json={"model_id": "slow", "action": "cancel"}
        )

    assert before["availability_status"] == "MISSING"
    assert first["availability_status"] == "DOWNLOADING"
    assert second["availability_status"] == "DOWNLOADING"
    assert 0 < first["download_progress"] < second["download_progress"] < 100
    assert single["download_progress"] >= second["download_progress"]
    assert second["can_pause_download"] is True


@contextlib.asynccontextmanager
async def _watching(availability: AvailabilityService) -> AsyncIterator[None]:
    """The watch loop, as the service runs it, with an interval it never reaches here."""
    task = asyncio.create_task(availability.run_watch_loop(HOUR))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_change_behind_our_back_is_seen_once_the_ttl_has_passed(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    entries = _publish(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint, status_cache_ttl_seconds=0.2)
    snapshot = fill_cache_with_huggingface_hub(local_hub, "acme/installed", settings.models_dir)
    async with run_app(settings, entries=entries) as app, _watching(app.services.availability):
        before = (await app.client.get(LISTING)).json()["models"]["installed"]
        os.unlink(snapshot / "config.json")
        deadline = time.monotonic() + 10
        while True:
            after = (await app.client.get(LISTING)).json()["models"]["installed"]
            if after["availability_status"] != "AVAILABLE" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)

    assert before["availability_status"] == "AVAILABLE"
    assert after["availability_status"] == "PARTIAL"
    assert after["missing_files"] == ["config.json"]
