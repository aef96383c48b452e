"""The hub-cache layout: what we write, huggingface_hub reads; nothing escapes the root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.errors import UnsafePath
from modeldepot.files import atomic_write_bytes
from modeldepot.ids import make_digest
from modeldepot.store.layout import RepoLayout, contain, url_commit
from modeldepot.store.scan import list_repos, manifest_from_cache, observe_snapshot

COMMIT = "a" * 40


def publish(layout: RepoLayout, files: dict[str, bytes]) -> None:
    """Write blobs, links and the ref the way the download engine will."""
    layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        digest = make_digest("sha256", hashlib.sha256(data).hexdigest())
        blob = layout.blob_path(digest)
        tmp = blob.with_name(blob.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, blob)
        layout.link_snapshot_file(COMMIT, path, digest)
    layout.write_ref("main", COMMIT)


def test_huggingface_hub_reads_what_we_write(tmp_path: Path) -> None:
    layout = RepoLayout(tmp_path, "acme/tiny")
    files = {"config.json": b"{}", "unet/model.safetensors": b"x" * 100}
    publish(layout, files)

    info = scan_cache_dir(tmp_path)
    assert info.warnings == []
    (repo,) = info.repos
    assert repo.repo_id == "acme/tiny"
    (revision,) = repo.revisions
    assert revision.commit_hash == COMMIT
    assert revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors"}
    path = hf_hub_download(
        "acme/tiny", "unet/model.safetensors", cache_dir=tmp_path, local_files_only=True
    )
    assert Path(path).read_bytes() == b"x" * 100
    assert os.readlink(path) == "../../../blobs/" + hashlib.sha256(b"x" * 100).hexdigest()


def test_url_models_live_in_their_own_namespace_without_scan_warnings(tmp_path: Path) -> None:
    commit = url_commit("https://example.com/vae.safetensors", "ab" * 32)
    layout = RepoLayout(tmp_path, "modeldepot-url/my-vae")
    data = b"vae"
    digest = make_digest("sha256", hashlib.sha256(data).hexdigest())
    layout.blobs_dir.mkdir(parents=True)
    layout.blob_path(digest).write_bytes(data)
    layout.link_snapshot_file(commit, "vae.safetensors", digest)
    layout.write_ref("main", commit)
    info = scan_cache_dir(tmp_path)
    assert info.warnings == []
    assert [r.repo_id for r in info.repos] == ["modeldepot-url/my-vae"]


def test_cache_manifest_is_derived_from_blob_names(tmp_path: Path) -> None:
    layout = RepoLayout(tmp_path, "acme/tiny")
    publish(layout, {"a.json": b"1", "b/c.bin": b"22"})
    manifest = manifest_from_cache(layout, model_id="tiny", revision="main", commit=COMMIT)
    assert manifest is not None
    assert [(f.path, f.size) for f in manifest.files] == [("a.json", 1), ("b/c.bin", 2)]
    assert manifest.files[0].digest == "sha256:" + hashlib.sha256(b"1").hexdigest()


def test_links_out_of_the_root_are_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "models"
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"secret")
    layout = RepoLayout(root, "acme/tiny")
    snapshot = layout.snapshot_dir(COMMIT)
    snapshot.mkdir(parents=True)
    (snapshot / "evil.bin").symlink_to(outside)
    observed = observe_snapshot(layout, COMMIT, (ManifestFile("evil.bin", 6, None),))
    assert observed[0].present is False
    assert observed[0].outside_root is True
    assert manifest_from_cache(layout, model_id="t", revision="main", commit=COMMIT) is not None
    assert manifest_from_cache(layout, model_id="t", revision="main", commit=COMMIT).files == ()
    with pytest.raises(UnsafePath):
        contain(root, snapshot / "evil.bin")


def test_outside_and_missing_answer_identically(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (tmp_path / "exists").write_text("x")
    with pytest.raises(UnsafePath) as existing:
        contain(root, root / ".." / "exists")
    with pytest.raises(UnsafePath) as missing:
        contain(root, root / ".." / "missing")
    assert existing.value.message == missing.value.message


@pytest.mark.parametrize(
    "bad_path",
    ["../x", "/abs", "a/../../b", "C:\\x", "\\\\server\\share", "a\x00b", "", "a//b", "./a"],
)
def test_hostile_relative_paths_are_refused_before_any_path_exists(
    bad_path: str, tmp_path: Path
) -> None:
    layout = RepoLayout(tmp_path, "acme/tiny")
    with pytest.raises(UnsafePath):
        layout.snapshot_file(COMMIT, bad_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../etc/passwd",
        "sha256:" + "a" * 63,
        "sha256:" + "A" * 64,
        "md5:" + "a" * 32,
        "gitsha1:" + "g" * 40,
        "sha256:" + "a" * 64 + "/x",
    ],
)
def test_malformed_digests_never_become_paths(digest: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        RepoLayout(tmp_path, "acme/tiny").blob_path(digest)


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "a--b/c", "a/..", "", "a/b.", "a b/c"])
def test_hostile_repo_ids_are_refused(repo_id: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        RepoLayout(tmp_path, repo_id)


def test_atomic_write_leaves_old_or_new(tmp_path: Path) -> None:
    target = tmp_path / "ref"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["ref"]


def test_list_repos_reports_sizes_and_refs(tmp_path: Path) -> None:
    publish(RepoLayout(tmp_path, "acme/tiny"), {"a": b"12345"})
    (tmp_path / ".locks").mkdir()
    (repo,) = list_repos(tmp_path)
    assert (repo.repo_id, repo.repo_type, repo.size_on_disk) == ("acme/tiny", "model", 5)
    assert repo.refs == {"main": COMMIT}
    assert repo.commits == (COMMIT,)
