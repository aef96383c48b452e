"""Summaries of the runs, the ratios the product targets name, and the reports.

One set of rows feeds three renderings: the console table (rich when importable, plain
text otherwise), a Markdown file to paste into the README, and a JSON file.
MB is 10^6 bytes throughout (throughput and memory alike).
"""

from __future__ import annotations

import json
import operator
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlbench.tools import RunOutcome

MB = 1_000_000
_PIPE_WIDTH = 160  # rich's console width when stdout is a file or a pipe
_STATUS_TEXT = {
    "unavailable": "not available",
    "timeout": "timed out",
    "checksum": "sha256 mismatch",
}


@dataclass(slots=True)
class ToolResult:
    """All runs of one tool in one scenario."""

    scenario: str
    tool: str
    label: str
    size_bytes: int
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def good(self) -> list[RunOutcome]:
        return [run for run in self.runs if run.status == "ok" and run.seconds is not None]

    @property
    def best_s(self) -> float | None:
        return min((run.seconds for run in self.good if run.seconds is not None), default=None)

    @property
    def median_s(self) -> float | None:
        times = [run.seconds for run in self.good if run.seconds is not None]
        return statistics.median(times) if times else None

    @property
    def mb_per_s(self) -> float | None:
        best = self.best_s
        return self.size_bytes / best / MB if best else None

    @property
    def peak_rss_mb(self) -> float | None:
        peaks = [run.peak_rss_bytes for run in self.runs if run.peak_rss_bytes]
        return max(peaks) / MB if peaks else None

    @property
    def sha256_ok(self) -> bool | None:
        checked = [run.sha256_ok for run in self.runs if run.sha256_ok is not None]
        return all(checked) if checked else None

    @property
    def last_byte_to_available_s(self) -> float | None:
        gaps = [
            r.last_byte_to_available_s for r in self.good if r.last_byte_to_available_s is not None
        ]
        return max(gaps) if gaps else None

    @property
    def note(self) -> str:
        bad = [run for run in self.runs if run.status != "ok"]
        if not bad:
            return ""
        first = bad[0]
        prefix = "" if len(bad) == len(self.runs) else f"{len(bad)}/{len(self.runs)} runs: "
        return f"{prefix}{_STATUS_TEXT.get(first.status, first.status)}: {first.note}".strip()

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "tool": self.tool,
            "label": self.label,
            "size_bytes": self.size_bytes,
            "best_s": self.best_s,
            "median_s": self.median_s,
            "mb_per_s": self.mb_per_s,
            "peak_rss_mb": self.peak_rss_mb,
            "sha256_ok": self.sha256_ok,
            "last_byte_to_available_s": self.last_byte_to_available_s,
            "note": self.note,
            "runs": [asdict(run) for run in self.runs],
        }


@dataclass(frozen=True, slots=True)
class Check:
    """One ratio or figure a product target names (target "" = for context only)."""

    scenario: str
    name: str
    value: float | None
    shown: str
    target: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        if not self.target:
            return "info"
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "FAIL"


