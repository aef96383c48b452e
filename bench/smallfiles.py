"""Scenario C, many small files: modeldepot against huggingface_hub on a 400-file repository.

A model repository is not always a few big shards: tokenizers, configs, image sets and
split checkpoints give hundreds of files of some tens of KB, where the cost per file
(requests, fsyncs, database writes) matters more than throughput. In one run, on this
machine, the same repository is downloaded by every tool through the same local hub and
nginx "CDN", and the times per repository and per file, the peak RSS and the target ratio
are printed, then written to ``bench/out/smallfiles.{json,md}``.

    .venv/bin/python bench/smallfiles.py [--runs N] [--files 400] [--kib 50]
                                         [--only hf_hub,modeldepot,modeldepot-cli]

The repository (seeded random bytes) is half LFS files (``*.safetensors``, which the hub
answers with a 302 to nginx, as in scenarios A and B) and half regular git files (the hub
serves those itself, as huggingface.co does for files below 10 MB that no ``.gitattributes``
pattern sends to LFS). See bench/README.md, "smallfiles.py".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from dlbench.procmon import ProcessRun, run_measured
from dlbench.report import ToolResult, build_checks, print_tables, write_reports
from dlbench.servers import Nginx, free_port
from dlbench.system import SetupError, child_env, ensure_binaries, machine_facts, tool_versions
from dlbench.tools import (
    SERVICE_SCRIPT,
    Facts,
    RunOutcome,
    modeldepot_env,
    parse_completed,
    probe_modeldepot,
)

from modeldepot.testing import LocalHub, make_lfs_rule

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
KIB = 1024
# huggingface.co stores a file in LFS when a .gitattributes pattern says so, or when it
# is over 10 MB; the 50 KB regular files stay plain git blobs.
LFS_RULE = make_lfs_rule(threshold=10 * 1000 * 1000)

TOOL_LABELS: dict[str, str] = {
    "hf_hub": "huggingface_hub snapshot_download (max_workers=8, timed in-process)",
    "modeldepot": "modeldepot service (start -> COMPLETED, verified, fsynced)",
    "modeldepot-cli": "modeldepot pull (cold CLI, in-process)",
}

# Timed inside the process around snapshot_download only (interpreter start and imports,
# about 0.5 s, left out): the stricter anchor. The wall time is reported as well.
_HF_SCRIPT = """\
import json, sys, time
from huggingface_hub import snapshot_download
started = time.perf_counter()
snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


@dataclass(frozen=True, slots=True)
class SmallRepo:
    """The benchmark repository: ``count`` random files of ``size`` bytes, half of them LFS."""

    repo_id: str
    model_id: str
    count: int
    size: int
    seed: int

    @property
    def cache_folder(self) -> str:
        return "models--" + self.repo_id.replace("/", "--")

    def files(self) -> dict[str, bytes]:
        files = {}
        for index in range(self.count):
            rng = random.Random(self.seed * 1_000_003 + index)
            if index % 2 == 0:
                path = f"weights/shard-{index:04d}.safetensors"  # LFS by pattern
            else:
                path = f"data/chunk-{index:04d}.dat"  # a regular git file
            files[path] = rng.randbytes(self.size)
        return files


@dataclass(frozen=True, slots=True)
class Served:
    """The repository as published: expected sha256 per path, and where it is served."""

    repo: SmallRepo
    sha256: Mapping[str, str]
    lfs_paths: frozenset[str]
    hub_endpoint: str
    catalog: Path

    @property
    def total_bytes(self) -> int:
        return self.repo.count * self.repo.size


@dataclass(frozen=True, slots=True)
class Invocation:
    argv: Sequence[str]
    env: Mapping[str, str]
    cache_dir: Path
    parse: Callable[[str], Facts]


Builder = Callable[[Served, Path], Invocation]


# -- tools -----------------------------------------------------------------------------


def hf_hub_invocation(served: Served, dest: Path) -> Invocation:
    env = child_env(
        {
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_ENABLE_HF_TRANSFER": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_ENDPOINT": served.hub_endpoint,
            "HF_HOME": str(dest / "hf_home"),
        }
    )
    cache = dest / "cache"
    argv = [sys.executable, "-c", _HF_SCRIPT, served.repo.repo_id, str(cache), served.hub_endpoint]
    return Invocation(argv, env, cache, _parse_own_seconds)


def _parse_own_seconds(stdout: str) -> Facts:
    data = json.loads(stdout.strip().splitlines()[-1])
    return Facts(seconds=float(data["seconds"]))


def _modeldepot_env(served: Served, dest: Path, port: int) -> dict[str, str]:
    env = modeldepot_env(None, dest, service_port=port)
    env["HF_ENDPOINT"] = served.hub_endpoint
    env["MODELDEPOT_CATALOG"] = str(served.catalog)
    return env


