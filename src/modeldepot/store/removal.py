"""Removing a model's files from its repository folder, planned first, measured as it goes.

Blocking functions, called through :class:`~modeldepot.store.cache.HubCache` under the
repository's lock. What a model owns in ``models--{org}--{name}/``:

* its ref ``refs/{revision}`` (none for a commit-pinned revision);
* every snapshot no *other* ref names (another catalogue entry's, or another tool's) and
  that is not in ``keep`` (commits other entries of the same repository still need);
* the blobs that only those snapshots link;
* when nothing else is left (no other ref, no kept snapshot): the whole folder, partial
  downloads and stray blobs included, so huggingface_hub's ``scan_cache_dir`` never sees a
  repository without ``snapshots/``.

The same plan serves a dry run and the real run. Bytes freed are *allocated* bytes
(``st_blocks``) of the inodes whose last link goes: a blob hard-linked into another
repository frees nothing, a blob shared by two of the removed repositories is counted once,
and directories and links count too, so the figure matches the file system's free-space
change. Removal never follows a link: links are unlinked themselves, whatever they point
to, and a folder that resolves outside the models directory raises ``UnsafePath`` before
anything is removed (RELIABILITY.md 4).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modeldepot.errors import StorageError, UnsafePath
from modeldepot.ids import is_commit_hash
from modeldepot.store.layout import RepoLayout, contain
from modeldepot.store.prune import linked_blobs


@dataclass(frozen=True)
class RemovalPlan:
    """What removing one model would remove (see the module docstring)."""

    repo_id: str
    ref: str | None
    commits: tuple[str, ...]
    whole_repository: bool
    paths: tuple[Path, ...]
    """Every path that goes (folders included), deepest first."""
    kept_commits: tuple[str, ...]
    """Snapshots that stay because another ref or entry needs them."""


def plan_removal(layout: RepoLayout, revision: str, *, keep: Iterable[str] = ()) -> RemovalPlan:
    """What removing the model that tracks ``revision`` in this repository would remove.

    Raises:
        UnsafePath: the repository folder is a link, or it, ``refs/``, ``snapshots/`` or
            ``blobs/`` resolves outside the models directory.
    """
    _ensure_real_folder(layout)
    refs = _refs(layout)
    ours = revision if revision in refs and not is_commit_hash(revision) else None
    others = {commit for name, commit in refs.items() if name != ours}
    kept = others | set(keep)
    on_disk = layout.snapshot_commits()
    commits = tuple(c for c in on_disk if c not in kept)
    whole = not kept.intersection(on_disk) and not others
    if whole:
        paths = (*_walk_deepest_first(layout.path), layout.path)
    else:
        paths = tuple(_partial_paths(layout, ours, commits))
    return RemovalPlan(
        repo_id=layout.repo_id,
        ref=ours,
        commits=commits,
        whole_repository=whole,
        paths=paths,
        kept_commits=tuple(sorted(kept.intersection(on_disk))),
    )


def _ensure_real_folder(layout: RepoLayout) -> None:
    """The repository folder and its parts are real folders inside the root (a removal
    there can never reach outside)."""
    if layout.path.is_symlink():
        raise UnsafePath("The repository folder is a link", details={"repo_id": layout.repo_id})
    for part in (layout.path, layout.path / "refs", layout.path / "snapshots", layout.blobs_dir):
        contain(layout.root, part)


def _refs(layout: RepoLayout) -> dict[str, str]:
    """Every ref of the repository (ours or another tool's) and the commit it names."""
    refs_dir = layout.path / "refs"
    names: dict[str, str] = {}
    for parent, _dirs, files in os.walk(refs_dir):
        for name in files:
            ref = Path(parent, name)
            try:
                value = ref.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                value = ""  # unreadable: still someone's, so whatever it names stays
            names[ref.relative_to(refs_dir).as_posix()] = value
    return names


def _partial_paths(layout: RepoLayout, ref: str | None, commits: tuple[str, ...]) -> Iterator[Path]:
    if ref is not None:
        yield layout.ref_path(ref)
    own: set[str] = set()
    for commit in commits:
        own |= linked_blobs(layout, commit)
        snapshot = layout.snapshot_dir(commit)
        if snapshot.is_symlink():
            yield snapshot
        elif snapshot.is_dir():
            yield from _walk_deepest_first(snapshot)
            yield snapshot
    still_linked: set[str] = set()
    for other in layout.snapshot_commits():
        if other not in commits:
            still_linked |= linked_blobs(layout, other)
    for name in sorted(own - still_linked):
        blob = layout.blobs_dir / name
        if blob.is_file() and not blob.is_symlink():
            yield blob


def _walk_deepest_first(folder: Path) -> Iterator[Path]:
    """Everything under ``folder`` (not itself), children before their parents; links
    (to files or folders) are listed, never entered."""
    for parent, dirs, files in os.walk(folder, topdown=False, followlinks=False):
        for name in files:
            yield Path(parent, name)
        for name in dirs:
            yield Path(parent, name)


def predicted_free_bytes(paths: Iterable[Path]) -> int:
    """Allocated bytes the file system would get back if ``paths`` all went: a file's
    only when every one of its links is among them, each inode once."""
    links: dict[tuple[int, int], int] = {}
    info: dict[tuple[int, int], os.stat_result] = {}
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        links[key] = links.get(key, 0) + 1
        info[key] = st
    freed = 0
    for key, st in info.items():
        if stat.S_ISDIR(st.st_mode) or links[key] >= st.st_nlink:
            freed += st.st_blocks * 512
    return freed


def execute_removal(layout: RepoLayout, plan: RemovalPlan) -> int:
    """Remove what ``plan`` names (what is already gone is skipped); return the allocated
    bytes released, measured inode by inode as the last link goes.

    Raises:
        UnsafePath: a folder now resolves outside the models directory (checked again).
        StorageError: the file system refused a removal (what was removed stays removed;
            the next cleanup finishes the job, the plan being made from what is left).
    """
    _ensure_real_folder(layout)
    freed = 0
    for path in plan.paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"Cannot inspect {path.name}: {exc.strerror}") from exc
        try:
            if stat.S_ISDIR(st.st_mode):
                path.rmdir()
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"Cannot remove {path.name}: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            freed += st.st_blocks * 512
    return freed
