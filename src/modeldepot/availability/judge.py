"""Pure judgement of a model's availability from its manifest and what is on disk.

Rules (in order):

* no manifest known and nothing installed -> MISSING (files unknown);
* every manifest file present with its manifest size:
  - and a commit installed (the ref names it) -> AVAILABLE, or UPDATE_AVAILABLE when the
    tracked revision now points at another commit than the installed one;
  - but nothing installed (no ref) -> PARTIAL with no missing files: huggingface_hub finds
    a snapshot through its ref, so it cannot load these files yet (a download that failed
    after linking every file, before switching the ref). AVAILABLE is only ever reported
    after the ref is switched (issue 8);
* any file present with a wrong size -> CORRUPTED (``corruption_detected``);
* some files present -> PARTIAL; none -> MISSING.

``is_available`` is true exactly for AVAILABLE and UPDATE_AVAILABLE. A broken snapshot
link, or a link that leaves the models directory, counts as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldepot.availability.schemas import AvailabilityStatus
from modeldepot.catalog.manifest import Manifest
from modeldepot.store.scan import FileObservation


@dataclass(frozen=True)
class Judgement:
    status: AvailabilityStatus
    is_available: bool
    missing_files: tuple[str, ...]
    wrong_size_files: tuple[str, ...]
    present_bytes: int


def judge(
    manifest: Manifest | None,
    files: tuple[FileObservation, ...],
    *,
    installed_commit: str | None,
    latest_commit: str | None,
) -> Judgement:
    """Classify a model; ``files`` observes ``manifest.files`` in the same order."""
    if manifest is None or not manifest.files:
        return Judgement(AvailabilityStatus.MISSING, False, (), (), 0)
    missing: list[str] = []
    wrong: list[str] = []
    present_bytes = 0
    for expected, seen in zip(manifest.files, files, strict=True):
        if not seen.present:
            missing.append(expected.path)
        elif expected.size is not None and seen.size != expected.size:
            wrong.append(expected.path)
        else:
            present_bytes += seen.size or 0
    if not missing and not wrong and installed_commit is None:
        return Judgement(AvailabilityStatus.PARTIAL, False, (), (), present_bytes)
    if not missing and not wrong:
        stale = latest_commit is not None and installed_commit != latest_commit
        status = AvailabilityStatus.UPDATE_AVAILABLE if stale else AvailabilityStatus.AVAILABLE
        return Judgement(status, True, (), (), present_bytes)
    if wrong:
        status = AvailabilityStatus.CORRUPTED
    elif len(missing) < len(manifest.files):
        status = AvailabilityStatus.PARTIAL
    else:
        status = AvailabilityStatus.MISSING
    return Judgement(status, False, tuple(missing), tuple(wrong), present_bytes)
