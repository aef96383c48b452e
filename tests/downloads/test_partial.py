"""The partial file's writeback hint: each whole chunk of the written prefix goes to the
disk at once, in file order, and the hint never fails a download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modeldepot.downloads.segments import SegmentPlan
from modeldepot.store import partial
from modeldepot.store.partial import WRITEBACK_CHUNK, PartialFile


def read_plan(data: object, size: int) -> SegmentPlan | None:
    return SegmentPlan.from_json(data, size=size)


MIB = 1024 * 1024


def test_whole_chunks_of_the_written_prefix_are_sent_to_writeback_in_order(
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
    file = PartialFile(tmp_path, "k" * 64, size, read_progress=read_plan)
    file.open(etag=None)
    try:
        # The second half lands first (another connection), then the first half.
        half = size // 2
        file.write(memoryview(data)[half:], half)
        file.written_prefix(0)
        file.write(memoryview(data)[:half], 0)
        file.written_prefix(half - 1)  # not a whole chunk past the first one yet
        file.written_prefix(WRITEBACK_CHUNK + 5)
        file.written_prefix(size)  # the end: the tail goes too
        file.written_prefix(size)  # nothing twice
    finally:
        file.close()

    assert calls == [
        (0, WRITEBACK_CHUNK),
        (WRITEBACK_CHUNK, WRITEBACK_CHUNK + 3 * MIB),
    ]
    assert file.path.read_bytes() == data


def test_writeback_hint_never_fails_a_download(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.close(fd)
    partial.start_writeback(fd, 0, WRITEBACK_CHUNK)  # a closed descriptor: EBADF, ignored


def test_verified_bytes_leave_the_page_cache_behind_a_window_and_stay_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped: list[tuple[int, int]] = []
    real = partial.drop_cached

    def recording(fd: int, offset: int, length: int) -> None:
        dropped.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(partial, "drop_cached", recording)
    size = partial.CACHE_WINDOW + 3 * WRITEBACK_CHUNK
    data = os.urandom(size)
    file = PartialFile(tmp_path, "k" * 64, size, read_progress=read_plan)
    file.open(etag=None)
    try:
        file.write(memoryview(data), 0)
        file.release_behind(partial.CACHE_WINDOW)  # nothing beyond the window yet
        file.release_behind(partial.CACHE_WINDOW + WRITEBACK_CHUNK + MIB)
        file.release_behind(size)
        file.release_behind(size)  # nothing twice
    finally:
        file.close()

    assert dropped == [(0, WRITEBACK_CHUNK), (WRITEBACK_CHUNK, 2 * WRITEBACK_CHUNK)]
    assert file.path.read_bytes() == data
