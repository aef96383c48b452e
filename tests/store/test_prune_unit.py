"""store/prune.py on its own, on real files: what each removal takes and what it leaves.

Repositories are written by hand in the hub-cache shape (blobs, relative snapshot links)
through ``RepoLayout``'s own writers; links out of the models directory stand for a
user's or an attacker's symlinks and must never be followed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.errors import UnsafePath
from modeldepot.ids import make_digest
from modeldepot.store.layout import RepoLayout
from modeldepot.store.prune import (
    blobs_linked_except,
    linked_blobs,
    remove_blob,
    remove_partials,
    remove_revision,
    remove_snapshot_entry,
)

OLD, NEW, OTHER = "1" * 40, "2" * 40, "3" * 40
SHARED = b"shared config\n"
OLD_ONLY = b"old weights " * 100
NEW_ONLY = b"new weights " * 300


def digest_of(data: bytes) -> str:
    return make_digest("sha256", hashlib.sha256(data).hexdigest())


def name_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(layout: RepoLayout, commit: str, files: dict[str, bytes]) -> None:
    """A revision as the download engine leaves it: blobs, and links to them."""
    layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    for relpath, data in files.items():
        layout.blob_path(digest_of(data)).write_bytes(data)
        layout.link_snapshot_file(commit, relpath, digest_of(data))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    return models


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the models directory holding a canary that must survive."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "canary").write_bytes(b"do not touch")
    return folder


@pytest.fixture
def layout(root: Path) -> RepoLayout:
    """Two revisions sharing one blob, each with one blob of its own."""
    repo = RepoLayout(root, "acme/tiny")
    put(repo, OLD, {"config.json": SHARED, "weights/model.bin": OLD_ONLY})
    put(repo, NEW, {"config.json": SHARED, "weights/model.bin": NEW_ONLY})
    return repo


def blob_names(layout: RepoLayout) -> set[str]:
    return {p.name for p in layout.blobs_dir.iterdir()}


def test_linked_blobs_names_what_one_snapshot_links(layout: RepoLayout) -> None:
    assert linked_blobs(layout, OLD) == {name_of(SHARED), name_of(OLD_ONLY)}
    assert linked_blobs(layout, NEW) == {name_of(SHARED), name_of(NEW_ONLY)}
    assert blobs_linked_except(layout, OLD) == {name_of(SHARED), name_of(NEW_ONLY)}


def test_linked_blobs_ignores_plain_files_and_links_elsewhere(
    layout: RepoLayout, outside: Path
) -> None:
    snapshot = layout.snapshot_dir(OLD)
    (snapshot / "notes.txt").write_bytes(b"a plain file, not a blob")
    (snapshot / "elsewhere").symlink_to(outside / "canary")

    assert linked_blobs(layout, OLD) == {name_of(SHARED), name_of(OLD_ONLY)}


def test_linked_blobs_of_a_missing_snapshot_is_empty(layout: RepoLayout) -> None:
    assert linked_blobs(layout, OTHER) == set()


def test_remove_revision_frees_only_the_blobs_it_alone_used(layout: RepoLayout) -> None:
    freed = remove_revision(layout, OLD)

    assert freed == len(OLD_ONLY)
    assert not layout.snapshot_dir(OLD).exists()
    assert blob_names(layout) == {name_of(SHARED), name_of(NEW_ONLY)}
    # The other revision still reads its files, the shared one included.
    assert layout.snapshot_file(NEW, "config.json").read_bytes() == SHARED
    assert layout.snapshot_file(NEW, "weights/model.bin").read_bytes() == NEW_ONLY


def test_removing_the_last_revision_frees_every_blob(layout: RepoLayout) -> None:
    remove_revision(layout, OLD)

    freed = remove_revision(layout, NEW)

    assert freed == len(SHARED) + len(NEW_ONLY)
    assert blob_names(layout) == set()
    assert layout.snapshot_commits() == []


def test_removing_a_revision_twice_frees_nothing_more(layout: RepoLayout) -> None:
    remove_revision(layout, OLD)

    assert remove_revision(layout, OLD) == 0
    assert blob_names(layout) == {name_of(SHARED), name_of(NEW_ONLY)}


def test_remove_revision_leaves_blobs_nobody_links(layout: RepoLayout) -> None:
    # A partial or an unlinked blob is not the revision's to remove.
    stray = layout.blobs_dir / name_of(b"not linked by any snapshot")
    stray.write_bytes(b"not linked by any snapshot")

    remove_revision(layout, OLD)

    assert stray.exists()


@pytest.mark.parametrize("commit", ["main", "../" + OLD, OLD[:-1], OLD.upper() + "x"])
def test_remove_revision_refuses_what_is_not_a_commit(layout: RepoLayout, commit: str) -> None:
    with pytest.raises(UnsafePath):
        remove_revision(layout, commit)

    assert layout.snapshot_commits() == [OLD, NEW]
    assert len(blob_names(layout)) == 3


def test_remove_revision_never_follows_a_snapshot_linked_out(
    layout: RepoLayout, outside: Path
) -> None:
    target = outside / OTHER
    target.mkdir()
    (target / "victim.bin").write_bytes(b"outside")
    layout.snapshot_dir(OTHER).symlink_to(target, target_is_directory=True)

    with pytest.raises(UnsafePath):
        remove_revision(layout, OTHER)

    assert (target / "victim.bin").read_bytes() == b"outside"
    assert layout.snapshot_dir(OTHER).is_symlink()


def test_remove_revision_refuses_blobs_linked_out(root: Path, outside: Path) -> None:
    repo = RepoLayout(root, "acme/linked")
    (repo.path / "snapshots" / OLD).mkdir(parents=True)
    repo.blobs_dir.symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePath):
        remove_revision(repo, OLD)

    assert (outside / "canary").read_bytes() == b"do not touch"
    assert repo.snapshot_dir(OLD).is_dir(), "nothing removed before the refusal"


def test_remove_snapshot_entry_unlinks_the_link_not_its_blob(layout: RepoLayout) -> None:
    assert remove_snapshot_entry(layout, OLD, "weights/model.bin")

    assert not layout.snapshot_file(OLD, "weights/model.bin").exists()
    assert layout.blob_path(digest_of(OLD_ONLY)).read_bytes() == OLD_ONLY
    assert layout.snapshot_file(OLD, "config.json").read_bytes() == SHARED


def test_remove_snapshot_entry_that_is_not_there(layout: RepoLayout) -> None:
    assert not remove_snapshot_entry(layout, OLD, "missing.json")
    assert not remove_snapshot_entry(layout, OTHER, "config.json")


def test_remove_snapshot_entry_removes_a_dangling_link(layout: RepoLayout) -> None:
    layout.blob_path(digest_of(OLD_ONLY)).unlink()

    assert remove_snapshot_entry(layout, OLD, "weights/model.bin")
    assert not layout.snapshot_file(OLD, "weights/model.bin").is_symlink()


def test_remove_snapshot_entry_unlinks_a_link_out_without_touching_its_target(
    layout: RepoLayout, outside: Path
) -> None:
    entry = layout.snapshot_file(OLD, "evil.bin")
    entry.symlink_to(outside / "canary")

    assert remove_snapshot_entry(layout, OLD, "evil.bin")

    assert not entry.is_symlink()
    assert (outside / "canary").read_bytes() == b"do not touch"


def test_remove_snapshot_entry_refuses_a_folder_linked_out(
    layout: RepoLayout, outside: Path
) -> None:
    layout.snapshot_dir(OLD).joinpath("linked").symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePath):
        remove_snapshot_entry(layout, OLD, "linked/canary")

    assert (outside / "canary").read_bytes() == b"do not touch"


@pytest.mark.parametrize("relpath", ["../" + NEW + "/config.json", "/etc/passwd", "a\\b", ""])
def test_remove_snapshot_entry_refuses_unsafe_paths(layout: RepoLayout, relpath: str) -> None:
    with pytest.raises(UnsafePath):
        remove_snapshot_entry(layout, OLD, relpath)

    assert layout.snapshot_file(NEW, "config.json").read_bytes() == SHARED


def test_remove_blob_removes_a_blob_only_its_owner_links(layout: RepoLayout) -> None:
    assert remove_blob(layout, digest_of(OLD_ONLY), owner=OLD)

    assert name_of(OLD_ONLY) not in blob_names(layout)


def test_remove_blob_keeps_a_blob_another_revision_links(layout: RepoLayout) -> None:
    assert not remove_blob(layout, digest_of(SHARED), owner=OLD)

    assert layout.snapshot_file(NEW, "config.json").read_bytes() == SHARED


def test_remove_blob_keeps_a_blob_of_another_revision(layout: RepoLayout) -> None:
    # Asked for OLD, but NEW links this blob: that revision's files are never touched.
    assert not remove_blob(layout, digest_of(NEW_ONLY), owner=OLD)

    assert layout.snapshot_file(NEW, "weights/model.bin").read_bytes() == NEW_ONLY


def test_remove_blob_that_is_not_there(layout: RepoLayout) -> None:
    assert not remove_blob(layout, digest_of(b"never stored"), owner=OLD)


def test_remove_blob_never_removes_a_link_in_blobs(layout: RepoLayout, outside: Path) -> None:
    data = b"a blob that is a link"
    layout.blob_path(digest_of(data)).symlink_to(outside / "canary")

    assert not remove_blob(layout, digest_of(data), owner=OLD)

    assert layout.blob_path(digest_of(data)).is_symlink()
    assert (outside / "canary").read_bytes() == b"do not touch"


@pytest.mark.parametrize("digest", ["sha256:../../x", "sha256:" + "a" * 63, "md5:" + "a" * 32])
def test_remove_blob_refuses_malformed_digests(layout: RepoLayout, digest: str) -> None:
    with pytest.raises(UnsafePath):
        remove_blob(layout, digest, owner=OLD)

    assert len(blob_names(layout)) == 3


def test_remove_blob_refuses_blobs_linked_out(root: Path, outside: Path) -> None:
    repo = RepoLayout(root, "acme/linked")
    repo.path.mkdir()
    repo.blobs_dir.symlink_to(outside, target_is_directory=True)
    digest = digest_of(b"do not touch")
    (outside / name_of(b"do not touch")).write_bytes(b"do not touch")

    with pytest.raises(UnsafePath):
        remove_blob(repo, digest, owner=OLD)

    assert (outside / name_of(b"do not touch")).exists()


def partial_files(layout: RepoLayout, data: bytes) -> tuple[Path, Path]:
    partial = layout.partial_path(digest_of(data))
    checkpoint = partial.with_name(partial.name + ".json")
    partial.write_bytes(data[:10])
    checkpoint.write_bytes(b'{"size": 1, "segments": []}')
    return partial, checkpoint


def test_remove_partials_removes_partials_and_checkpoints_of_those_files(
    layout: RepoLayout,
) -> None:
    mine = partial_files(layout, b"mine " * 100)
    theirs = partial_files(layout, b"theirs " * 100)
    file = ManifestFile(path="weights/model.bin", size=500, digest=digest_of(b"mine " * 100))

    remove_partials(layout, (file,))

    assert not any(p.exists() for p in mine)
    assert all(p.exists() for p in theirs), "another file's partial stays"
    assert len([p for p in blob_names(layout) if "partial" not in p]) == 3, "blobs stay"


def test_remove_partials_without_digest_removes_every_unpinned_partial(
    layout: RepoLayout,
) -> None:
    unpinned = [layout.blobs_dir / "unpinned-a", layout.blobs_dir / "unpinned-b.json"]
    for path in unpinned:
        path.write_bytes(b"x")
    pinned = partial_files(layout, b"pinned " * 10)

    remove_partials(layout, (ManifestFile(path="model.bin", size=None, digest=None),))

    assert not any(p.exists() for p in unpinned)
    assert all(p.exists() for p in pinned)


def test_remove_partials_with_nothing_to_remove(layout: RepoLayout) -> None:
    file = ManifestFile(path="a.bin", size=1, digest=digest_of(b"none"))

    remove_partials(layout, (file,))

    assert len(blob_names(layout)) == 3


def test_remove_partials_refuses_blobs_linked_out(root: Path, outside: Path) -> None:
    repo = RepoLayout(root, "acme/linked")
    repo.path.mkdir()
    repo.blobs_dir.symlink_to(outside, target_is_directory=True)
    (outside / "unpinned-x").write_bytes(b"outside")

    with pytest.raises(UnsafePath):
        remove_partials(repo, (ManifestFile(path="m.bin", size=None, digest=None),))

    assert (outside / "unpinned-x").exists()
