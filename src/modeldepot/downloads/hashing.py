"""Hashing while downloading: a thread that follows the written prefix of a file.

Segments arrive out of order, so the hasher reads back (from the page cache) the prefix
of the partial file that is complete, as it grows. When the last byte lands only the tail
is left to hash, which is what makes "last byte -> AVAILABLE" fast for big files. The
digests are the manifest's: sha256 for LFS files, the git blob id for small hub files.
"""

from __future__ import annotations

import hashlib
import os
import threading

BLOCK = 8 * 1024 * 1024


def new_hasher(algorithm: str, size: int) -> hashlib._Hash:
    if algorithm == "gitsha1":
        hasher = hashlib.sha1(usedforsecurity=False)
        hasher.update(b"blob %d\0" % size)
        return hasher
    return hashlib.sha256()


class TrailingHasher:
    """Hashes ``fd`` sequentially up to a frontier that the downloader advances."""

    def __init__(self, fd: int, *, algorithm: str, size: int) -> None:
        self._fd = fd
        self._size = size
        self._hasher = new_hasher(algorithm, size)
        self._hashed = 0
        self._frontier = 0
        self._stopped = False
        self._cond = threading.Condition()
        # One buffer for the whole file: a fresh 8 MiB bytes object per block would cost an
        # mmap, zeroed page faults and a munmap each time.
        self._view = memoryview(bytearray(min(BLOCK, size) or 1))

    @property
    def hashed(self) -> int:
        return self._hashed

    def advance(self, frontier: int) -> None:
        with self._cond:
            if frontier > self._frontier:
                self._frontier = min(frontier, self._size)
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> str | None:
        """Blocking: hash until the whole file is hashed (hex digest) or stopped (None)."""
        while self._hashed < self._size:
            with self._cond:
                while self._frontier <= self._hashed and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return None
                frontier = self._frontier
            while self._hashed < frontier:
                want = min(BLOCK, frontier - self._hashed)
                got = os.preadv(self._fd, [self._view[:want]], self._hashed)
                if not got:
                    return None
                self._hasher.update(self._view[:got])
                self._hashed += got
        return self._hasher.hexdigest()
