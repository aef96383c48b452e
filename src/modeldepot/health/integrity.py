"""Integrity of an installed model: a pure verdict, and the blocking IO that observes files.

Owns the answer to "are this snapshot's bytes the manifest's bytes?". As STYLE.md asks,
:func:`judge` is a pure function from (manifest files, observations) to a frozen
:class:`IntegrityReport`; :func:`observe_file` and :func:`observe_files` do the IO
(``lstat``, resolve, open, hash, structure check) and block, so callers run them in a worker
thread, never on the event loop.

Checks
    full   every present file of the right size is hashed now: sha256 for LFS files, the
           git blob id ``sha1(b"blob <size>\\0" + data)`` for small hub files, as the
           manifest's digest says. Every file is structure-checked
           (:mod:`modeldepot.health.structure`; pickles are never opened, only hashed).
    quick  sizes and structure of every file; a file is re-hashed only when its
           (size, mtime_ns, inode) differ from its last full verification
           (:class:`KnownDigest`, see :func:`known_digests`) or that verification did not
           match the manifest. A byte rewritten in place with its mtime restored is found
           only by a full check.

Rules of :func:`judge`
    A file *verifies* when its snapshot entry resolves inside the models directory to a
    regular file of the manifest's size whose digest equals the manifest's (hashed now, or
    in a quick check cached for the same size, mtime and inode) and whose structure is
    sound. A file the manifest pins no digest for verifies on its size (on its presence
    when no size is known either).

    Each file gets at most one issue, the first that applies: ``missing`` (no entry, or not
    a regular file), ``broken_link`` (a link whose target is gone or loops),
    ``outside_root`` (an entry resolving outside the models directory: never opened),
    ``wrong_size``, ``wrong_hash`` (also a file that could not be read to the end),
    ``bad_structure``.

    ``integrity_score`` is the share of the manifest's bytes that verified (the share of
    files when every file is empty; 0.0 for an empty manifest). ``overall_health``:

    ========= ==============================================================================
    missing   no file of the manifest is present (every entry is missing, a broken link or
              outside the root), or the manifest is empty
    corrupted otherwise, some file has ``wrong_size``, ``wrong_hash`` or ``bad_structure``
    degraded  otherwise, some file is missing, a broken link or outside the root
    healthy   no issue at all; the score is then 1.0
    ========= ==============================================================================

    ``recommendations`` say what to do: which repair re-fetches which files, or that a
    malformed file matches its published digest, so re-fetching cannot fix it.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.downloads.hashing import new_hasher
from modeldepot.health.structure import StructureReport, check_structure
from modeldepot.ids import parse_digest

IssueKind = Literal[
    "missing", "wrong_size", "wrong_hash", "bad_structure", "broken_link", "outside_root"
]
CheckMode = Literal["full", "quick"]
OverallHealth = Literal["healthy", "degraded", "corrupted", "missing"]
EntryState = Literal["present", "missing", "broken_link", "outside_root", "unreadable"]
DigestSource = Literal["hashed", "cached"]

_ABSENT: dict[EntryState, IssueKind] = {
    "missing": "missing",
    "broken_link": "broken_link",
    "outside_root": "outside_root",
}
_ABSENT_DETAIL: dict[EntryState, str] = {
    "missing": "no file in the snapshot",
    "broken_link": "the snapshot link points at nothing",
    "outside_root": "the snapshot entry resolves outside the models directory (not followed)",
}
_CORRUPTION: frozenset[IssueKind] = frozenset({"wrong_size", "wrong_hash", "bad_structure"})


@dataclass(frozen=True)
class FileIssue:
    """What is wrong with one file, in words a user can act on."""

    path: str
    kind: IssueKind
    detail: str


@dataclass(frozen=True)
class KnownDigest:
    """The digest a full hash produced for a file as it was: same size, mtime and inode."""

    size: int
    mtime_ns: int
    inode: int
    digest: str

    def still_describes(self, info: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (
            info.st_size,
            info.st_mtime_ns,
            info.st_ino,
        )


@dataclass(frozen=True)
class FileEvidence:
    """What one manifest file's snapshot entry looked like when it was observed.

    ``digest`` is ``algorithm:hex``; ``digest_source`` says whether it was hashed now or
    taken from a :class:`KnownDigest` because the file had not changed. ``detail`` explains
    a state other than ``present``.
    """

    path: str
    state: EntryState
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    digest: str | None = None
    digest_source: DigestSource | None = None
    structure: StructureReport | None = None
    detail: str | None = None

    def known_digest(self) -> KnownDigest | None:
        """What a later quick check may trust: a digest hashed now, with the file's stat."""
        if self.digest_source != "hashed" or self.digest is None:
            return None
        if self.size is None or self.mtime_ns is None or self.inode is None:
            return None
        return KnownDigest(self.size, self.mtime_ns, self.inode, self.digest)


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one manifest file. ``hashed``: its bytes were read and hashed in this
    check (not taken from a cached full verification). ``verified``: see the module rules.
    """

    path: str
    size_expected: int | None
    size_seen: int | None
    digest_expected: str | None
    digest_seen: str | None
    structure: StructureReport | None
    issue: FileIssue | None
    verified: bool = False
    hashed: bool = False


@dataclass(frozen=True)
class IntegrityReport:
    """The verdict on a whole snapshot against its manifest (rules in the module doc)."""

    checked_at: datetime
    mode: CheckMode
    files: tuple[FileCheck, ...]
    integrity_score: float
    overall_health: OverallHealth
    issues: tuple[FileIssue, ...]
    recommendations: tuple[str, ...]
    bytes_expected: int = 0
    bytes_verified: int = 0

    @property
    def corruption_detected(self) -> bool:
        return self.overall_health == "corrupted"

    @property
    def files_hashed(self) -> int:
        """How many files this check read and hashed (0 for an unchanged model, quick)."""
        return sum(1 for f in self.files if f.hashed)


# --- the verdict (pure) ------------------------------------------------------------------


def judge(
    manifest_files: Sequence[ManifestFile],
    observations: Iterable[FileEvidence],
    *,
    mode: CheckMode,
    checked_at: datetime,
) -> IntegrityReport:
    """Judge observed files against the manifest. Pure: no IO, no clock (``checked_at`` is
    the caller's). A manifest file without an observation counts as missing; observations
    of files outside the manifest are ignored.

    Raises:
        ValueError: an observation breaks the contract of :func:`observe_file`: a cached
            digest in a full check, or a present file of the right size without the digest
            its manifest entry pins.
    """
    seen = {o.path: o for o in observations}
    checks = tuple(_check_file(f, seen.get(f.path), mode=mode) for f in manifest_files)
    weights = [_weight(c) for c in checks]
    expected = sum(weights)
    verified = sum(w for w, c in zip(weights, checks, strict=True) if c.verified)
    if expected:
        score = verified / expected
    else:
        score = sum(c.verified for c in checks) / len(checks) if checks else 0.0
    health = _overall_health(checks)
    return IntegrityReport(
        checked_at=checked_at,
        mode=mode,
        files=checks,
        integrity_score=score,
        overall_health=health,
        issues=tuple(c.issue for c in checks if c.issue is not None),
        recommendations=_recommendations(checks, health),
        bytes_expected=expected,
        bytes_verified=verified,
    )


def _check_file(
    manifest_file: ManifestFile, observation: FileEvidence | None, *, mode: CheckMode
) -> FileCheck:
    if observation is None:
        observation = FileEvidence(manifest_file.path, "missing", detail="not observed")
    if mode == "full" and observation.digest_source == "cached":
        raise ValueError(f"a full check must hash {manifest_file.path}, not reuse a digest")
    issue = _file_issue(manifest_file, observation)
    return FileCheck(
        path=manifest_file.path,
        size_expected=manifest_file.size,
        size_seen=observation.size,
        digest_expected=manifest_file.digest,
        digest_seen=observation.digest,
        structure=observation.structure,
        issue=issue,
        verified=issue is None,
        hashed=observation.digest_source == "hashed",
    )


def _file_issue(expected: ManifestFile, seen: FileEvidence) -> FileIssue | None:
    path = expected.path
    absent = _ABSENT.get(seen.state)
    if absent is not None:
        return FileIssue(path, absent, seen.detail or _ABSENT_DETAIL[seen.state])
    if seen.state == "unreadable":
        return FileIssue(path, "wrong_hash", f"could not be read: {seen.detail or 'read error'}")
    if expected.size is not None and seen.size != expected.size:
        return FileIssue(path, "wrong_size", f"{seen.size} bytes, expected {expected.size}")
    if expected.digest is not None:
        if seen.digest is None:
            raise ValueError(f"the observation of {path} carries no digest to verify")
        if seen.digest != expected.digest:
            source = " (cached)" if seen.digest_source == "cached" else ""
            detail = f"digest {_short(seen.digest)}{source}, expected {_short(expected.digest)}"
            if seen.structure is not None and not seen.structure.ok:
                # The bytes differ from the published file; say how that shows, too.
                detail += "; structure: " + "; ".join(seen.structure.problems[:3])
            return FileIssue(path, "wrong_hash", detail)
    if seen.structure is not None and not seen.structure.ok:
        return FileIssue(path, "bad_structure", "; ".join(seen.structure.problems[:3]))
    return None


def _weight(check: FileCheck) -> int:
    if check.size_expected is not None:
        return check.size_expected
    return check.size_seen if check.verified and check.size_seen is not None else 0


def _overall_health(checks: tuple[FileCheck, ...]) -> OverallHealth:
    kinds = {c.issue.kind for c in checks if c.issue is not None}
    absent = sum(1 for c in checks if c.issue is not None and c.issue.kind in _ABSENT.values())
    if absent == len(checks):
        return "missing"
    if kinds & _CORRUPTION:
        return "corrupted"
    return "degraded" if kinds else "healthy"


def _recommendations(checks: tuple[FileCheck, ...], health: OverallHealth) -> tuple[str, ...]:
    if health == "healthy":
        return ()
    if health == "missing":
        what = "its only file is" if len(checks) == 1 else f"none of its {len(checks)} files is"
        return (f"run repair (redownload) to fetch the model: {what} present",)
    bad = [c for c in checks if c.issue is not None]
    upstream = [c.path for c in bad if _broken_upstream(c)]
    refetch = [c.path for c in bad if not _broken_upstream(c)]
    escaping = [c.path for c in bad if c.issue is not None and c.issue.kind == "outside_root"]
    advice = []
    if refetch:
        advice.append(
            f"run repair (auto) to re-fetch {_plural(len(refetch), 'file')}: {_names(refetch)}"
        )
    if escaping:
        these = (
            "the snapshot entry leads outside the models directory and was not followed; "
            "repair replaces it"
            if len(escaping) == 1
            else "these snapshot entries lead outside the models directory and were not "
            "followed; repair replaces them"
        )
        advice.append(f"{_names(escaping)}: {these}")
    if upstream:
        advice.append(
            f"{_names(upstream)}: malformed but identical to the published file; re-fetching "
            "will not help, the upstream file itself is broken"
        )
    return tuple(advice)


def _broken_upstream(check: FileCheck) -> bool:
    """Bad structure although the bytes are exactly the ones the hub published."""
    return (
        check.issue is not None
        and check.issue.kind == "bad_structure"
        and check.digest_expected is not None
        and check.digest_seen == check.digest_expected
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _names(paths: list[str], shown: int = 3) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _short(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}"


# --- observation (blocking IO) -----------------------------------------------------------


def observe_files(
    *,
    root: Path,
    snapshot_dir: Path,
    files: Iterable[ManifestFile],
    mode: CheckMode,
    known: Mapping[str, KnownDigest] | None = None,
) -> tuple[FileEvidence, ...]:
    """Observe every manifest file in ``snapshot_dir``: hash all of them (``full``) or only
    those ``known`` has no still-valid digest for (``quick``). Blocking.

    Raises:
        nothing for what is found on disk (see :func:`observe_file`).
    """
    known = known or {}
    return tuple(
        observe_file(
            root=root,
            snapshot_dir=snapshot_dir,
            manifest_file=f,
            hash=mode == "full",
            known=known.get(f.path),
        )
        for f in files
    )


def known_digests(observations: Iterable[FileEvidence]) -> dict[str, KnownDigest]:
    """The digests hashed in a check, by path, for later quick checks to reuse."""
    found = ((o.path, o.known_digest()) for o in observations)
    return {path: known for path, known in found if known is not None}


def observe_file(
    *,
    root: Path,
    snapshot_dir: Path,
    manifest_file: ManifestFile,
    hash: bool,
    known: KnownDigest | None = None,
) -> FileEvidence:
    """Observe ``snapshot_dir / manifest_file.path`` inside the models directory ``root``.

    The entry is ``lstat``-ed, then resolved; whatever resolves outside ``root`` (a link,
    or a linked parent directory) is reported ``outside_root`` and never opened (RELIABILITY
    item 4; containment is ``Path.is_relative_to`` on resolved paths). A contained regular
    file is opened once (no following of a link swapped in meanwhile, no blocking on a
    FIFO), its size, mtime and inode recorded, its structure checked, and it is hashed in
    large blocks with the manifest digest's algorithm when ``hash`` is true, or when
    ``known`` does not describe it unchanged with the manifest's digest. No hash is
    computed for a file of the wrong size or one the manifest pins no digest for. Blocking:
    run it in a worker thread.

    Raises:
        nothing for what is found on disk: every OSError becomes part of the observation.
    """
    relpath = manifest_file.path
    entry = snapshot_dir / relpath
    try:
        is_link = stat.S_ISLNK(entry.lstat().st_mode)
    except OSError:
        return FileEvidence(relpath, "missing")
    try:
        target = entry.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return FileEvidence(relpath, "broken_link", detail="the snapshot link loops")
    if not target.is_relative_to(root.resolve()):
        return FileEvidence(relpath, "outside_root")
    try:
        handle = _open_contained(target)
    except FileNotFoundError:
        return FileEvidence(relpath, "broken_link" if is_link else "missing")
    except OSError as exc:
        return FileEvidence(relpath, "unreadable", detail=exc.strerror or str(exc))
    if handle is None:
        return FileEvidence(relpath, "missing", detail="the snapshot entry is not a file")
    with handle:
        return _observe_open_file(
            handle, target=target, manifest_file=manifest_file, hash=hash, known=known
        )


def _observe_open_file(
    handle: io.FileIO,
    *,
    target: Path,
    manifest_file: ManifestFile,
    hash: bool,
    known: KnownDigest | None,
) -> FileEvidence:
    relpath = manifest_file.path
    info = os.fstat(handle.fileno())
    observed = FileEvidence(
        relpath,
        "present",
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        inode=info.st_ino,
        structure=check_structure(target, relpath),
    )
    expected = manifest_file.digest
    if expected is None or (manifest_file.size not in (None, info.st_size)):
        return observed
    if not hash and known is not None and known.digest == expected and known.still_describes(info):
        return _with_digest(observed, known.digest, "cached")
    try:
        digest = _hash_open_file(handle, algorithm=parse_digest(expected)[0], size=info.st_size)
    except OSError as exc:
        return FileEvidence(relpath, "unreadable", detail=exc.strerror or str(exc))
    return _with_digest(observed, digest, "hashed")


def _with_digest(seen: FileEvidence, digest: str, source: DigestSource) -> FileEvidence:
    return FileEvidence(
        seen.path,
        seen.state,
        size=seen.size,
        mtime_ns=seen.mtime_ns,
        inode=seen.inode,
        digest=digest,
        digest_source=source,
        structure=seen.structure,
    )


def _open_contained(target: Path) -> io.FileIO | None:
    """Open an already resolved and contained path if it is a regular file (else None).

    O_NOFOLLOW: a link swapped in after the containment check is refused, not followed;
    O_NONBLOCK: a FIFO cannot hang the check.

    Raises:
        OSError: from ``open`` or ``fstat``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(target, flags)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _hash_open_file(handle: io.FileIO, *, algorithm: str, size: int) -> str:
    """``algorithm:hex`` of the whole file, read in large blocks by ``hashlib.file_digest``
    (the hash releases the GIL, so checks in threads run in parallel).

    Raises:
        OSError: from the reads.
    """
    handle.seek(0)
    hasher = new_hasher(algorithm, size)
    return f"{algorithm}:{hashlib.file_digest(handle, lambda: hasher).hexdigest()}"
