"""Content-addressed storage of the local hub's file bytes, and the git/LFS hashes of content.

The local hub keeps every file it serves on disk under its root directory, named by hash,
and keeps only metadata in memory::

    <root>/
      blobs/<sha256>        # LFS-tracked content, served by the CDN at /blobs/<sha256>
      git/<git-blob-sha1>   # regular (non-LFS) content, served by the hub on /resolve
      tmp/                  # partially written imports, renamed into place when hashed

`blobs/` is laid out so that a plain static server can stand in for the local CDN: nginx
with ``root <root>;`` serves ``GET /blobs/<sha256>`` with Range support (see
`LocalHub(redirect_base_url=...)`).

Hashes follow git and git-lfs exactly: a git blob id is
``sha1(b"blob %d\\0" % len(data) + data)``, an LFS pointer is the three-line text file
git-lfs commits in place of the content.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

COPY_CHUNK = 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    """Return the git blob id (sha1 of the ``blob <size>\\0`` header and the bytes) of `data`."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """Return the git-lfs pointer file committed to git in place of LFS content."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


@dataclass(frozen=True, slots=True)
class Content:
    """Hashes and size of one stored byte string (independent of any file name)."""

    size: int
    sha256: str
    git_sha1: str


class BlobStore:
    """Writes file content under `root` by hash; safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.git_dir = root / "git"
        self._tmp_dir = root / "tmp"
        for directory in (self.blobs_dir, self.git_dir, self._tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def lfs_path(self, sha256: str) -> Path:
        """Where LFS content with this sha256 lives (it may not exist)."""
        return self.blobs_dir / sha256

    def regular_path(self, git_sha1: str) -> Path:
        """Where regular content with this git blob id lives (it may not exist)."""
        return self.git_dir / git_sha1

    def put_bytes(self, data: bytes, *, lfs: bool) -> Content:
        """Store `data` (idempotent) and return its hashes."""
        content = Content(
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            git_sha1=git_blob_sha1(data),
        )
        target = self._target(content, lfs=lfs)
        if not target.exists():
            tmp = self._tmp_file()
            tmp.write_bytes(data)
            self._publish(tmp, target)
        return content

    def put_path(self, source: Path, *, lfs: bool) -> Content:
        """Copy `source` into the store in chunks while hashing it; never loads it whole.

        Raises:
            OSError: `source` cannot be read or the store cannot be written.
        """
        size = source.stat().st_size
        sha256 = hashlib.sha256()
        git = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        tmp = self._tmp_file()
        copied = 0
        with source.open("rb") as reader, tmp.open("wb") as writer:
            while chunk := reader.read(COPY_CHUNK):
                sha256.update(chunk)
                git.update(chunk)
                writer.write(chunk)
                copied += len(chunk)
        if copied != size:
            tmp.unlink(missing_ok=True)
            raise OSError(f"{source} changed size while being imported")
        content = Content(size=size, sha256=sha256.hexdigest(), git_sha1=git.hexdigest())
        target = self._target(content, lfs=lfs)
        if target.exists():
            tmp.unlink()
        else:
            self._publish(tmp, target)
        return content

    def ensure_layout(self, content: Content, *, lfs: bool) -> Path:
        """Make `content` available in the `lfs` (or regular) area too and return its path.

        The same bytes can be LFS under one name and regular under another.
        """
        target = self._target(content, lfs=lfs)
        if not target.exists():
            other = self._target(content, lfs=not lfs)
            tmp = self._tmp_file()
            shutil.copyfile(other, tmp)
            self._publish(tmp, target)
        return target

    def _target(self, content: Content, *, lfs: bool) -> Path:
        return self.lfs_path(content.sha256) if lfs else self.regular_path(content.git_sha1)

    def _tmp_file(self) -> Path:
        return self._tmp_dir / uuid.uuid4().hex

    def _publish(self, tmp: Path, target: Path) -> None:
        # rename is atomic: a concurrent reader never sees a half-written blob.
        with self._lock:
            os.replace(tmp, target)
