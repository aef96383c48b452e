"""Starting and stopping the local hub: threads, sync and async callers, fixtures."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import httpx
import pytest
from huggingface_hub import hf_hub_download

from modeldepot.testing import LocalHub, Stall
from modeldepot.testing.pytest_plugin import HubRepoFactory
from tests.support import until_blocking


def test_stop_ends_stalled_responses_and_leaks_no_threads() -> None:
    before = set(threading.enumerate())
    errors: list[BaseException] = []
    hub = LocalHub().start()
    root = hub.root
    hub.create_repo("acme/stall", {"model.safetensors": b"x" * 5000})
    # Far longer than the per-test timeout: if stop waited for it, the test would fail.
    hub.faults.add(Stall(after_bytes=100, seconds=600), server="cdn")

    def download() -> None:
        try:
            httpx.get(
                f"{hub.endpoint}/acme/stall/resolve/main/model.safetensors",
                follow_redirects=True,
                timeout=30,
            )
        except httpx.HTTPError as exc:
            errors.append(exc)

    client = threading.Thread(target=download)
    client.start()
    # Stalled: the first bytes went out and the rest is held back.
    until_blocking(
        lambda: any(r.bytes_sent for r in hub.requests.filter(server="cdn")),
        what="the stalled response starting",
    )
    hub.stop()  # returns without waiting out the stall
    client.join(30)

    assert not client.is_alive()
    assert len(errors) == 1  # the client saw the connection end early
    assert set(threading.enumerate()) == before
    assert not root.exists()


def test_given_root_is_kept_and_reusable_layout(tmp_path: Path) -> None:
    with LocalHub(tmp_path) as hub:
        hub.create_repo("acme/keep", {"model.safetensors": b"weights"})
        blob = hub.blob_path(hub.repo("acme/keep").head.files["model.safetensors"].sha256)

    assert blob.parent == tmp_path / "blobs"
    assert blob.read_bytes() == b"weights"


async def test_usable_from_async_code_even_while_the_loop_is_blocked(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    local_hub.create_repo("acme/async", {"config.json": b"{}"})

    async with httpx.AsyncClient() as client:
        r = await client.get(f"{local_hub.endpoint}/acme/async/resolve/main/config.json")
    # A synchronous huggingface_hub call blocks this test's loop; the hub has its own.
    path = hf_hub_download(
        "acme/async", "config.json", cache_dir=tmp_path, endpoint=local_hub.endpoint, token=False
    )

    assert r.content == b"{}"
    assert await anyio.Path(path).read_bytes() == b"{}"


def test_hub_repo_factory_makes_unique_repos(hub_repo: HubRepoFactory, local_hub: LocalHub) -> None:
    first, sha1 = hub_repo({"a.txt": b"a"})
    second, sha2 = hub_repo({"a.txt": b"a"}, private=True)

    assert first != second
    assert local_hub.repo(second).private
    assert len(sha1) == len(sha2) == 40


def test_shared_hub_first_use_arms_a_fault(shared_local_hub: LocalHub) -> None:
    shared_local_hub.faults.add(Stall(seconds=1))
    assert len(shared_local_hub.faults.rules) == 1


def test_shared_hub_is_reset_between_tests(shared_local_hub: LocalHub) -> None:
    assert shared_local_hub.faults.rules == []
    assert len(shared_local_hub.requests) == 0


def test_start_twice_is_an_error(local_hub: LocalHub) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        local_hub.start()
