"""Blocking file work on revisions: what a snapshot uses, whether it is whole, removing it.

A snapshot is a directory of relative symlinks into ``blobs/``. Removing a revision deletes
its snapshot directory (links only: ``shutil.rmtree`` never follows a link) and then the
blobs that no remaining snapshot of the repository links to. Nothing outside the
repository's own folder is ever touched, whatever the links say.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.errors import StorageError
from modeldepot.store.layout import RepoLayout
from modeldepot.store.scan import observe_snapshot


@dataclass(frozen=True)
class Completeness:
    """Whether a snapshot has every manifest file with the right size."""

    missing: tuple[str, ...]
    wrong_size: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return not self.missing and not self.wrong_size


def completeness(layout: RepoLayout, commit: str, files: tuple[ManifestFile, ...]) -> Completeness:
    observed = observe_snapshot(layout, commit, files)
    missing = tuple(o.path for o in observed if not o.present)
    wrong = tuple(
        o.path
        for o, f in zip(observed, files, strict=True)
        if o.present and f.size is not None and o.size != f.size
    )
    return Completeness(missing=missing, wrong_size=wrong)


def linked_blobs(layout: RepoLayout, commit: str) -> set[str]:
    """Names of the blobs in this repository that ``snapshots/{commit}`` links to."""
    snapshot = layout.snapshot_dir(commit)
    blobs = layout.blobs_dir.resolve()
    names: set[str] = set()
    for directory, _dirs, files in os.walk(snapshot):
        for name in files:
            link = Path(directory) / name
            if not link.is_symlink():
                continue
            target = Path(os.path.normpath(link.parent / os.readlink(link)))
            if target.parent == layout.blobs_dir or target.parent.resolve() == blobs:
                names.add(target.name)
    return names


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


def remove_revision(layout: RepoLayout, commit: str) -> int:
    """Remove ``snapshots/{commit}`` and the blobs only it used; return the bytes freed.

    Raises:
        StorageError: the file system refused a removal (what was removed stays removed;
            a later sweep finishes the job).
    """
    snapshot = layout.snapshot_dir(commit)
    own = linked_blobs(layout, commit)
    try:
        if snapshot.is_dir() and not snapshot.is_symlink():
            shutil.rmtree(snapshot)
    except OSError as exc:
        raise StorageError(f"Cannot remove snapshot {commit}: {exc.strerror}") from exc
    still_used: set[str] = set()
    for other in layout.snapshot_commits():
        still_used |= linked_blobs(layout, other)
    freed = 0
    for name in sorted(own - still_used):
        blob = layout.blobs_dir / name
        try:
            size = blob.lstat().st_size
            blob.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"Cannot remove blob {name}: {exc.strerror}") from exc
        freed += size
    return freed
