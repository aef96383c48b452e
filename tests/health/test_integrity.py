"""Integrity checks over real hub-cache snapshots on disk (blobs + relative symlinks).

Each fault a user can meet is made for real (a flipped byte, a truncated or deleted file,
a broken or escaping link, a malformed header, a pickle payload) and must come out as the
right issue, score, overall health and recommendation, through the same observe -> judge
path the service uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import struct
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.health.integrity import (
    CheckMode,
    FileEvidence,
    IntegrityReport,
    KnownDigest,
    judge,
    known_digests,
    observe_file,
    observe_files,
)
from modeldepot.health.structure import StructureReport
from modeldepot.testing.generators import demo_repo_files, make_safetensors

COMMIT = "c0ffee" + "0" * 34
NOW = datetime(2025, 1, 1, tzinfo=UTC)
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")
SHARD = "transformer/diffusion_pytorch_model-00001-of-00002.safetensors"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Snapshot:
    """A model installed the way huggingface_hub installs one."""

    root: Path
    dir: Path
    files: tuple[ManifestFile, ...]

    def entry(self, relpath: str) -> Path:
        return self.dir / relpath

    def blob(self, relpath: str) -> Path:
        return self.entry(relpath).resolve()

    def observe(
        self, mode: CheckMode, known: Mapping[str, KnownDigest] | None = None
    ) -> tuple[FileEvidence, ...]:
        return observe_files(
            root=self.root, snapshot_dir=self.dir, files=self.files, mode=mode, known=known
        )

    def check(
        self, mode: CheckMode = "full", known: Mapping[str, KnownDigest] | None = None
    ) -> IntegrityReport:
        return judge(self.files, self.observe(mode, known), mode=mode, checked_at=NOW)

    def size(self, relpath: str) -> int:
        (file,) = [f for f in self.files if f.path == relpath]
        assert file.size is not None
        return file.size

    @property
    def total(self) -> int:
        return sum(f.size or 0 for f in self.files)


def install(
    root: Path, files: Mapping[str, bytes], *, repo: str = "models--acme--tiny"
) -> Snapshot:
    """Blobs named by digest, snapshot entries as relative links, manifest to match.

    LFS-style files are pinned by sha256, small ones by git blob id, as the hub does.
    """
    repo_dir = root / repo
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    manifest = []
    for relpath, data in sorted(files.items()):
        if relpath.endswith(LFS_SUFFIXES):
            algorithm, hexdigest = "sha256", hashlib.sha256(data).hexdigest()
        else:
            algorithm, hexdigest = "gitsha1", git_blob_sha1(data)
        blob = repo_dir / "blobs" / hexdigest
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / COMMIT / relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
        manifest.append(ManifestFile(relpath, len(data), f"{algorithm}:{hexdigest}"))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return Snapshot(root=root, dir=repo_dir / "snapshots" / COMMIT, files=tuple(manifest))


@pytest.fixture
def model(tmp_path: Path) -> Snapshot:
    """The demo diffusers video model: configs, shards, an index, a text encoder, a .pth."""
    return install(tmp_path / "models", demo_repo_files("t2v"))


def flip_byte(path: Path, offset: int, *, keep_mtime: bool = False) -> None:
    info = path.stat()
    with path.open("r+b") as handle:
        handle.seek(offset)
        (byte,) = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte ^ 0xFF]))
    # Filesystem timestamps can be coarse: set the mtime explicitly either way.
    mtime = info.st_mtime_ns if keep_mtime else info.st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(info.st_atime_ns, mtime))


def issue_kinds(report: IntegrityReport) -> dict[str, str]:
    return {issue.path: issue.kind for issue in report.issues}


# --- a healthy model -------------------------------------------------------------------------


def test_an_intact_model_is_healthy_in_both_checks(model: Snapshot) -> None:
    full = model.check("full")
    assert full.overall_health == "healthy"
    assert full.integrity_score == 1.0
    assert full.issues == ()
    assert full.recommendations == ()
    assert full.bytes_verified == full.bytes_expected == model.total
    assert full.files_hashed == len(model.files)
    assert all(f.verified and f.structure is not None and f.structure.ok for f in full.files)
    assert not full.corruption_detected
    assert full.checked_at == NOW
    assert full.mode == "full"

    quick = model.check("quick")
    assert quick.overall_health == "healthy"
    assert quick.integrity_score == 1.0


def test_git_blob_ids_are_computed_like_git(tmp_path: Path) -> None:
    """``git hash-object`` of "hello\\n" is ce0136...; a wrong git id is a wrong hash."""
    snapshot = install(tmp_path, {"hello.txt": b"hello\n", "config.json": b"{}"})
    assert snapshot.files[1].digest == "gitsha1:ce013625030ba8dba906f756967f9e9ca394464a"
    report = snapshot.check("full")
    assert report.overall_health == "healthy"
    assert [f.digest_seen for f in report.files] == [f.digest for f in snapshot.files]

    flip_byte(snapshot.blob("hello.txt"), 0)
    report = snapshot.check("full")
    assert issue_kinds(report) == {"hello.txt": "wrong_hash"}
    assert report.overall_health == "corrupted"


def test_snapshot_entries_may_be_plain_files(tmp_path: Path) -> None:
    """Caches made without symlink support hold copies instead of links."""
    snapshot = install(tmp_path, {"config.json": b'{"a": 1}'})
    entry = snapshot.entry("config.json")
    data = entry.read_bytes()
    entry.unlink()
    entry.write_bytes(data)
    assert snapshot.check("full").overall_health == "healthy"


# --- corruption ------------------------------------------------------------------------------


def test_a_flipped_byte_in_a_shard_is_found_by_a_full_check(model: Snapshot) -> None:
    baseline = model.observe("full")
    flip_byte(model.blob(SHARD), model.size(SHARD) - 10, keep_mtime=True)

    report = model.check("full")
    assert issue_kinds(report) == {SHARD: "wrong_hash"}
    (issue,) = report.issues
    assert issue.detail.startswith("digest sha256:")
    assert report.overall_health == "corrupted"
    assert report.corruption_detected
    assert report.integrity_score == pytest.approx(1 - model.size(SHARD) / model.total)
    assert report.bytes_verified == model.total - model.size(SHARD)
    assert report.recommendations == (f"run repair (auto) to re-fetch 1 file: {SHARD}",)
    # The bytes changed in the tensor data, so the header still parses.
    (check,) = [f for f in report.files if f.path == SHARD]
    assert check.structure is not None
    assert check.structure.ok

    # Same size, same inode and the mtime put back: a quick check trusts its cache.
    quick = model.check("quick", known_digests(baseline))
    assert quick.overall_health == "healthy"
    assert quick.files_hashed == 0


def test_a_quick_check_rehashes_a_file_whose_mtime_changed(model: Snapshot) -> None:
    known = known_digests(model.observe("full"))
    flip_byte(model.blob(SHARD), model.size(SHARD) - 1)

    report = model.check("quick", known)
    assert report.files_hashed == 1
    assert issue_kinds(report) == {SHARD: "wrong_hash"}
    assert report.overall_health == "corrupted"


def test_a_truncated_file_is_a_wrong_size_and_is_not_hashed(model: Snapshot) -> None:
    blob = model.blob(SHARD)
    os.truncate(blob, model.size(SHARD) - 100)

    for mode in ("full", "quick"):
        report = model.check(mode)
        assert issue_kinds(report) == {SHARD: "wrong_size"}
        (issue,) = report.issues
        assert issue.detail == f"{model.size(SHARD) - 100} bytes, expected {model.size(SHARD)}"
        (check,) = [f for f in report.files if f.path == SHARD]
        assert check.digest_seen is None
        assert not check.hashed
        # The structure check saw it too: the last tensor runs past the end.
        assert check.structure is not None
        assert not check.structure.ok
        assert report.overall_health == "corrupted"
        assert report.integrity_score == pytest.approx(1 - model.size(SHARD) / model.total)


def test_a_grown_file_is_a_wrong_size(model: Snapshot) -> None:
    with model.blob("config.json").open("ab") as handle:
        handle.write(b"\n")
    report = model.check("full")
    assert issue_kinds(report) == {"config.json": "wrong_size"}
    assert report.overall_health == "corrupted"


# --- missing files and links ---------------------------------------------------------------


def test_a_deleted_file_is_missing_and_the_model_degraded(model: Snapshot) -> None:
    model.entry("vae/config.json").unlink()

    report = model.check("full")
    assert issue_kinds(report) == {"vae/config.json": "missing"}
    assert report.overall_health == "degraded"
    assert report.integrity_score == pytest.approx(1 - model.size("vae/config.json") / model.total)
    assert report.recommendations == ("run repair (auto) to re-fetch 1 file: vae/config.json",)


def test_a_deleted_blob_leaves_a_broken_link(model: Snapshot) -> None:
    model.blob(SHARD).unlink()
    report = model.check("full")
    assert issue_kinds(report) == {SHARD: "broken_link"}
    assert report.issues[0].detail == "the snapshot link points at nothing"
    assert report.overall_health == "degraded"


def test_a_link_loop_is_a_broken_link(tmp_path: Path) -> None:
    snapshot = install(tmp_path, {"a.json": b"{}", "b.json": b"[]"})
    snapshot.entry("a.json").unlink()
    os.symlink("a.json", snapshot.entry("a.json"))
    report = snapshot.check("full")
    assert issue_kinds(report) == {"a.json": "broken_link"}


def test_a_directory_where_a_file_belongs_is_missing(tmp_path: Path) -> None:
    snapshot = install(tmp_path, {"a.json": b"{}", "b.json": b"[]"})
    snapshot.entry("a.json").unlink()
    snapshot.entry("a.json").mkdir()
    report = snapshot.check("full")
    assert issue_kinds(report) == {"a.json": "missing"}
    assert report.issues[0].detail == "the snapshot entry is not a file"


def test_nothing_installed_is_missing(tmp_path: Path) -> None:
    snapshot = install(tmp_path, {"a.json": b"{}", "b.safetensors": make_safetensors({})})
    for f in snapshot.files:
        snapshot.entry(f.path).unlink()
    report = snapshot.check("quick")
    assert report.overall_health == "missing"
    assert report.integrity_score == 0.0
    assert set(issue_kinds(report).values()) == {"missing"}
    assert report.recommendations == (
        "run repair (redownload) to fetch the model: none of its 2 files is present",
    )


def test_a_link_out_of_the_models_directory_is_never_followed(tmp_path: Path) -> None:
    """The outside target is a FIFO: opening it for reading would block the test."""
    snapshot = install(tmp_path / "models", {"config.json": b"{}", "model.bin": b"x" * 64})
    outside = tmp_path / "outside"
    os.mkfifo(outside)
    entry = snapshot.entry("model.bin")
    entry.unlink()
    os.symlink(os.path.relpath(outside, entry.parent), entry)

    for mode in ("full", "quick"):
        report = snapshot.check(mode)
        assert issue_kinds(report) == {"model.bin": "outside_root"}
        assert report.overall_health == "degraded"
        assert report.integrity_score == pytest.approx(2 / 66)
        assert report.recommendations == (
            "run repair (auto) to re-fetch 1 file: model.bin",
            "model.bin: the snapshot entry leads outside the models directory and was not "
            "followed; repair replaces it",
        )


def test_a_correct_file_outside_the_root_still_does_not_count(tmp_path: Path) -> None:
    data = b"the right bytes, in the wrong place"
    snapshot = install(tmp_path / "models", {"weights.safetensors": data})
    outside = tmp_path / "elsewhere" / "weights.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(data)
    entry = snapshot.entry("weights.safetensors")
    entry.unlink()
    os.symlink(outside, entry)  # absolute this time

    (observation,) = snapshot.observe("full")
    assert observation.state == "outside_root"
    assert observation.size is None
    assert observation.digest is None
    assert snapshot.check("full").overall_health == "missing"


def test_a_linked_directory_leading_out_is_outside_root(tmp_path: Path) -> None:
    snapshot = install(tmp_path / "models", {"vae/config.json": b"{}", "config.json": b"{}"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_bytes(b"{}")
    vae = snapshot.entry("vae")
    (vae / "config.json").unlink()
    vae.rmdir()
    os.symlink(elsewhere, vae)
    assert issue_kinds(snapshot.check("full")) == {"vae/config.json": "outside_root"}


# --- structure -----------------------------------------------------------------------------


def header_file(header: Mapping[str, object] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


MALFORMED = {
    "offsets past the end": header_file({"w": entry("U8", [64], 0, 64)}, b"\0" * 16),
    "overlapping tensors": header_file(
        {"a": entry("U8", [8], 0, 8), "b": entry("U8", [8], 4, 12)}, b"\0" * 12
    ),
    "wrong dtype": header_file({"w": entry("Q4_K", [8], 0, 8)}, b"\0" * 8),
    "shape/size mismatch": header_file({"w": entry("F32", [4], 0, 8)}, b"\0" * 8),
    "duplicate keys": header_file(
        b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {}}', b"\0"
    ),
    "bad JSON": header_file(b'{"w": ', b"\0"),
}


@pytest.mark.parametrize("fault", sorted(MALFORMED))
def test_malformed_safetensors_published_as_is(tmp_path: Path, fault: str) -> None:
    """The bytes match the manifest, so the upstream file itself is broken."""
    snapshot = install(tmp_path, {"config.json": b"{}", "unet/model.safetensors": MALFORMED[fault]})
    report = snapshot.check("full")
    assert issue_kinds(report) == {"unet/model.safetensors": "bad_structure"}
    assert report.overall_health == "corrupted"
    assert report.integrity_score == pytest.approx(2 / snapshot.total)
    (advice,) = report.recommendations
    assert advice.startswith("unet/model.safetensors: malformed but identical to the published")


def test_malformed_json_published_as_is(tmp_path: Path) -> None:
    index = {"weight_map": {"w": "../../../../etc/passwd"}}
    snapshot = install(
        tmp_path,
        {"config.json": b'{"dim": ', "model.safetensors.index.json": json.dumps(index).encode()},
    )
    report = snapshot.check("quick")
    assert issue_kinds(report) == {
        "config.json": "bad_structure",
        "model.safetensors.index.json": "bad_structure",
    }
    assert "not a safe relative path" in report.issues[1].detail


def test_a_header_claiming_1_gb_is_bad_structure_with_bounded_memory(tmp_path: Path) -> None:
    claim = struct.pack("<Q", 10**9) + b"{" + b" " * 1015
    snapshot = install(tmp_path, {"model.safetensors": claim, "config.json": b"{}"})
    tracemalloc.start()
    try:
        report = snapshot.check("full")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert issue_kinds(report) == {"model.safetensors": "bad_structure"}
    assert "exceeds the limit of 100000000 bytes" in report.issues[0].detail
    assert report.overall_health == "corrupted"
    assert peak < 2 * 1024 * 1024


def test_a_tampered_header_is_a_wrong_hash_with_the_structure_kept(model: Snapshot) -> None:
    blob = model.blob(SHARD)
    data = blob.read_bytes()
    blob.write_bytes(data.replace(b'"BF16"', b'"XF16"', 1))
    report = model.check("full")
    assert issue_kinds(report) == {SHARD: "wrong_hash"}
    (check,) = [f for f in report.files if f.path == SHARD]
    assert check.structure is not None
    assert any("unknown dtype 'XF16'" in p for p in check.structure.problems)
    assert report.recommendations == (f"run repair (auto) to re-fetch 1 file: {SHARD}",)


# --- pickles are hashed, never loaded --------------------------------------------------------


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that something loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Guards the next test: loading this payload really does create its marker."""
    marker = tmp_path / "sanity-marker"
    pickle.loads(pickle.dumps(TouchOnUnpickle(marker)))
    assert marker.exists()


