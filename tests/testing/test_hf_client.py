"""The local hub is faithful: huggingface_hub's own client downloads from it unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import (
    HfApi,
    hf_hub_download,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from modeldepot.testing import DEFAULT_TOKEN, LocalHub, demo_repo_files, git_blob_sha1

REPO = "acme/tiny-video"


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def files() -> dict[str, bytes]:
    return demo_repo_files("t2v")


@pytest.fixture
def repo_sha(local_hub: LocalHub, files: dict[str, bytes]) -> str:
    return local_hub.create_repo(REPO, files)


def _download(
    hub: LocalHub,
    cache: Path,
    *,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    token: str | bool = False,
) -> Path:
    snapshot = snapshot_download(
        REPO,
        cache_dir=cache,
        endpoint=hub.endpoint,
        revision=revision,
        allow_patterns=allow_patterns,
        token=token,
    )
    return Path(snapshot)


def test_snapshot_download_is_byte_identical_and_cached(
    local_hub: LocalHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    snapshot = _download(local_hub, tmp_path / "cache")

    assert snapshot.name == repo_sha
    for path, data in files.items():
        assert (snapshot / path).read_bytes() == data, path
        cached = hf_hub_download(
            REPO, path, cache_dir=tmp_path / "cache", local_files_only=True, token=False
        )
        assert Path(cached).read_bytes() == data
    report = scan_cache_dir(tmp_path / "cache")
    assert report.warnings == []
    (repo,) = report.repos
    assert repo.repo_id == REPO
    assert {r.commit_hash for r in repo.revisions} == {repo_sha}
    assert repo.nb_files == len(files)


def test_downloads_take_plain_http_and_lfs_goes_through_the_cdn(
    local_hub: LocalHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    _download(local_hub, tmp_path / "cache")

    heads = local_hub.requests.filter(server="hub", method="HEAD")
    assert heads
    assert all(r.headers["accept-encoding"] == "identity" for r in heads)
    cdn_files = {r.filename for r in local_hub.requests.filter(server="cdn", method="GET")}
    lfs = {p for p in files if p.endswith((".safetensors", ".pth"))}
    assert cdn_files == lfs
    assert local_hub.requests.bytes_sent(server="cdn") == sum(len(files[p]) for p in lfs)


def test_model_info_reports_sizes_blob_ids_and_lfs_sha256(
    local_hub: LocalHub, files: dict[str, bytes], repo_sha: str
) -> None:
    info = HfApi(endpoint=local_hub.endpoint, token=False).model_info(REPO, files_metadata=True)

    assert info.id == REPO
    assert info.sha == repo_sha
    assert info.private is False
    assert info.gated is False
    assert info.siblings is not None
    assert {s.rfilename for s in info.siblings} == set(files)
    for sibling in info.siblings:
        data = files[sibling.rfilename]
        assert sibling.size == len(data)
        if sibling.rfilename.endswith((".safetensors", ".pth")):
            assert sibling.lfs is not None
            assert sibling.lfs.sha256 == hashlib.sha256(data).hexdigest()
            assert sibling.lfs.size == len(data)
            assert sibling.lfs.pointer_size > 100
        else:
            assert sibling.lfs is None
            assert sibling.blob_id == git_blob_sha1(data)


def test_list_repo_tree_recursive_paginated_and_expanded(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    with LocalHub(tmp_path / "hub", tree_page_size=4, expand_page_size=2) as hub:
        sha = hub.create_repo(REPO, files)
        api = HfApi(endpoint=hub.endpoint, token=False)

        entries = list(api.list_repo_tree(REPO, recursive=True))
        top = list(api.list_repo_tree(REPO))
        sub = list(api.list_repo_tree(REPO, path_in_repo="transformer", expand=True))
        pages = hub.requests.filter(path=f"/api/models/{REPO}/tree/main")

    found = {e.path: e for e in entries if isinstance(e, RepoFile)}
    assert set(found) == set(files)
    assert {e.path for e in entries if isinstance(e, RepoFolder)} >= {"transformer", "vae"}
    shard = found["transformer/diffusion_pytorch_model-00001-of-00002.safetensors"]
    assert shard.lfs is not None
    assert shard.lfs.sha256 == hashlib.sha256(files[shard.path]).hexdigest()
    assert {e.path for e in top} == {p.split("/")[0] for p in files}
    assert len(pages) > 3  # followed the Link header
    assert {e.path for e in sub} == {p for p in files if p.startswith("transformer/")}
    assert all(e.last_commit is not None and e.last_commit.oid == sha for e in sub)


def test_get_paths_info(local_hub: LocalHub, files: dict[str, bytes], repo_sha: str) -> None:
    api = HfApi(endpoint=local_hub.endpoint, token=False)

    infos = api.get_paths_info(REPO, ["config.json", "vae", "missing.bin"])

    assert {type(i).__name__: i.path for i in infos} == {
        "RepoFile": "config.json",
        "RepoFolder": "vae",
    }


def test_allow_patterns_download_only_matching_files(
    local_hub: LocalHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    snapshot = _download(local_hub, tmp_path / "cache", allow_patterns=["*.json"])

    got = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
    assert got == {p for p in files if p.endswith(".json")}
    assert local_hub.requests.filter(server="cdn") == []


def test_older_commit_stays_downloadable_after_an_update(
    local_hub: LocalHub, files: dict[str, bytes], repo_sha: str, tmp_path: Path
) -> None:
    new_sha = local_hub.commit(
        REPO, add={"config.json": b'{"v": 2}'}, delete=["README.md"], message="v2"
    )
    api = HfApi(endpoint=local_hub.endpoint, token=False)

    old = _download(local_hub, tmp_path / "cache", revision=repo_sha)
    new = _download(local_hub, tmp_path / "cache")

    assert new_sha != repo_sha
    assert len(new_sha) == 40
    assert old.name == repo_sha
    assert new.name == new_sha
    assert (old / "config.json").read_bytes() == files["config.json"]
    assert (new / "config.json").read_bytes() == b'{"v": 2}'
    assert (old / "README.md").exists()
    assert not (new / "README.md").exists()
    assert [c.commit_id for c in api.list_repo_commits(REPO)] == [new_sha, repo_sha]
    assert api.list_repo_refs(REPO).branches[0].target_commit == new_sha


def test_private_repo_needs_a_token_that_never_reaches_the_cdn(
    local_hub: LocalHub, files: dict[str, bytes], tmp_path: Path
) -> None:
    local_hub.create_repo(REPO, files, private=True)

    with pytest.raises(RepositoryNotFoundError):
        _download(local_hub, tmp_path / "anon")
    local_hub.requests.clear()
    snapshot = _download(local_hub, tmp_path / "cache", token=DEFAULT_TOKEN)

    assert (snapshot / "config.json").read_bytes() == files["config.json"]
    assert all(
        r.authorization == f"Bearer {DEFAULT_TOKEN}"
        for r in local_hub.requests.filter(server="hub")
    )
    assert all(r.authorization is None for r in local_hub.requests.filter(server="cdn"))


def test_gated_repo_metadata_is_public_but_files_are_not(
    local_hub: LocalHub, files: dict[str, bytes], tmp_path: Path
) -> None:
    local_hub.create_repo(REPO, files, gated=True)
    local_hub.add_token("hf_someone_else")
    api = HfApi(endpoint=local_hub.endpoint, token=False)

    assert api.model_info(REPO).gated == "auto"
    with pytest.raises(GatedRepoError) as anonymous:
        hf_hub_download(
            REPO, "config.json", cache_dir=tmp_path, endpoint=local_hub.endpoint, token=False
        )
    with pytest.raises(GatedRepoError) as outsider:
        hf_hub_download(
            REPO,
            "config.json",
            cache_dir=tmp_path,
            endpoint=local_hub.endpoint,
            token="hf_someone_else",
        )
    path = hf_hub_download(
        REPO, "config.json", cache_dir=tmp_path, endpoint=local_hub.endpoint, token=DEFAULT_TOKEN
    )

    assert anonymous.value.response.status_code == 401
    assert outsider.value.response.status_code == 403
    assert Path(path).read_bytes() == files["config.json"]


def test_missing_file_revision_and_repo_map_to_hub_errors(
    local_hub: LocalHub, repo_sha: str, tmp_path: Path
) -> None:
    def get(repo: str, name: str, **kwargs: object) -> str:
        return hf_hub_download(  # type: ignore[call-overload, no-any-return]
            repo, name, cache_dir=tmp_path, endpoint=local_hub.endpoint, token=False, **kwargs
        )

    with pytest.raises(RemoteEntryNotFoundError):
        get(REPO, "nope.json")
    with pytest.raises(RevisionNotFoundError):
        get(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        get("acme/does-not-exist", "config.json")


def test_unknown_token_is_invalid_credentials_not_repo_not_found(
    local_hub: LocalHub, repo_sha: str
) -> None:
    api = HfApi(endpoint=local_hub.endpoint, token="hf_bogus")

    with pytest.raises(HfHubHTTPError) as raised:
        api.model_info(REPO)

    assert not isinstance(raised.value, RepositoryNotFoundError)
    assert raised.value.response.status_code == 401
