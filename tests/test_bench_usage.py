"""``bench/usage.py`` at a tiny scale: it starts the real service, ingests, checks every
event was counted, measures the analytics and writes its report.

The benchmark itself is run by hand (its figures are never asserted here); this only
proves the script works end to end, so a change to the API does not leave it broken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "usage.py"


def test_the_usage_benchmark_runs_end_to_end_on_sqlite(tmp_path: Path) -> None:
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    argv = [sys.executable, str(SCRIPT), "--events", "2000", "--models", "5", "--queries", "5"]
    argv += ["--backend", "sqlite", "--out", str(out)]
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=50,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    text = (out / "usage.md").read_text()
    assert text in done.stdout  # the printed table is the written one
    row = re.search(
        r"^\| sqlite \| 2,000 \| ([\d,]+) \| ([\d.]+) \| (.+) \| (.+) \| (\d+) \| (\w+) \|$",
        text,
        re.M,
    )
    assert row is not None, text
    assert int(row.group(1).replace(",", "")) > 0  # events/s
    for cell in (row.group(3), row.group(4)):  # p50 / p99 / max, ascending
        p50, p99, most = (float(v) for v in cell.split(" / "))
        assert 0 < p50 <= p99 <= most
    assert int(row.group(5)) > 0  # the service's peak memory, MB
    assert row.group(6) in {"yes", "NO"}
    assert list(scratch.iterdir()) == []  # the data and models directories are gone