_OPS: Mapping[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


def _check(scenario: str, name: str, value: float | None, unit: str, target: str = "") -> Check:
    shown = "n/a" if value is None else f"{value:.2f}{unit}"
    passed: bool | None = None
    if target and value is not None:
        op, _, bound = target.partition(" ")
        passed = _OPS[op](value, float(bound))
    return Check(scenario, name, value, shown, f"{target}{unit}" if target else "", passed)


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


Figure = tuple[str, str]
"""(tool, ToolResult attribute), e.g. ("curl", "best_s")."""

# scenario, name, numerator, denominator (None: the figure itself), unit, target ("" = context)
_CHECKS: tuple[tuple[str, str, Figure, Figure | None, str, str], ...] = (
    ("A", "modeldepot time / aria2c -x16 time",
     ("modeldepot", "best_s"), ("aria2c-x16", "best_s"), "x", "<= 1.1"),
    ("A", "huggingface_hub time / modeldepot time",
     ("hf_hub", "best_s"), ("modeldepot", "best_s"), "x", ">= 8"),
    ("A", "modeldepot peak RSS", ("modeldepot", "peak_rss_mb"), None, " MB", "< 200"),
    ("A", "huggingface_hub time / aria2c -x16 time (context)",
     ("hf_hub", "best_s"), ("aria2c-x16", "best_s"), "x", ""),
    ("A", "curl time / aria2c -x16 time (context)",
     ("curl", "best_s"), ("aria2c-x16", "best_s"), "x", ""),
    ("A", "modeldepot time / (aria2c -x16 + fsync) time (context)",
     ("modeldepot", "best_s"), ("aria2c-x16+fsync", "best_s"), "x", ""),
    ("B", "modeldepot MB/s / curl MB/s",
     ("modeldepot", "mb_per_s"), ("curl", "mb_per_s"), "x", ">= 0.9"),
    ("B", "modeldepot last byte -> AVAILABLE",
     ("modeldepot", "last_byte_to_available_s"), None, " s", "< 1"),
    ("B", "modeldepot peak RSS", ("modeldepot", "peak_rss_mb"), None, " MB", "< 200"),
    ("B", "aria2c -x16 MB/s / curl MB/s (context)",
     ("aria2c-x16", "mb_per_s"), ("curl", "mb_per_s"), "x", ""),
    ("B", "huggingface_hub MB/s / curl MB/s (context)",
     ("hf_hub", "mb_per_s"), ("curl", "mb_per_s"), "x", ""),
    ("B", "modeldepot MB/s / (curl + fsync) MB/s (context)",
     ("modeldepot", "mb_per_s"), ("curl+fsync", "mb_per_s"), "x", ""),
    ("C", "modeldepot service time / huggingface_hub time",
     ("modeldepot", "best_s"), ("hf_hub", "best_s"), "x", "<= 1"),
    ("C", "modeldepot service median / huggingface_hub median (context)",
     ("modeldepot", "median_s"), ("hf_hub", "median_s"), "x", ""),
    ("C", "modeldepot pull (cold CLI) time / huggingface_hub time (context)",
     ("modeldepot-cli", "best_s"), ("hf_hub", "best_s"), "x", ""),
    ("C", "modeldepot peak RSS", ("modeldepot", "peak_rss_mb"), None, " MB", "< 200"),
)  # fmt: skip


def build_checks(scenario: str, results: Mapping[str, ToolResult]) -> list[Check]:
    """The target ratios for this scenario (A: throttled times; B: throughput, last byte)."""

    def get(figure: Figure) -> float | None:
        result = results.get(figure[0])
        value = getattr(result, figure[1]) if result else None
        return float(value) if isinstance(value, int | float) else None

    checks = []
    for key, name, top, bottom, unit, target in _CHECKS:
        if key == scenario:
            value = get(top) if bottom is None else _ratio(get(top), get(bottom))
            checks.append(_check(scenario, name, value, unit, target))
    if scenario == "B":
        sha = results["modeldepot"].sha256_ok if "modeldepot" in results else None
        shown = "n/a" if sha is None else str(sha).lower()
        checks.insert(1, Check(scenario, "modeldepot sha256 verified", None, shown, "true", sha))
    return checks


# -- rendering -------------------------------------------------------------------------

RESULT_HEADERS = (
    "Scenario",
    "Tool",
    "Runs",
    "Best s",
    "Median s",
    "MB/s",
    "Peak RSS MB",
    "sha256",
    "Notes",
)
CHECK_HEADERS = ("Scenario", "Check", "Value", "Target", "Verdict")


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def result_rows(results: Sequence[ToolResult]) -> list[list[str]]:
    rows = []
    for r in results:
        sha = {None: "n/a", True: "ok", False: "BAD"}[r.sha256_ok]
        runs = f"{len(r.good)}/{len(r.runs)}"
        rows.append(
            [
                r.scenario,
                r.label,
                runs,
                _num(r.best_s),
                _num(r.median_s),
                _num(r.mb_per_s, 0),
                _num(r.peak_rss_mb, 0),
                sha,
                r.note,
            ]
        )
    return rows


def check_rows(checks: Sequence[Check]) -> list[list[str]]:
    return [[c.scenario, c.name, c.shown, c.target, c.verdict] for c in checks]


def print_tables(
    results: Sequence[ToolResult], checks: Sequence[Check], titles: Mapping[str, str]
) -> None:
    """Print the results and checks tables (rich if available)."""
    legend = "; ".join(f"{key}: {title}" for key, title in titles.items())
    tables = [
        ("Downloads — " + legend, RESULT_HEADERS, result_rows(results)),
        ("Targets (ratios use best times)", CHECK_HEADERS, check_rows(checks)),
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for title, headers, rows in tables:
            print(f"\n{title}\n{plain_table(headers, rows)}")
        return
    console = Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH)
    for title, headers, rows in tables:
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *map(line, rows)])


def write_reports(
    out_dir: Path,
    meta: Mapping[str, Any],
    results: Sequence[ToolResult],
    checks: Sequence[Check],
    titles: Mapping[str, str],
    *,
    name: str = "downloads",
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into `out_dir`; return their paths.

    An interrupted run writes ``<name>-interrupted.*`` instead, keeping the last full
    results.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-interrupted" if meta.get("interrupted") else name
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    data = {
        **meta,
        "scenarios": dict(titles),
        "results": [r.summary() for r in results],
        "checks": [{**asdict(c), "verdict": c.verdict} for c in checks],
    }
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(meta, results, checks, titles))
    return json_path, md_path


def render_markdown(
    meta: Mapping[str, Any],
    results: Sequence[ToolResult],
    checks: Sequence[Check],
    titles: Mapping[str, str],
) -> str:
    machine = meta.get("machine", {})
    versions = meta.get("versions", {})
    facts = ", ".join(f"{k} {v}" for k, v in machine.items())
    tools = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python executable")
    scenario_lines = "\n".join(f"- **{key}**: {title}" for key, title in titles.items())
    return (
        f"Command: `{meta.get('command', '')}` ({meta.get('generated_at', '')})\n\n"
        f"Machine: {facts}\n\nTools: {tools}\n\n{scenario_lines}\n\n"
        f"{markdown_table(RESULT_HEADERS, result_rows(results))}\n\n"
        f"{markdown_table(CHECK_HEADERS, check_rows(checks))}\n"
    )
