"""Verification benchmark: modeldepot's integrity checks against hashlib on the same files.

Run by hand, never in CI::

    .venv/bin/python bench/verify.py [--gib 2] [--files 4] [--runs 3]

1. Full check: a model of ``--files`` safetensors-sized files totalling ``--gib`` GiB in the
   hub-cache layout, verified with the health module's own ``observe_files`` + ``judge``
   (sha256 of every file plus structure checks), against ``hashlib.file_digest`` over the
   same blob files in the same run. Target: >= 0.8 x hashlib's throughput.
2. Quick check: a 100-file model verified once in full, then re-checked with the cached
   digests (``mode="quick"``): sizes, mtimes, inodes and structure, no hashing.
   Target: < 100 ms.

Files are generated once under ``bench/out/verify`` and reused; the page cache is warmed
before each timed pass so both sides read from memory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.health.integrity import judge, known_digests, observe_files
from modeldepot.ids import make_digest
from modeldepot.testing import make_safetensors, write_random_file

OUT = Path(__file__).resolve().parent / "out" / "verify"
COMMIT = "b" * 40


def publish(root: Path, name: str, files: dict[str, Path]) -> tuple[Path, list[ManifestFile]]:
    """Lay ``files`` out as ``models--bench--<name>`` (blobs + relative snapshot links)."""
    repo = root / f"models--bench--{name}"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / COMMIT
    blobs.mkdir(parents=True, exist_ok=True)
    manifest = []
    for relpath, source in files.items():
        digest = _sha256(source)
        blob = blobs / digest
        if not blob.exists():
            os.replace(source, blob)
        link = snapshot / relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
        manifest.append(ManifestFile(relpath, blob.stat().st_size, make_digest("sha256", digest)))
    return snapshot, manifest


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def big_model(root: Path, *, gib: float, count: int) -> tuple[Path, list[ManifestFile]]:
    size = int(gib * 1024**3 / count)
    files = {}
    for index in range(count):
        path = root / "gen" / f"shard-{index}.bin"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_random_file(path, size, seed=index)
        files[f"transformer/shard-{index:05d}.bin"] = path
    return publish(root, "big", files)


def small_model(root: Path) -> tuple[Path, list[ManifestFile]]:
    files = {}
    for index in range(100):
        path = root / "gen-small" / f"t{index}.safetensors"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(make_safetensors({"w": ("F16", [64, 64])}, seed=index))
        files[f"part-{index:03d}/model.safetensors"] = path
    return publish(root, "small", files)


def warm(paths: list[Path]) -> None:
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(16 * 1024 * 1024):
                pass


def time_hashlib(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        _sha256(path)
    return time.perf_counter() - started


def time_full(root: Path, snapshot: Path, manifest: list[ManifestFile]) -> float:
    started = time.perf_counter()
    evidence = observe_files(root=root, snapshot_dir=snapshot, files=manifest, mode="full")
    report = judge(manifest, evidence, mode="full", checked_at=datetime.now(UTC))
    took = time.perf_counter() - started
    assert report.overall_health == "healthy", report.issues
    return took


def time_quick(root: Path, snapshot: Path, manifest: list[ManifestFile]) -> tuple[float, int]:
    full = observe_files(root=root, snapshot_dir=snapshot, files=manifest, mode="full")
    known = known_digests(full)
    started = time.perf_counter()
    evidence = observe_files(
        root=root, snapshot_dir=snapshot, files=manifest, mode="quick", known=known
    )
    report = judge(manifest, evidence, mode="quick", checked_at=datetime.now(UTC))
    took = time.perf_counter() - started
    assert report.overall_health == "healthy", report.issues
    return took, report.files_hashed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    snapshot, manifest = big_model(OUT, gib=args.gib, count=args.files)
    blobs = [(snapshot / f.path).resolve() for f in manifest]
    total = sum(f.size or 0 for f in manifest)
    hashlib_times, full_times = [], []
    for _ in range(args.runs):
        warm(blobs)
        hashlib_times.append(time_hashlib(blobs))
        warm(blobs)
        full_times.append(time_full(OUT, snapshot, manifest))
    small_snapshot, small_manifest = small_model(OUT)
    quick = [time_quick(OUT, small_snapshot, small_manifest) for _ in range(args.runs)]
    best_h, best_f = min(hashlib_times), min(full_times)
    rows = [
        ("hashlib.file_digest (anchor)", best_h, statistics.median(hashlib_times)),
        ("modeldepot full check", best_f, statistics.median(full_times)),
    ]
    print(
        f"Full check of {total / 1e9:.2f} GB in {len(manifest)} files (best / median of "
        f"{args.runs}; {os.cpu_count()} cores; python {sys.version.split()[0]})"
    )
    print("| tool | best s | median s | MB/s |\n|---|---|---|---|")
    for name, best, median in rows:
        print(f"| {name} | {best:.2f} | {median:.2f} | {total / 1e6 / best:.0f} |")
    ratio = best_h / best_f
    print(
        f"\nfull check throughput / hashlib: {ratio:.2f}x (target >= 0.8x) "
        f"{'PASS' if ratio >= 0.8 else 'FAIL'}"
    )
    quick_ms = min(t for t, _ in quick) * 1000
    hashed = max(h for _, h in quick)
    print(
        f"quick check of an unchanged 100-file model: {quick_ms:.1f} ms, files hashed "
        f"{hashed} (target < 100 ms) {'PASS' if quick_ms < 100 and hashed == 0 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
