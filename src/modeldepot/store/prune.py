"""Removing bytes from the hub cache: a revision, a snapshot entry, a blob, partial files.

Blocking functions, called through :class:`~modeldepot.store.cache.HubCache` (which runs
them off the event loop and holds the repository's lock around the decision). Each removes
only inside one repository's folder, whatever the links there say:

* a snapshot entry is removed itself (``unlink`` never follows a link), and only if its
  folder resolves inside the models directory (a parent linked out is left alone);
* a revision's snapshot directory is removed with ``shutil.rmtree`` (which never follows
  links) only if it is a real directory resolving inside the root;
* blobs are addressed by name in ``blobs/``, and only when ``blobs/`` itself resolves
  inside the root; a blob another snapshot links is kept.

Violations raise :class:`~modeldepot.errors.UnsafePath` before anything is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.errors import StorageError
from modeldepot.store.layout import RepoLayout, contain


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


def blobs_linked_except(layout: RepoLayout, commit: str) -> set[str]:
    """Names of the blobs some snapshot other than ``snapshots/{commit}`` links to."""
    used: set[str] = set()
    for other in layout.snapshot_commits():
        if other != commit:
            used |= linked_blobs(layout, other)
    return used


def remove_revision(layout: RepoLayout, commit: str) -> int:
    """Remove ``snapshots/{commit}`` and the blobs only it used; return the bytes freed.

    Raises:
        UnsafePath: the snapshot or ``blobs/`` resolves outside the models directory.
        StorageError: the file system refused a removal (what was removed stays removed;
            a later sweep finishes the job).
    """
    snapshot = layout.snapshot_dir(commit)
    contain(layout.root, snapshot)
    contain(layout.root, layout.blobs_dir)
    own = linked_blobs(layout, commit)
    try:
        if snapshot.is_dir() and not snapshot.is_symlink():
            shutil.rmtree(snapshot)
    except OSError as exc:
        raise StorageError(f"Cannot remove snapshot {commit}: {exc.strerror}") from exc
    still_used = blobs_linked_except(layout, commit)
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


def remove_snapshot_entry(layout: RepoLayout, commit: str, relpath: str) -> bool:
    """Unlink ``snapshots/{commit}/{relpath}`` (the link or file, never its target);
    return whether there was one.

    Raises:
        UnsafePath: invalid commit or path, or the entry's folder resolves outside the root.
        StorageError: the file system refused the removal.
    """
    entry = layout.snapshot_file(commit, relpath)
    contain(layout.root, entry.parent)
    if not (entry.is_symlink() or entry.is_file()):
        return False
    try:
        entry.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"Cannot remove {relpath}: {exc.strerror}") from exc
    return True


def remove_blob(layout: RepoLayout, digest: str, *, owner: str) -> bool:
    """Remove the blob of ``digest`` unless a snapshot other than ``owner`` links it (that
    revision's files are never touched); return whether it was removed.

    Raises:
        UnsafePath: malformed digest, or ``blobs/`` resolves outside the root.
        StorageError: the file system refused the removal.
    """
    blob = layout.blob_path(digest)
    contain(layout.root, blob.parent)
    if blob.is_symlink() or not blob.is_file():
        return False
    if blob.name in blobs_linked_except(layout, owner):
        return False
    try:
        blob.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"Cannot remove blob {blob.name}: {exc.strerror}") from exc
    return True


def remove_partials(layout: RepoLayout, files: tuple[ManifestFile, ...]) -> None:
    """Remove the partial files and checkpoints of ``files`` (a file without a digest:
    every unpinned partial of the repository). Best effort: a file that cannot be removed
    now is collected at the next start-up.

    Raises:
        UnsafePath: ``blobs/`` resolves outside the root, or a digest is malformed.
    """
    contain(layout.root, layout.blobs_dir)
    for file in files:
        if file.digest is None:
            with contextlib.suppress(OSError):
                for leftover in layout.blobs_dir.glob("unpinned-*"):
                    leftover.unlink()
            continue
        partial = layout.partial_path(file.digest)
        for path in (partial, partial.with_name(partial.name + ".json")):
            with contextlib.suppress(OSError):
                path.unlink()
