"""AvailabilityService over a real hub cache: AVAILABLE only once the ref names the commit.

A download that failed after linking every file, before switching ``refs/main``, leaves a
complete snapshot that huggingface_hub cannot load: it must show PARTIAL, not AVAILABLE.
"""

from __future__ import annotations

from typing import Any

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError

from modeldepot.events import ModelAvailabilityChange
from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry, run_app

REPO = "acme/tiny-video"
MODEL = "tiny-video"
STATUS = f"/api/v1/models/status/detailed/{MODEL}"


async def test_a_complete_snapshot_without_its_ref_is_partial_until_the_ref_returns(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    commit = local_hub.create_repo(REPO, demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    fill_cache_with_huggingface_hub(local_hub, REPO, settings.models_dir)
    ref = settings.models_dir / "models--acme--tiny-video" / "refs" / "main"

    async with run_app(settings, entries=(hub_entry(MODEL, REPO),)) as app:
        before = (await app.client.get(STATUS)).json()
        subscription = app.services.bus.subscribe()
        ref.unlink()
        with pytest.raises(LocalEntryNotFoundError):  # why it must not say AVAILABLE
            hf_hub_download(
                REPO, "model_index.json", cache_dir=settings.models_dir, local_files_only=True
            )
        without_ref = (await app.client.get(STATUS)).json()
        summary = (await app.client.get("/api/v1/models/status/detailed")).json()["summary"]
        ref.write_text(commit)
        restored = (await app.client.get(STATUS)).json()
        changes = []
        while subscription.pending:
            event = await subscription.get()
            if isinstance(event, ModelAvailabilityChange):
                changes.append((event.old_status, event.new_status))

    assert (before["availability_status"], before["is_available"]) == ("AVAILABLE", True)
    assert without_ref["availability_status"] == "PARTIAL"
    assert without_ref["is_available"] is False
    assert without_ref["missing_files"] == []
    assert without_ref["current_version"] is None
    assert without_ref["latest_version"] == commit
    assert without_ref["update_available"] is False
    assert summary["available_models"] == 0
    assert (restored["availability_status"], restored["is_available"]) == ("AVAILABLE", True)
    assert restored["current_version"] == commit
    assert changes == [("AVAILABLE", "PARTIAL"), ("PARTIAL", "AVAILABLE")]
