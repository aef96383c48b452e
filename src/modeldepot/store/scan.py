"""Observing what is on disk: per-file presence and size, whole snapshots, refs, repo sizes.

These functions only read (``stat``, ``readlink``, ``scandir``); they are blocking and are
run in a worker thread by their callers. Judging what the observations mean (available,
partial, corrupted) is done by pure functions elsewhere.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from modeldepot.catalog.manifest import Manifest, ManifestFile, select_files
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.errors import UnsafePath
from modeldepot.ids import is_commit_hash, make_digest
from modeldepot.store.layout import PARTIAL_SUFFIX, REPO_TYPE_PREFIXES, RepoLayout


@dataclass(frozen=True)
class FileObservation:
    """What the snapshot entry of one manifest file looks like right now."""

    path: str
    present: bool
    size: int | None
    broken_link: bool = False
    outside_root: bool = False


@dataclass(frozen=True)
class Completeness:
    """Whether a snapshot has every manifest file with the right size."""

    missing: tuple[str, ...]
    wrong_size: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return not self.missing and not self.wrong_size


@dataclass(frozen=True)
class RepoOnDisk:
    """A repository folder in the models directory, managed or not."""

    repo_id: str
    repo_type: str
    folder: str
    size_on_disk: int
    refs: dict[str, str]
    commits: tuple[str, ...]
    last_modified: datetime | None


def observe_snapshot(
    layout: RepoLayout, commit: str, files: tuple[ManifestFile, ...]
) -> tuple[FileObservation, ...]:
    """Stat each manifest file in ``snapshots/{commit}``, following links inside the root."""
    root = layout.root.resolve()
    return tuple(_observe_file(layout, root, commit, f.path) for f in files)


def _observe_file(layout: RepoLayout, root: Path, commit: str, relpath: str) -> FileObservation:
    entry = layout.snapshot_file(commit, relpath)
    try:
        link_stat = entry.lstat()
    except OSError:
        return FileObservation(path=relpath, present=False, size=None)
    if stat.S_ISLNK(link_stat.st_mode):
        target = entry.resolve()
        if not target.is_relative_to(root):
            # Never follow a link out of the models directory, not even to stat it.
            return FileObservation(path=relpath, present=False, size=None, outside_root=True)
        try:
            size = target.stat().st_size
        except OSError:
            return FileObservation(path=relpath, present=False, size=None, broken_link=True)
        return FileObservation(path=relpath, present=True, size=size)
    if stat.S_ISREG(link_stat.st_mode):
        return FileObservation(path=relpath, present=True, size=link_stat.st_size)
    return FileObservation(path=relpath, present=False, size=None)


def completeness(layout: RepoLayout, commit: str, files: tuple[ManifestFile, ...]) -> Completeness:
    """Which of ``files`` ``snapshots/{commit}`` lacks or holds with the wrong size."""
    observed = observe_snapshot(layout, commit, files)
    missing = tuple(o.path for o in observed if not o.present)
    wrong = tuple(
        o.path
        for o, f in zip(observed, files, strict=True)
        if o.present and f.size is not None and o.size != f.size
    )
    return Completeness(missing=missing, wrong_size=wrong)


def refs_pointing_at(layout: RepoLayout, commit: str) -> list[str]:
    """Every ref (``main``, ``v1.0``, ``refs/pr/1``...) whose file names ``commit``."""
    refs_dir = layout.path / "refs"
    found = []
    for directory, _dirs, files in os.walk(refs_dir):
        for name in files:
            path = Path(directory) / name
            try:
                if path.read_text(encoding="ascii").strip() == commit:
                    found.append(path.relative_to(refs_dir).as_posix())
            except (OSError, UnicodeDecodeError):
                continue
    return sorted(found)


def manifest_from_cache(
    layout: RepoLayout, *, model_id: str, revision: str, commit: str
) -> Manifest | None:
    """Derive a manifest from a snapshot huggingface_hub left, for use without the hub.

    Blobs are named by the digest the hub announced at download time (64 hex: sha256 of an
    LFS file; 40 hex: git blob id), so a snapshot states what each file must hash to.
    """
    snapshot = layout.snapshot_dir(commit)
    if not snapshot.is_dir():
        return None
    root = layout.root.resolve()
    files: list[ManifestFile] = []
    for dirpath, _dirnames, filenames in os.walk(snapshot):
        for name in filenames:
            entry = Path(dirpath) / name
            relpath = entry.relative_to(snapshot).as_posix()
            try:
                files.append(_cached_file(entry, relpath, root))
            except (OSError, UnsafePath):
                continue
    return Manifest(
        model_id=model_id,
        source="cache",
        repo_id=layout.repo_id,
        revision=revision,
        commit=commit,
        files=tuple(sorted(files, key=lambda f: f.path)),
        resolved_at=datetime.now(UTC),
    )


def manifest_for_entry(layout: RepoLayout, entry: CatalogEntry, commit: str) -> Manifest | None:
    """Blocking: ``manifest_from_cache`` narrowed to the files the catalogue entry selects."""
    cached = manifest_from_cache(layout, model_id=entry.id, revision=entry.revision, commit=commit)
    if cached is None:
        return None
    files = select_files(
        cached.files, allow_patterns=entry.allow_patterns, ignore_patterns=entry.ignore_patterns
    )
    return replace(cached, files=files)


def _cached_file(entry: Path, relpath: str, root: Path) -> ManifestFile:
    target = entry.resolve()
    if not target.is_relative_to(root):
        raise UnsafePath("link leaves the models directory")
    size = target.stat().st_size
    name = target.name
    digest = None
    if len(name) == 64:
        digest = make_digest("sha256", name)
    elif len(name) == 40:
        digest = make_digest("gitsha1", name)
    return ManifestFile(path=relpath, size=size, digest=digest)


def list_repos(root: Path) -> list[RepoOnDisk]:
    """Every hub-cache repository folder under ``root`` with its size on disk and refs."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    repos = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and entry.name.startswith(REPO_TYPE_PREFIXES):
            repos.append(_describe_repo(Path(entry.path)))
    return sorted(repos, key=lambda r: r.folder)


def _describe_repo(path: Path) -> RepoOnDisk:
    prefix, _, rest = path.name.partition("--")
    refs: dict[str, str] = {}
    refs_dir = path / "refs"
    for dirpath, _dirs, names in os.walk(refs_dir):
        for name in names:
            ref_file = Path(dirpath) / name
            try:
                value = ref_file.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                continue
            refs[ref_file.relative_to(refs_dir).as_posix()] = value
    size, newest = _blob_totals(path / "blobs")
    try:
        commits = tuple(sorted(n for n in os.listdir(path / "snapshots") if is_commit_hash(n)))
    except OSError:
        commits = ()
    return RepoOnDisk(
        repo_id=rest.replace("--", "/"),
        repo_type=prefix.removesuffix("s"),
        folder=path.name,
        size_on_disk=size,
        refs=refs,
        commits=commits,
        last_modified=datetime.fromtimestamp(newest, UTC) if newest else None,
    )


def _blob_totals(blobs: Path) -> tuple[int, float]:
    total, newest = 0, 0.0
    try:
        entries = list(os.scandir(blobs))
    except OSError:
        return 0, 0.0
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            total += info.st_blocks * 512 if entry.name.endswith(PARTIAL_SUFFIX) else info.st_size
            newest = max(newest, info.st_mtime)
    return total, newest
