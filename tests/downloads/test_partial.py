"""The partial file's write path: bytes land at their offsets, and each finished 16 MiB
chunk is handed to the kernel's writeback at once (so the final fsync finds little left)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modeldepot.downloads import partial
from modeldepot.downloads.partial import WRITEBACK_CHUNK, PartialFile

MIB = 1024 * 1024


def test_finished_chunks_are_sent_to_writeback_and_bytes_land_where_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = partial._sync_file_range
    calls: list[tuple[int, int]] = []

    def recording(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append((offset, length))
        return real(fd, offset, length, flags) if real is not None else 0

    monkeypatch.setattr(partial, "_sync_file_range", recording)
    size = 2 * WRITEBACK_CHUNK + 3 * MIB
    data = os.urandom(size)
    file = PartialFile(tmp_path, "k" * 64, size)
    file.open(etag=None)
    try:
        for offset in range(0, size, 3 * MIB):  # writes straddle the chunk boundaries
            file.write(memoryview(data)[offset : offset + 3 * MIB], offset)
    finally:
        file.close()

    assert calls == [(0, WRITEBACK_CHUNK), (WRITEBACK_CHUNK, WRITEBACK_CHUNK)]
    assert file.path.read_bytes() == data


def test_writeback_hint_never_fails_a_download(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.close(fd)
    partial.start_writeback(fd, 0, WRITEBACK_CHUNK)  # a closed descriptor: EBADF, ignored
