"""The pure availability rules."""

from __future__ import annotations

from datetime import UTC, datetime

from modeldepot.availability.judge import judge
from modeldepot.availability.schemas import AvailabilityStatus as S
from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.store.scan import FileObservation

OLD, NEW = "1" * 40, "2" * 40


def manifest(*sizes: int) -> Manifest:
    files = tuple(ManifestFile(f"f{i}", size, None) for i, size in enumerate(sizes))
    return Manifest("m", "hub", "a/b", "main", OLD, files, datetime.now(UTC))


def seen(*sizes: int | None) -> tuple[FileObservation, ...]:
    return tuple(FileObservation(f"f{i}", size is not None, size) for i, size in enumerate(sizes))


def test_complete_is_available() -> None:
    verdict = judge(manifest(1, 2), seen(1, 2), installed_commit=OLD, latest_commit=OLD)
    assert (verdict.status, verdict.is_available, verdict.present_bytes) == (S.AVAILABLE, True, 3)


def test_complete_but_stale_is_update_available() -> None:
    verdict = judge(manifest(1), seen(1), installed_commit=OLD, latest_commit=NEW)
    assert (verdict.status, verdict.is_available) == (S.UPDATE_AVAILABLE, True)


def test_unknown_latest_is_not_an_update() -> None:
    assert (
        judge(manifest(1), seen(1), installed_commit=OLD, latest_commit=None).status == S.AVAILABLE
    )


def test_missing_partial_and_corrupted() -> None:
    none = judge(manifest(1, 2), seen(None, None), installed_commit=None, latest_commit=OLD)
    assert (none.status, none.missing_files) == (S.MISSING, ("f0", "f1"))
    part = judge(manifest(1, 2), seen(1, None), installed_commit=OLD, latest_commit=OLD)
    assert (part.status, part.missing_files, part.is_available) == (S.PARTIAL, ("f1",), False)
    bad = judge(manifest(1, 2), seen(1, 3), installed_commit=OLD, latest_commit=OLD)
    assert (bad.status, bad.wrong_size_files) == (S.CORRUPTED, ("f1",))


def test_no_manifest_is_missing() -> None:
    assert judge(None, (), installed_commit=None, latest_commit=None).status == S.MISSING


def test_complete_without_an_installed_commit_is_partial_never_available() -> None:
    """No ref: huggingface_hub cannot find the snapshot, however complete (issue 8)."""
    for latest in (OLD, NEW, None):
        verdict = judge(manifest(1, 2), seen(1, 2), installed_commit=None, latest_commit=latest)
        assert (verdict.status, verdict.is_available) == (S.PARTIAL, False)
        assert (verdict.missing_files, verdict.wrong_size_files) == ((), ())
        assert verdict.present_bytes == 3
