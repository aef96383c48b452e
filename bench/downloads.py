"""Side-by-side download benchmark: modeldepot against curl, aria2c and huggingface_hub.

In one run, on this machine, the same LFS file is downloaded by every tool through the
same local hub + nginx "CDN", and the times, throughputs, peak RSS and the ratios the
product targets name are printed, then written to ``bench/out/downloads.{json,md}``.

    .venv/bin/python bench/downloads.py [--scenario A|B|all] [--runs N] [--keep]
                                        [--only tool,...]

Scenarios (see bench/README.md):

- A, per-connection-throttled CDN: nginx ``limit_rate 25m`` per connection, 512 MiB file;
- B, unthrottled loopback: no limit, 2 GiB file.

Not part of the test suite. Installs nginx, curl and aria2 with apt when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from dlbench.report import ToolResult, build_checks, print_tables, write_reports
from dlbench.servers import (
    FILENAME,
    PAYLOADS,
    Nginx,
    Published,
    check_redirect,
    free_port,
    publish,
    start_hub,
    warm_page_cache,
)
from dlbench.system import SetupError, ensure_binaries, machine_facts, tool_versions
from dlbench.tools import (
    Builder,
    RunOutcome,
    Target,
    aria2c_builder,
    curl_invocation,
    hashlib_invocation,
    hf_hub_invocation,
    modeldepot_builder,
    modeldepot_service_builder,
    probe_modeldepot,
    run_tool,
    with_fsync,
)

from modeldepot.testing import LocalHub

DEFAULT_OUT = Path(__file__).resolve().parent / "out"

TOOL_LABELS: dict[str, str] = {
    "curl": "curl (1 stream)",
    "aria2c-x8": "aria2c -x8 -s8 -k1M",
    "aria2c-x16": "aria2c -x16 -s16 -k1M",
    "curl+fsync": "curl, then fsync",
    "aria2c-x16+fsync": "aria2c -x16, then fsync",
    "hf_hub": "huggingface_hub snapshot_download",
    "hashlib": "hashlib sha256 (anchor)",
    "modeldepot": "modeldepot service (start -> COMPLETED)",
    "modeldepot-cli": "modeldepot pull (cold CLI, in-process)",
}
_ALIASES = {
    "aria2c": ("aria2c-x8", "aria2c-x16", "aria2c-x16+fsync"),
    "fsync": ("curl+fsync", "aria2c-x16+fsync"),
    "hf": ("hf_hub",),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    payload: str
    throttled: bool
    tools: tuple[str, ...]


def scenarios(limit_rate: str) -> dict[str, Scenario]:
    return {
        "A": Scenario(
            "A",
            f"per-connection-throttled CDN (nginx limit_rate {limit_rate} per connection), "
            "512 MiB file",
            "512m",
            throttled=True,
            tools=(
                "curl",
                "aria2c-x8",
                "aria2c-x16",
                "hf_hub",
                "hashlib",
                "curl+fsync",
                "aria2c-x16+fsync",
                "modeldepot",
                "modeldepot-cli",
            ),
        ),
        "B": Scenario(
            "B",
            "unthrottled loopback nginx, 2 GiB file",
            "2g",
            throttled=False,
            tools=(
                "curl",
                "aria2c-x16",
                "hf_hub",
                "hashlib",
                "curl+fsync",
                "aria2c-x16+fsync",
                "modeldepot",
                "modeldepot-cli",
            ),
        ),
    }


@dataclass(slots=True)
class Bench:
    """Everything a scenario run needs, set up once."""

    args: argparse.Namespace
    out: Path
    binaries: dict[str, str]
    hub: LocalHub
    nginx: Nginx
    published: dict[str, Published]
    catalog: Path
    builders: dict[str, Builder]
    unavailable: dict[str, str]


# -- command line ----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        type=str.upper,
        choices=["A", "B", "ALL"],
        default="ALL",
        help="A: throttled CDN, 512 MiB; B: unthrottled loopback, 2 GiB (default: all)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per tool (best and median)")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded files")
    parser.add_argument(
        "--only",
        type=_tool_list,
        default=None,
        help=f"comma-separated tools: {', '.join(TOOL_LABELS)}; aria2c, fsync, hf: groups",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache/results directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per tool run")
    parser.add_argument("--limit-rate", default="25m", help="nginx limit_rate for scenario A")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _tool_list(text: str) -> tuple[str, ...]:
    tools: list[str] = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        if name in _ALIASES:
            tools.extend(_ALIASES[name])
        elif name in TOOL_LABELS:
            tools.append(name)
        else:
            raise argparse.ArgumentTypeError(f"unknown tool {name!r}")
    return tuple(tools)


# -- set-up ----------------------------------------------------------------------------


def write_catalog(path: Path) -> Path:
    """The catalogue modeldepot pulls from: one hub entry per payload."""
    entries = [
        f'[[models]]\nid = "{p.model_id}"\nsource = "hf://{p.repo_id}"\n'
        f'display_name = "benchmark {p.key}"\n'
        for p in PAYLOADS.values()
    ]
    path.write_text("# Generated by bench/downloads.py\n\n" + "\n".join(entries))
    return path


def make_builders(args: argparse.Namespace, out: Path) -> tuple[dict[str, Builder], dict[str, str]]:
    """Builders per tool, and {tool: reason} for tools that are not available."""
    builders: dict[str, Builder] = {
        "curl": curl_invocation,
        "aria2c-x8": aria2c_builder(8),
        "aria2c-x16": aria2c_builder(16),
        "hf_hub": hf_hub_invocation,
        "hashlib": hashlib_invocation,
        "curl+fsync": with_fsync(curl_invocation),
        "aria2c-x16+fsync": with_fsync(aria2c_builder(16)),
    }
    unavailable: dict[str, str] = {}
    wanted = {"modeldepot", "modeldepot-cli"} & set(args.only or ("modeldepot", "modeldepot-cli"))
    if wanted:
        port = free_port()  # nothing listens there: the cold `pull` runs in-process
        probe = probe_modeldepot(out / "probe", service_port=port)
        if probe.available:
            builders["modeldepot-cli"] = modeldepot_builder(
                json_events=probe.json_events, service_port=port
            )
            builders["modeldepot"] = modeldepot_service_builder(service_port=free_port())
        else:
            unavailable.update(dict.fromkeys(wanted, probe.reason))
    return builders, unavailable


def set_up(args: argparse.Namespace, stack: contextlib.ExitStack[Any], keys: set[str]) -> Bench:
    """Start the hub (publishing the payloads) and nginx; probe modeldepot."""
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    binaries = ensure_binaries()
    hub = start_hub(out)
    stack.callback(hub.stop)
    published = {key: publish(hub, PAYLOADS[key], out) for key in sorted(keys)}
    nginx = Nginx(binaries["nginx"], out / "nginx", hub.root.resolve(), args.limit_rate)
    stack.callback(nginx.stop)
    nginx.start()
    builders, unavailable = make_builders(args, out)
    return Bench(
        args,
        out,
        binaries,
        hub,
        nginx,
        published,
        write_catalog(out / "catalog.toml"),
        builders,
        unavailable,
    )


# -- running ---------------------------------------------------------------------------


def run_scenario(bench: Bench, scenario: Scenario, results: list[ToolResult]) -> None:
    """Run every selected tool `--runs` times, interleaved, appending to `results`."""
    base = bench.nginx.throttled_url if scenario.throttled else bench.nginx.open_url
    published = bench.published[scenario.payload]
    bench.hub.redirect_base_url = base
    check_redirect(bench.hub, published, base)
    warm_page_cache(published.blob)
    target = Target(
        published=published,
        blob_url=f"{base}/blobs/{published.sha256}",
        hub_endpoint=bench.hub.endpoint,
        catalog=bench.catalog,
        binaries=bench.binaries,
    )
    only = bench.args.only
    tools = [tool for tool in scenario.tools if only is None or tool in only]
    by_tool = {
        tool: ToolResult(scenario.key, tool, TOOL_LABELS[tool], published.payload.size)
        for tool in tools
    }
    results.extend(by_tool.values())
    print(f"\n== Scenario {scenario.key}: {scenario.title} ({base})", flush=True)
    for run_index in range(bench.args.runs):
        for tool in tools:
            outcome = _run_once(bench, scenario, tool, target, run_index)
            if outcome is not None:
                by_tool[tool].runs.append(outcome)


def _run_once(
    bench: Bench, scenario: Scenario, tool: str, target: Target, run_index: int
) -> RunOutcome | None:
    if tool in bench.unavailable:
        if run_index > 0:
            return None
        print(f"  {TOOL_LABELS[tool]}: {bench.unavailable[tool]}", flush=True)
        return RunOutcome(status="unavailable", note=bench.unavailable[tool])
    os.sync()  # start every run with no dirty pages left by the previous one
    label = f"  run {run_index + 1}/{bench.args.runs} {TOOL_LABELS[tool]}"
    print(f"{label} ...", end="", flush=True)
    outcome = run_tool(
        bench.builders[tool],
        target,
        bench.out / "runs" / scenario.key / tool / f"run{run_index + 1}",
        timeout_s=bench.args.timeout,
        keep=bench.args.keep,
    )
    print(f" {_describe(outcome, target.published.payload.size)}", flush=True)
    return outcome


def _describe(outcome: RunOutcome, size: int) -> str:
    if outcome.status != "ok" or not outcome.seconds:
        return f"{outcome.status.upper()} {outcome.note}"
    rss = (outcome.peak_rss_bytes or 0) / 1e6
    return f"{outcome.seconds:.2f} s, {size / outcome.seconds / 1e6:.0f} MB/s, RSS {rss:.0f} MB"


# -- main ------------------------------------------------------------------------------


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def print_header(meta: dict[str, Any]) -> None:
    print("modeldepot download benchmark")
    for section in ("machine", "versions"):
        for key, value in meta[section].items():
            print(f"  {key:<18} {value}")
    print(f"  {'command':<18} {meta['command']}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    selected = [s for key, s in scenarios(args.limit_rate).items() if args.scenario in (key, "ALL")]
    results: list[ToolResult] = []
    meta: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/downloads.py", *sys.argv[1:]]),
        "machine": machine_facts(),
        "settings": {"runs": args.runs, "timeout_s": args.timeout, "limit_rate": args.limit_rate},
        "file": FILENAME,
    }
    try:
        with contextlib.ExitStack() as stack:
            bench = set_up(args, stack, {s.payload for s in selected})
            meta["versions"] = tool_versions(bench.binaries)
            meta["modeldepot"] = bench.unavailable.get("modeldepot", "available")
            print_header(meta)
            for scenario in selected:
                run_scenario(bench, scenario, results)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        print("\ninterrupted: nginx and the hub are stopped; reporting what ran", flush=True)
    except SetupError as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        return 2
    meta.setdefault("versions", {})
    report(args.out.resolve(), meta, results, {s.key: s.title for s in selected})
    return 130 if meta.get("interrupted") else 0


def report(
    out: Path, meta: dict[str, Any], results: list[ToolResult], titles: dict[str, str]
) -> None:
    checks = []
    for key in titles:
        checks += build_checks(key, {r.tool: r for r in results if r.scenario == key})
    print_tables(results, checks, titles)
    json_path, md_path = write_reports(out, meta, results, checks, titles)
    print(f"\nwritten: {json_path}\n         {md_path}")


if __name__ == "__main__":
    sys.exit(main())