def modeldepot_service_builder(port: int) -> Builder:
    def build(served: Served, dest: Path) -> Invocation:
        argv = [sys.executable, "-c", SERVICE_SCRIPT, served.repo.model_id, str(port)]
        env = _modeldepot_env(served, dest, port)
        return Invocation(argv, env, dest / "models", parse_completed)

    return build


def modeldepot_cli_builder(port: int) -> Builder:
    def build(served: Served, dest: Path) -> Invocation:
        argv = [sys.executable, "-m", "modeldepot", "pull", served.repo.model_id, "--json"]
        env = _modeldepot_env(served, dest, port)
        return Invocation(argv, env, dest / "models", _wall_time)

    return build


def _wall_time(_stdout: str) -> Facts:
    return Facts()


# -- one run ---------------------------------------------------------------------------


def run_tool(
    build: Builder, served: Served, run_dir: Path, hub: LocalHub, *, timeout_s: float, keep: bool
) -> RunOutcome:
    dest = run_dir / "dest"
    shutil.rmtree(run_dir, ignore_errors=True)
    dest.mkdir(parents=True)
    invocation = build(served, dest)
    before = len(hub.requests)
    try:
        run = run_measured(
            invocation.argv, env=invocation.env, timeout_s=timeout_s, log_dir=run_dir / "logs"
        )
        outcome = judge(run, invocation, served)
        hub_requests = len(hub.requests) - before
        outcome.note = (
            f"{outcome.note} wall {run.seconds:.2f} s, {hub_requests} hub requests".strip()
        )
        return outcome
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)


def judge(run: ProcessRun, invocation: Invocation, served: Served) -> RunOutcome:
    outcome = RunOutcome(
        status="ok", seconds=run.seconds, peak_rss_bytes=run.peak_rss_bytes, argv=list(run.argv)
    )
    if run.timed_out:
        outcome.status, outcome.note = "timeout", f"killed after {run.seconds:.1f} s"
        return outcome
    if run.returncode != 0:
        tail = (run.stderr_tail or run.stdout).strip().splitlines()
        outcome.status = "failed"
        outcome.note = f"exit {run.returncode}: {tail[-1][-300:] if tail else 'no output'}"
        return outcome
    try:
        facts = invocation.parse(run.stdout)
    except (ValueError, KeyError, IndexError) as exc:
        outcome.status, outcome.note = "failed", f"unreadable output: {exc}"
        return outcome
    outcome.seconds = facts.seconds if facts.seconds is not None else run.seconds
    outcome.last_byte_to_available_s = facts.last_byte_to_available_s
    wrong = wrong_files(invocation.cache_dir / served.repo.cache_folder, served.sha256)
    outcome.sha256_ok = not wrong
    if wrong:
        outcome.status = "checksum"
        outcome.note = f"{len(wrong)} files missing or wrong, e.g. {wrong[0]};"
    return outcome


def wrong_files(repo_dir: Path, expected: Mapping[str, str]) -> list[str]:
    """Paths whose snapshot file is missing or has other bytes (untimed)."""
    snapshots = sorted((repo_dir / "snapshots").glob("*"))
    if len(snapshots) != 1:
        return sorted(expected)
    wrong = []
    for path, sha256 in expected.items():
        try:
            digest = hashlib.sha256((snapshots[0] / path).read_bytes()).hexdigest()
        except OSError:
            digest = ""
        if digest != sha256:
            wrong.append(path)
    return wrong


# -- set-up ----------------------------------------------------------------------------


def publish(hub: LocalHub, repo: SmallRepo, out: Path) -> Served:
    files = repo.files()
    hub.create_repo(repo.repo_id, files)
    head = hub.repo(repo.repo_id).head
    sha256 = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    lfs = frozenset(path for path, entry in head.files.items() if entry.lfs)
    catalog = out / "catalog.toml"
    catalog.write_text(
        "# Generated by bench/smallfiles.py\n\n"
        f'[[models]]\nid = "{repo.model_id}"\nsource = "hf://{repo.repo_id}"\n'
        f'display_name = "benchmark {repo.count} small files"\n'
    )
    return Served(repo, sha256, lfs, hub.endpoint, catalog)


def warm(hub_root: Path) -> None:
    """Read every stored file once: nginx and the hub serve every tool from the page cache."""
    for path in hub_root.rglob("*"):
        if path.is_file():
            path.read_bytes()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (best and median)")
    parser.add_argument("--files", type=int, default=400, help="files in the repository")
    parser.add_argument("--kib", type=int, default=50, help="size of each file in KiB")
    parser.add_argument("--seed", type=int, default=400)
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(TOOL_LABELS)}")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per tool run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.files < 1 or args.kib < 1:
        parser.error("--runs, --files and --kib must be at least 1")
    tools = [t.strip() for t in (args.only or ",".join(TOOL_LABELS)).split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOL_LABELS]
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    args.tools = tools
    return args


