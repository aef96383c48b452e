"""Fixtures for download tests: a hub repo with one multi-segment file, fast settings."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, write_random_file
from tests.support import RunningApp, SettingsFactory, hub_entry, run_app

BIG = "weights/model.safetensors"
BIG_SIZE = 3 * 1024 * 1024 + 4321
SMALL = {"config.json": b'{"model_type": "tiny"}\n', "README.md": b"# tiny\n" * 20}


@dataclass
class Repo:
    repo_id: str
    commit: str
    files: dict[str, bytes]

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()


@pytest.fixture
def repo(local_hub: LocalHub, tmp_path: Path) -> Repo:
    big = write_random_file(tmp_path / "big.bin", BIG_SIZE, seed=11).read_bytes()
    files = {**SMALL, BIG: big}
    commit = local_hub.create_repo("acme/tiny-video", files)
    return Repo("acme/tiny-video", commit, files)


@pytest.fixture
def fast_settings(make_settings: SettingsFactory, local_hub: LocalHub) -> Callable[..., Settings]:
    """Small segments, short stall timeout and retry delays: faults resolve in ms."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "hf_endpoint": local_hub.endpoint,
            "min_segment_mb": 0.25,
            "stall_timeout_seconds": 3,  # generous: a loaded CI machine is not a stall
            "retry_base_delay_seconds": 0.01,
            "retry_max_delay_seconds": 0.05,
            "checkpoint_interval_seconds": 0.05,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@asynccontextmanager
async def app_for(
    settings: Settings, *model_ids_and_repos: tuple[str, str]
) -> AsyncIterator[RunningApp]:
    entries = tuple(
        hub_entry(m, r) for m, r in model_ids_and_repos or [("tiny", "acme/tiny-video")]
    )
    async with run_app(settings, entries=entries) as app:
        yield app


async def start(app: RunningApp, model_id: str = "tiny", **fields: Any) -> dict[str, Any]:
    response = await app.client.post(
        "/api/v1/models/download/manage", json={"model_id": model_id, "action": "start", **fields}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def finish(app: RunningApp, model_id: str = "tiny", *, within: float = 30) -> dict[str, Any]:
    await asyncio.wait_for(app.services.downloads.run_until_idle(), within)
    response = await app.client.get(f"/api/v1/models/download/progress/{model_id}")
    return dict(response.json())


def stored_file(settings: Settings, repo: Repo, path: str) -> Path:
    return settings.models_dir / "models--acme--tiny-video" / "snapshots" / repo.commit / path