def test_pickle_payloads_are_hashed_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    names = ["model.bin", "vae/diffusion_pytorch_model.pt", "unet/model.pth", "v1-5.ckpt"]
    names.append("optimizer.pkl")
    # Distinct payloads (so distinct blobs), each running the touch when unpickled.
    files = {name: pickle.dumps((name, TouchOnUnpickle(marker))) for name in names}
    files["config.json"] = b"{}"
    snapshot = install(tmp_path / "models", files)

    full = snapshot.check("full")
    quick = snapshot.check("quick", known_digests(snapshot.observe("full")))
    assert full.overall_health == quick.overall_health == "healthy"
    assert full.files_hashed == len(files)
    assert not marker.exists()

    # A payload altered on disk is caught by its hash, still without being loaded.
    blob = snapshot.blob("model.bin")
    blob.write_bytes(blob.read_bytes().replace(b"model.bin", b"model.BIN"))
    report = snapshot.check("full")
    assert issue_kinds(report) == {"model.bin": "wrong_hash"}
    assert not marker.exists()


# --- the quick path ------------------------------------------------------------------------


def hundred_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for i in range(50):
        files[f"layers/{i:03d}.safetensors"] = make_safetensors({"w": ("F16", (16, i + 1))}, i)
        files[f"configs/{i:03d}.json"] = json.dumps({"layer": i}).encode()
    return files


