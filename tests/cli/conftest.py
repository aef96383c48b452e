"""The ``cli`` fixture: the real service (under uvicorn) serving two hub models, ``tiny``
and ``other`` (both text-to-video), from the local hub, and the command line pointed at it
through the configured port (``MODELDEPOT_PORT``) with its own empty directories, so that
nothing can work in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldepot.testing import LocalHub, demo_repo_files
from tests.cli.api_support import MODEL, OTHER, OTHER_REPO, REPO, WIDE, Cli
from tests.cli.test_pull import cli_env
from tests.live_server import live_server
from tests.support import SettingsFactory, hub_entry


@pytest.fixture
def cli(local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path) -> Iterator[Cli]:
    local_hub.create_repo(REPO, demo_repo_files("t2v"))
    local_hub.create_repo(OTHER_REPO, demo_repo_files("t2v", seed=1))
    models_dir = tmp_path / "service-models"
    settings = make_settings(hf_endpoint=local_hub.endpoint, models_dir=models_dir)
    entries = (hub_entry(MODEL, REPO), hub_entry(OTHER, OTHER_REPO))
    with live_server(settings, entries=entries) as server:
        env = cli_env(tmp_path / "client", hub=local_hub, port=server.port) | WIDE
        yield Cli(server=server, hub=local_hub, env=env, models_dir=models_dir)
    assert not (tmp_path / "client" / "data").exists()  # nothing ran in-process
