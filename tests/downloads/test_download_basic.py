"""Downloading a model end to end through the API, against the local hub over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from huggingface_hub import hf_hub_download, scan_cache_dir

from modeldepot.testing import LocalHub, demo_repo_files, write_random_file
from tests.support import SettingsFactory, hub_entry, run_app


async def test_download_then_huggingface_hub_reads_it(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files: dict[str, bytes | Path] = dict(demo_repo_files("t2v"))
    big = write_random_file(tmp_path / "big.bin", 5 * 1024 * 1024 + 123, seed=3)
    files["transformer/big.safetensors"] = big
    commit = local_hub.create_repo("acme/tiny-video", files)
    settings = make_settings(hf_endpoint=local_hub.endpoint, min_segment_mb=0.5)
    async with run_app(settings, entries=(hub_entry("tiny-video", "acme/tiny-video"),)) as app:
        response = await app.client.post(
            "/api/v1/models/download/manage",
            json={"model_id": "tiny-video", "action": "start", "max_retries": 3},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        assert body["download_id"].startswith("dl_")
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
        progress = (await app.client.get("/api/v1/models/download/progress/tiny-video")).json()
        status = (await app.client.get("/api/v1/models/status/detailed/tiny-video")).json()

    assert progress["status"] == "COMPLETED", progress
    assert progress["progress_percent"] == 100
    assert status["availability_status"] == "AVAILABLE"
    assert status["current_version"] == commit
    for path, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        local = hf_hub_download(
            "acme/tiny-video", path, cache_dir=settings.models_dir, local_files_only=True
        )
        stored = Path(local).read_bytes()  # noqa: ASYNC240 - a test reading a small file
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    info = scan_cache_dir(settings.models_dir)
    assert info.warnings == []
    assert [r.repo_id for r in info.repos] == ["acme/tiny-video"]
    ranged = [r for r in local_hub.requests if r.server == "cdn" and r.range]
    assert len(ranged) > 1  # the big file came over several range requests
