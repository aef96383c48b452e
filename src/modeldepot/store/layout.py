"""The on-disk layout of the models directory: exactly the Hugging Face hub cache.

::

    <models_dir>/                              MODELDEPOT_MODELS_DIR (default: HF hub cache)
    ├── .locks/                                huggingface_hub's lock files (never touched)
    │   └── modeldepot.lock                    which process owns this directory (instance.py)
    ├── models--{org}--{name}/                 one hub repository
    │   ├── blobs/
    │   │   ├── {sha256}                       an LFS file, named by its sha256 (the hub's ETag)
    │   │   ├── {git-sha1}                     a small file, named by its git blob id
    │   │   └── {hash}.modeldepot-partial      a download in progress (never linked)
    │   ├── refs/{revision}                    text file: the 40-hex commit of a branch/tag
    │   └── snapshots/{commit}/{path}          relative symlink -> ../../blobs/{hash}
    └── models--modeldepot-url--{model_id}/    a single-file URL model, same shape:
        ├── blobs/{sha256}                     refs/main -> a commit derived from URL+sha256
        ├── refs/main
        └── snapshots/{commit}/{filename}

Because URL models use the same shape under their own ``modeldepot-url`` namespace,
``huggingface_hub.scan_cache_dir`` lists the whole directory without warnings and one code
path serves both kinds. Every path is built from parts validated in ``modeldepot.ids`` and
checked to resolve inside the root (``Path.is_relative_to``, never a string prefix).
Repositories not in the catalogue are read for reporting only, never written.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from modeldepot.errors import StorageError, UnsafePath
from modeldepot.files import atomic_write_bytes
from modeldepot.ids import URL_NAMESPACE as URL_NAMESPACE
from modeldepot.ids import (
    is_commit_hash,
    parse_digest,
    validate_relative_path,
    validate_repo_id,
    validate_revision,
)
from modeldepot.ids import url_commit as url_commit
from modeldepot.ids import url_repo_id as url_repo_id

PARTIAL_SUFFIX = ".modeldepot-partial"
REPO_TYPE_PREFIXES = ("models--", "datasets--", "spaces--")


def repo_folder_name(repo_id: str) -> str:
    """``org/name`` -> ``models--org--name``, as huggingface_hub names cache folders."""
    return "models--" + validate_repo_id(repo_id).replace("/", "--")


def contain(root: Path, candidate: Path) -> Path:
    """Return ``candidate`` if, fully resolved, it stays inside ``root``.

    Raises:
        UnsafePath: it resolves outside the root (``..``, absolute parts, symlinks out).
    """
    resolved_root = root.resolve()
    if not candidate.resolve().is_relative_to(resolved_root):
        # Same message whether or not the target exists: no file-existence oracle.
        raise UnsafePath("Path is outside the models directory")
    return candidate


@dataclass(frozen=True)
class RepoLayout:
    """Paths of one repository inside the models directory."""

    root: Path
    repo_id: str

    def __post_init__(self) -> None:
        validate_repo_id(self.repo_id)

    @property
    def path(self) -> Path:
        return self.root / repo_folder_name(self.repo_id)

    @property
    def blobs_dir(self) -> Path:
        return self.path / "blobs"

    def blob_path(self, digest: str) -> Path:
        """The blob for an ``algorithm:hex`` digest (hex checked before any path is built)."""
        _, hexdigest = parse_digest(digest)
        return self.blobs_dir / hexdigest

    def partial_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(self.blob_path(digest).name + PARTIAL_SUFFIX)

    def snapshot_dir(self, commit: str) -> Path:
        if not is_commit_hash(commit):
            raise UnsafePath(f"'{commit}' is not a commit hash", details={"commit": commit})
        return self.path / "snapshots" / commit

    def snapshot_file(self, commit: str, relpath: str) -> Path:
        return self.snapshot_dir(commit) / validate_relative_path(relpath)

    def ref_path(self, revision: str) -> Path:
        return self.path / "refs" / validate_revision(revision)

    def read_ref(self, revision: str) -> str | None:
        """The commit a revision points at locally, or None if there is no valid ref.

        A revision that is itself a commit hash "points at" its snapshot if that exists.
        """
        if is_commit_hash(revision):
            return revision if self.snapshot_dir(revision).is_dir() else None
        try:
            commit = self.ref_path(revision).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return commit if is_commit_hash(commit) else None

    def snapshot_commits(self) -> list[str]:
        try:
            names = os.listdir(self.path / "snapshots")
        except OSError:
            return []
        return sorted(name for name in names if is_commit_hash(name))

    # --- writing (used by downloads and repair; every write is atomic) -----------------

    def write_ref(self, revision: str, commit: str) -> None:
        """Point ``refs/{revision}`` at ``commit`` atomically (temp file, fsync, rename).

        Raises:
            UnsafePath: invalid revision or commit, or ``refs/`` resolves outside the root.
            StorageError: the file system refused the write.
        """
        if not is_commit_hash(commit):
            raise UnsafePath(f"'{commit}' is not a commit hash", details={"commit": commit})
        target = self.ref_path(revision)
        # The temp file is created in the parent: a parent linked out of the root would
        # make us write there (RELIABILITY.md 4).
        contain(self.root, target.parent)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, commit.encode("ascii"))
        except OSError as exc:
            raise StorageError(f"Cannot write ref {revision}: {exc.strerror}") from exc

    def link_snapshot_file(self, commit: str, relpath: str, digest: str) -> Path:
        """Make ``snapshots/{commit}/{relpath}`` a relative symlink to its blob, atomically.

        Raises:
            UnsafePath: invalid commit, path or digest.
            StorageError: the file system refused the link.
        """
        link = self.snapshot_file(commit, relpath)
        # Contain the folder, not the entry: an entry that is itself a link out of the
        # models directory (a repair's target) is replaced, never followed.
        contain(self.root, link.parent)
        blob = self.blob_path(digest)
        target = os.path.relpath(blob, link.parent)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp-link")
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"Cannot link {relpath}: {exc.strerror}") from exc
        return link


def sweep_temp_files(repo_dir: Path) -> list[Path]:
    """Remove what interrupted atomic writes left in one repository: ``.*.tmp`` in
    ``blobs/`` and ``refs/``, ``.*.tmp-link`` in ``snapshots/``. Only safe when nothing
    writes there (start-up): these names belong to writers that died.

    A stray ``refs/.main.123.tmp`` would make huggingface_hub call the repo corrupted.
    Repository folders sit directly in the models directory, so a leftover whose folder
    resolves outside ``repo_dir.parent`` (a linked ``refs/``, a linked repository) is not
    ours and stays.
    """
    root = repo_dir.parent.resolve()
    removed = []
    patterns = (("blobs", ".*.tmp"), ("refs", "**/.*.tmp"), ("snapshots", "**/.*.tmp-link"))
    for folder, pattern in patterns:
        for leftover in (repo_dir / folder).glob(pattern):
            if not leftover.parent.resolve().is_relative_to(root):
                continue
            if leftover.is_symlink() or leftover.is_file():
                with contextlib.suppress(OSError):
                    leftover.unlink()
                    removed.append(leftover)
    return removed
