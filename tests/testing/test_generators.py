"""Generated files are valid, and repo/commit ids are the ids git computes."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import httpx
import pytest

from modeldepot.testing import (
    LocalHub,
    create_demo_repos,
    demo_repo_files,
    git_blob_sha1,
    lfs_pointer,
    make_safetensors,
    write_random_file,
)


def _parse_safetensors(data: bytes) -> tuple[int, dict[str, object]]:
    (length,) = struct.unpack("<Q", data[:8])
    return length, json.loads(data[8 : 8 + length])


def test_make_safetensors_writes_the_real_format() -> None:
    data = make_safetensors(
        {"a": ("F32", (2, 3)), "b": ("BF16", (5,)), "c": ("U8", (7,))},
        seed=1,
        metadata={"format": "pt"},
    )

    length, header = _parse_safetensors(data)
    assert length % 8 == 0
    assert data[8:9] == b"{"
    assert header["__metadata__"] == {"format": "pt"}
    assert header["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["b"] == {"dtype": "BF16", "shape": [5], "data_offsets": [24, 34]}
    assert header["c"] == {"dtype": "U8", "shape": [7], "data_offsets": [34, 41]}
    assert len(data) == 8 + length + 41
    assert data == make_safetensors(
        {"a": ("F32", (2, 3)), "b": ("BF16", (5,)), "c": ("U8", (7,))},
        seed=1,
        metadata={"format": "pt"},
    )


def test_make_safetensors_rejects_unknown_dtypes() -> None:
    with pytest.raises(ValueError, match="bad tensor"):
        make_safetensors({"a": ("F13", (1,))})


def test_git_and_lfs_hashes_match_git() -> None:
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert len(lfs_pointer("0" * 64, 497764107)) == 134  # the hub's usual pointerSize


def test_write_random_file_is_seeded_and_sized(tmp_path: Path) -> None:
    a = write_random_file(tmp_path / "a.bin", 3 * 1024 * 1024 + 5, seed=3)
    b = write_random_file(tmp_path / "b.bin", 3 * 1024 * 1024 + 5, seed=3)

    assert a.stat().st_size == 3 * 1024 * 1024 + 5
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_tree_and_commit_ids_are_what_git_computes(local_hub: LocalHub, tmp_path: Path) -> None:
    files = {
        "README.md": b"hi\n",
        "a/b/c.txt": b"c",
        "a/x.json": b"{}",
        "a.txt": b"t",
        "w/model.safetensors": b"weights",
    }
    sha = local_hub.create_repo("acme/git", files)
    commit = local_hub.repo("acme/git").head
    work = tmp_path / "work"
    for path, entry in commit.files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.pointer if entry.lfs else files[path])
    stamp = int(commit.date.timestamp())
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "modeldepot-localhub",
        "GIT_AUTHOR_EMAIL": "localhub@example.invalid",
        "GIT_AUTHOR_DATE": f"@{stamp} +0000",
        "GIT_COMMITTER_NAME": "modeldepot-localhub",
        "GIT_COMMITTER_EMAIL": "localhub@example.invalid",
        "GIT_COMMITTER_DATE": f"@{stamp} +0000",
    }

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
        return out.stdout.decode().strip()

    git("init", "-q")
    git("add", "-A")
    tree = git("write-tree")

    assert tree == commit.tree_ids[""]
    assert git("rev-parse", f"{tree}:a") == commit.tree_ids["a"]
    assert git("commit-tree", tree, "-m", "Initial commit") == sha


def test_paths_given_as_files_are_streamed_in(local_hub: LocalHub, tmp_path: Path) -> None:
    big = write_random_file(tmp_path / "big.safetensors", 2 * 1024 * 1024 + 1, seed=9)
    local_hub.create_repo("acme/path", {"big.safetensors": big})

    r = httpx.get(
        f"{local_hub.endpoint}/acme/path/resolve/main/big.safetensors", follow_redirects=True
    )

    assert r.content == big.read_bytes()


def test_unsafe_paths_are_refused_unless_asked_for(local_hub: LocalHub) -> None:
    with pytest.raises(ValueError, match="invalid path"):
        local_hub.create_repo("acme/evil", {"../escape.txt": b"x"})
    local_hub.create_repo("acme/evil", {"../escape.txt": b"x", "/abs.txt": b"y"}, unsafe_paths=True)

    info = httpx.get(f"{local_hub.endpoint}/api/models/acme/evil").json()

    assert {s["rfilename"] for s in info["siblings"]} == {"../escape.txt", "/abs.txt"}


def test_demo_repo_files_look_like_a_sharded_diffusers_repo() -> None:
    files = demo_repo_files("t2v")

    index = json.loads(files["transformer/diffusion_pytorch_model.safetensors.index.json"])
    shards = set(index["weight_map"].values())
    assert shards == {
        f"transformer/diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)
    }
    for shard in shards:
        _, header = _parse_safetensors(files[shard])
        assert {n for n, s in index["weight_map"].items() if s == shard} <= set(header)
    assert {
        "config.json",
        "model_index.json",
        "README.md",
        "text_encoder/model.safetensors",
        "vae/diffusion_pytorch_model.pth",
    } <= set(files)
    assert 100_000 < sum(len(v) for v in files.values()) < 1_000_000


def test_create_demo_repos(local_hub: LocalHub) -> None:
    ids = create_demo_repos(local_hub)

    assert ids == [
        "modeldepot-demo/tiny-t2v",
        "modeldepot-demo/tiny-ti2v",
        "modeldepot-demo/tiny-i2v",
    ]
    info = httpx.get(f"{local_hub.endpoint}/api/models/{ids[2]}").json()
    assert info["pipeline_tag"] == "image-to-video"