def test_a_quick_check_of_an_unchanged_100_file_model_hashes_nothing(tmp_path: Path) -> None:
    snapshot = install(tmp_path, hundred_files())
    first = snapshot.observe("full")
    assert sum(o.digest_source == "hashed" for o in first) == 100
    known = known_digests(first)

    report = snapshot.check("quick", known)
    assert report.files_hashed == 0
    assert all(f.digest_seen == f.digest_expected for f in report.files)
    assert report.overall_health == "healthy"
    assert report.integrity_score == 1.0
    assert report.mode == "quick"


def test_a_quick_check_hashes_only_what_it_cannot_trust(tmp_path: Path) -> None:
    snapshot = install(tmp_path, hundred_files())
    known = known_digests(snapshot.observe("full"))
    # No cache at all: everything is hashed.
    assert snapshot.check("quick").files_hashed == 100
    # One file touched, one without a cached digest, one whose cache disagrees with the
    # manifest (a cached mismatch is re-checked, never trusted).
    touched = "configs/007.json"
    info = snapshot.blob(touched).stat()
    os.utime(snapshot.blob(touched), ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    partial = dict(known)
    del partial["layers/003.safetensors"]
    stale = "layers/010.safetensors"
    partial[stale] = replace(partial[stale], digest="sha256:" + "0" * 64)

    report = snapshot.check("quick", partial)
    hashed = sorted(f.path for f in report.files if f.hashed)
    assert hashed == [touched, "layers/003.safetensors", stale]
    assert report.overall_health == "healthy"


def test_a_full_check_ignores_the_cache(tmp_path: Path) -> None:
    snapshot = install(tmp_path, hundred_files())
    known = known_digests(snapshot.observe("full"))
    assert snapshot.check("full", known).files_hashed == 100


def test_observe_file_reports_what_it_saw(tmp_path: Path) -> None:
    data = make_safetensors({"w": ("F32", (2, 2))})
    snapshot = install(tmp_path, {"w.safetensors": data})
    (file,) = snapshot.files
    seen = observe_file(root=tmp_path, snapshot_dir=snapshot.dir, manifest_file=file, hash=True)
    info = snapshot.blob("w.safetensors").stat()
    assert seen == FileEvidence(
        "w.safetensors",
        "present",
        size=len(data),
        mtime_ns=info.st_mtime_ns,
        inode=info.st_ino,
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        digest_source="hashed",
        structure=StructureReport(ok=True),
    )
    assert seen.known_digest() == KnownDigest(
        len(data), info.st_mtime_ns, info.st_ino, "sha256:" + hashlib.sha256(data).hexdigest()
    )


# --- judge (pure) ----------------------------------------------------------------------------


def present(path: str, data: bytes, **changes: object) -> FileEvidence:
    observation = FileEvidence(
        path,
        "present",
        size=len(data),
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        digest_source="hashed",
        structure=StructureReport(ok=True),
    )
    return replace(observation, **changes)  # type: ignore[arg-type]


def pinned(path: str, data: bytes) -> ManifestFile:
    return ManifestFile(path, len(data), "sha256:" + hashlib.sha256(data).hexdigest())


def test_judge_weighs_by_bytes_and_treats_unobserved_files_as_missing() -> None:
    big, small = b"b" * 300, b"s" * 100
    files = (pinned("big.bin", big), pinned("small.bin", small))
    report = judge(files, [present("small.bin", small)], mode="full", checked_at=NOW)
    assert report.integrity_score == 0.25
    assert issue_kinds(report) == {"big.bin": "missing"}
    assert report.issues[0].detail == "not observed"
    assert report.overall_health == "degraded"


def test_judge_ignores_observations_outside_the_manifest() -> None:
    data = b"d" * 10
    observations = [present("a.bin", data), present("stray.bin", data)]
    report = judge([pinned("a.bin", data)], observations, mode="full", checked_at=NOW)
    assert [f.path for f in report.files] == ["a.bin"]
    assert report.overall_health == "healthy"


def test_judge_refuses_cached_digests_in_a_full_check() -> None:
    data = b"d"
    observation = present("a.bin", data, digest_source="cached")
    with pytest.raises(ValueError, match=r"full check must hash a\.bin"):
        judge([pinned("a.bin", data)], [observation], mode="full", checked_at=NOW)
    report = judge([pinned("a.bin", data)], [observation], mode="quick", checked_at=NOW)
    assert report.overall_health == "healthy"
    assert report.files_hashed == 0


def test_judge_refuses_a_present_file_without_its_digest() -> None:
    observation = present("a.bin", b"d", digest=None, digest_source=None)
    with pytest.raises(ValueError, match="carries no digest"):
        judge([pinned("a.bin", b"d")], [observation], mode="quick", checked_at=NOW)


def test_unpinned_files_verify_on_size_or_presence() -> None:
    files = (ManifestFile("sized.safetensors", 5, None), ManifestFile("open.bin", None, None))
    observations = [
        present("sized.safetensors", b"12345", digest=None, digest_source=None),
        present("open.bin", b"1234567", digest=None, digest_source=None),
    ]
    report = judge(files, observations, mode="full", checked_at=NOW)
    assert report.overall_health == "healthy"
    assert report.bytes_expected == report.bytes_verified == 12

    shrunk = [observations[0], replace(observations[1], state="missing", size=None)]
    report = judge(files, shrunk, mode="full", checked_at=NOW)
    assert report.overall_health == "degraded"
    assert report.integrity_score == 1.0  # an unpinned file of unknown size weighs nothing


def test_empty_files_are_scored_by_count() -> None:
    files = (pinned("a/__init__.py", b""), pinned("b/__init__.py", b""))
    report = judge(files, [present("a/__init__.py", b"")], mode="full", checked_at=NOW)
    assert report.integrity_score == 0.5
    assert report.overall_health == "degraded"


def test_an_empty_manifest_proves_nothing() -> None:
    report = judge((), (), mode="quick", checked_at=NOW)
    assert report.overall_health == "missing"
    assert report.integrity_score == 0.0


def test_unreadable_files_are_corrupt() -> None:
    data = b"x" * 8
    observation = FileEvidence("a.bin", "unreadable", detail="Input/output error")
    report = judge([pinned("a.bin", data)], [observation], mode="full", checked_at=NOW)
    assert issue_kinds(report) == {"a.bin": "wrong_hash"}
    assert report.issues[0].detail == "could not be read: Input/output error"
    assert report.overall_health == "corrupted"


def test_recommendations_name_at_most_three_files() -> None:
    datas = {f"shard-{i}.bin": bytes([i]) * 10 for i in range(5)}
    files = [pinned(path, data) for path, data in datas.items()]
    observations = [present(path, b"?" * 10) for path in datas]
    report = judge(files, observations, mode="full", checked_at=NOW)
    assert report.recommendations == (
        "run repair (auto) to re-fetch 5 files: shard-0.bin, shard-1.bin, shard-2.bin and 2 more",
    )