def make_builders(tools: Sequence[str], work: Path) -> tuple[dict[str, Builder], dict[str, str]]:
    builders: dict[str, Builder] = {"hf_hub": hf_hub_invocation}
    unavailable: dict[str, str] = {}
    if {"modeldepot", "modeldepot-cli"} & set(tools):
        probe = probe_modeldepot(work / "probe", service_port=free_port())
        if probe.available:
            builders["modeldepot"] = modeldepot_service_builder(free_port())
            builders["modeldepot-cli"] = modeldepot_cli_builder(free_port())
        else:
            unavailable = dict.fromkeys(("modeldepot", "modeldepot-cli"), probe.reason)
    return builders, unavailable


# -- main ------------------------------------------------------------------------------


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_all(
    args: argparse.Namespace, work: Path, meta: dict[str, Any], results: dict[str, ToolResult]
) -> None:
    binaries = ensure_binaries()
    meta["versions"] = tool_versions(binaries)
    repo = SmallRepo(
        f"bench/small-{args.files}",
        f"bench-small-{args.files}",
        args.files,
        args.kib * KIB,
        args.seed,
    )
    with contextlib.ExitStack() as stack:
        shutil.rmtree(work / "hub", ignore_errors=True)
        hub = LocalHub(work / "hub", lfs_rule=LFS_RULE).start()
        stack.callback(hub.stop)
        nginx = Nginx(binaries["nginx"], work / "nginx", hub.root.resolve(), "0")
        stack.callback(nginx.stop)
        nginx.start()
        hub.redirect_base_url = nginx.open_url
        served = publish(hub, repo, work)
        warm(hub.root)
        builders, unavailable = make_builders(args.tools, work)
        print(
            f"\n== Scenario C: {repo.count} files x {repo.size // KIB} KiB "
            f"({len(served.lfs_paths)} LFS via nginx {nginx.open_url}, "
            f"{repo.count - len(served.lfs_paths)} regular from the hub {hub.endpoint})",
            flush=True,
        )
        for tool in args.tools:
            results[tool] = ToolResult("C", tool, TOOL_LABELS[tool], served.total_bytes)
        for run_index in range(args.runs):
            for tool in args.tools:
                if tool in unavailable:
                    if run_index == 0:
                        results[tool].runs.append(RunOutcome("unavailable", note=unavailable[tool]))
                    continue
                os.sync()
                print(
                    f"  run {run_index + 1}/{args.runs} {TOOL_LABELS[tool]} ...", end="", flush=True
                )
                outcome = run_tool(
                    builders[tool],
                    served,
                    work / "runs" / tool / f"run{run_index + 1}",
                    hub,
                    timeout_s=args.timeout,
                    keep=args.keep,
                )
                results[tool].runs.append(outcome)
                print(f" {_describe(outcome, repo.count)}", flush=True)


def _describe(outcome: RunOutcome, count: int) -> str:
    if outcome.status != "ok" or not outcome.seconds:
        return f"{outcome.status.upper()} {outcome.note}"
    rss = (outcome.peak_rss_bytes or 0) / 1e6
    per_file = outcome.seconds / count * 1000
    return f"{outcome.seconds:.2f} s ({per_file:.1f} ms/file), RSS {rss:.0f} MB; {outcome.note}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    out: Path = args.out.resolve()
    work = out / "smallfiles"
    work.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/smallfiles.py", *sys.argv[1:]]),
        "machine": machine_facts(),
        "settings": {"runs": args.runs, "files": args.files, "kib": args.kib, "seed": args.seed},
    }
    results: dict[str, ToolResult] = {}
    try:
        run_all(args, work, meta, results)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        print("\ninterrupted: nginx and the hub are stopped; reporting what ran", flush=True)
    except SetupError as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        return 2
    meta.setdefault("versions", {})
    title = f"{args.files} files x {args.kib} KiB, half LFS (nginx), half regular (hub)"
    checks = build_checks("C", results)
    ordered = list(results.values())
    print_tables(ordered, checks, {"C": title})
    for result in ordered:
        if result.best_s:
            print(f"  {result.label}: {result.best_s / args.files * 1000:.1f} ms per file (best)")
    json_path, md_path = write_reports(out, meta, ordered, checks, {"C": title}, name="smallfiles")
    print(f"\nwritten: {json_path}\n         {md_path}")
    return 130 if meta.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
