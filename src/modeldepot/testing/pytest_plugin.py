"""pytest fixtures for the local hub (registered as the ``pytest11`` entry point).

- `local_hub`: a fresh `LocalHub` per test, content under the test's tmp_path.
- `shared_local_hub`: one hub for the whole session (cheaper); its faults, hook and
  request log are reset before each test that uses it, but repos persist, so create repos
  with unique ids (the `hub_repo` factory does).
- `hub_repo`: factory creating a repo with a unique id on `local_hub`:
  ``repo_id, sha = hub_repo(files, private=True)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from modeldepot.testing.repos import FileSource
from modeldepot.testing.server import LocalHub

HubRepoFactory = Callable[..., tuple[str, str]]
_counter = itertools.count()


@pytest.fixture
def local_hub(tmp_path: Path) -> Iterator[LocalHub]:
    """A running local hub, stopped after the test."""
    with LocalHub(tmp_path / "localhub") as hub:
        yield hub


@pytest.fixture(scope="session")
def _session_local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    with LocalHub(tmp_path_factory.mktemp("localhub")) as hub:
        yield hub


@pytest.fixture
def shared_local_hub(_session_local_hub: LocalHub) -> LocalHub:
    """The session's local hub, with faults, hook and request log reset."""
    _session_local_hub.reset()
    return _session_local_hub


@pytest.fixture
def hub_repo(local_hub: LocalHub) -> HubRepoFactory:
    """Create a repo with a unique id on `local_hub`; returns (repo_id, commit_sha)."""

    def create(
        files: Mapping[str, FileSource], *, name: str = "repo", **options: Any
    ) -> tuple[str, str]:
        repo_id = f"localhub-test/{name}-{next(_counter)}"
        return repo_id, local_hub.create_repo(repo_id, files, **options)

    return create
