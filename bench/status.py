"""Status at speed: ``/api/v1/models/status/detailed`` against ``/healthz`` (issue 9).

In one run, on this machine, wrk drives the real service (``python -m modeldepot serve``,
real uvicorn, default log level) with a catalogue of 120 models from a local hub, and a
bare FastAPI app with one trivial route under the same uvicorn settings:

1. bare app ``/healthz`` (what the framework costs: the floor for our ``/healthz``);
2. service ``/healthz``;
3. service ``/api/v1/models/status/detailed``;
4. the same status while a throttled download of another model runs (progress events
   4 times a second, status changes).

    .venv/bin/python bench/status.py [--duration 10] [--connections 20] [--threads 2]

Prints a table (req/s, p50, p99, ratio to the service's ``/healthz``) and writes
``bench/out/status.md``. Not part of the test suite. Installs ``wrk`` with apt when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlbench.servers import free_port
from dlbench.system import SetupError, child_env, ensure_binaries, machine_facts

from modeldepot.testing import LocalHub, Throttle, demo_repo_files, write_random_file

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
# The largest page a client can ask for (issue 10 pages lists; the default is 20 models).
STATUS_PATH = "/api/v1/models/status/detailed?limit=100"
BIG_MODEL = "status-big"
BIG_REPO = "bench/status-big"
BIG_SIZE = 128 * 1024 * 1024
THROTTLE_BPS = 256 * 1024  # per CDN response; 16 connections -> about 4 MiB/s in all
_START_TIMEOUT_S = 60.0
_SETTLE_TIMEOUT_S = 120.0

# The bare app: one trivial route, run by uvicorn exactly as `modeldepot serve` runs ours
# (`uvicorn.run(app, host=..., port=..., log_level="info")` after a logging.basicConfig).
_BARE_APP = """\
import logging, sys
import uvicorn
from fastapi import FastAPI
logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = FastAPI()
@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(
    app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info", access_log=sys.argv[2] == "on",
    http=sys.argv[3],
)
"""


@dataclass(frozen=True)
class Plan:
    """How many catalogue models are installed, partial and missing."""

    installed: int
    partial: int
    missing: int

    @property
    def total(self) -> int:
        return self.installed + self.partial + self.missing


@dataclass(frozen=True)
class WrkResult:
    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str
    note: str = ""


# --- wrk -----------------------------------------------------------------------------


def run_wrk(
    wrk: str, url: str, *, label: str, args: argparse.Namespace, note: str = ""
) -> WrkResult:
    """A 2 s warm-up, then the measured run; parses req/s and the latency distribution."""
    base = [wrk, f"-t{args.threads}", f"-c{args.connections}", "--latency"]
    _wrk([*base, "-d2s", url])
    out = _wrk([*base, f"-d{args.duration}s", "--timeout", "5s", url])
    rate = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_find(r"(\d+) requests in", out))
    errors = []
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"{match.group(1)} non-2xx")
    if match := re.search(r"Socket errors: (.*)", out):
        errors.append(f"socket errors: {match.group(1)}")
    return WrkResult(
        label=label,
        requests_per_s=rate,
        p50_ms=_latency_ms(_find(r"\s50%\s+([\d.]+\w+)", out)),
        p99_ms=_latency_ms(_find(r"\s99%\s+([\d.]+\w+)", out)),
        requests=total,
        errors="; ".join(errors),
        note=note,
    )


def _wrk(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk output has no {pattern!r}:\n{text}")
    return match.group(1)


def _latency_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]
    return float(number) * scale


# --- the catalogue and the hub cache -------------------------------------------------


def publish_catalogue(hub: LocalHub, root: Path, plan: Plan) -> Path:
    """120 small demo repos (about 10 files each) plus one big throttled one; a TOML
    catalogue naming them all."""
    lines = []
    for index in range(plan.total):
        repo_id = f"bench/status-{index:03d}"
        hub.create_repo(repo_id, demo_repo_files("t2v", seed=index))
        lines.append(_catalogue_entry(f"status-{index:03d}", repo_id))
    big = write_random_file(root / "gen" / "model.safetensors", BIG_SIZE, seed=9)
    hub.create_repo(BIG_REPO, {"model.safetensors": big, "config.json": b"{}"})
    big.unlink()
    lines.append(_catalogue_entry(BIG_MODEL, BIG_REPO))
    catalogue = root / "catalog.toml"
    catalogue.write_text("\n".join(lines))
    return catalogue


def _catalogue_entry(model_id: str, repo_id: str) -> str:
    return textwrap.dedent(f"""\
        [[models]]
        id = "{model_id}"
        source = "hf://{repo_id}"
        model_type = "text-to-video"
        """)


def fill_cache(hub: LocalHub, models_dir: Path, plan: Plan) -> None:
    """Install the first models with huggingface_hub, as a user would have; the next ones
    partially (configs only); the rest stay missing."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    from huggingface_hub import snapshot_download

    def fetch(index: int) -> None:
        patterns = None if index < plan.installed else ["*.json", "README.md"]
        snapshot_download(
            f"bench/status-{index:03d}",
            cache_dir=models_dir,
            endpoint=hub.endpoint,
            allow_patterns=patterns,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, range(plan.installed + plan.partial)))


# --- the servers ---------------------------------------------------------------------


@contextlib.contextmanager
def running(argv: list[str], *, env: Mapping[str, str], port: int, log: Path) -> Iterator[str]:
    """Start a server process (its log to `log`, never a pipe), wait for /healthz, stop it."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=dict(env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(lambda: _get_json(f"{base}/healthz") is not None, _START_TIMEOUT_S, log)
            yield base
        except Exception:
            sink.flush()
            print(f"{argv[0]} exited with {process.poll()}; its log ends:", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(check: Any, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out; the server log ({log}) ends:\n{log.read_text()[-3000:]}")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post_json(url: str, body: Mapping[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def settled(base: str, plan: Plan) -> bool:
    """Every catalogue model resolved from the hub and judged as the plan says."""
    models: dict[str, Any] = {}
    page = pages = 1
    while page <= pages:  # every page: the catalogue has more models than one holds
        body = _get_json(f"{base}{STATUS_PATH}&page={page}")
        models.update(body["models"])
        pages, page = body["pagination"]["pages"], page + 1
    ours = {k: v for k, v in models.items() if k.startswith("status-")}
    if any(s["manifest_source"] != "hub" for s in ours.values()):
        return False
    counts: dict[str, int] = {}
    for status in ours.values():
        counts[status["availability_status"]] = counts.get(status["availability_status"], 0) + 1
    return counts == {
        "AVAILABLE": plan.installed,
        "PARTIAL": plan.partial,
        "MISSING": plan.missing + 1,  # + the big one
    }


# --- the run -------------------------------------------------------------------------


def measure_service(
    wrk: str, hub: LocalHub, root: Path, plan: Plan, args: argparse.Namespace
) -> tuple[list[WrkResult], int]:
    port = free_port()
    env = child_env(
        {
            "MODELDEPOT_MODELS_DIR": str(root / "models"),
            "MODELDEPOT_DATA_DIR": str(root / "data"),
            "MODELDEPOT_CATALOG": str(root / "catalog.toml"),
            "HF_ENDPOINT": hub.endpoint,
            "MODELDEPOT_ALLOWED_SOURCE_HOSTS": '["127.0.0.1"]',
            "MODELDEPOT_PORT": str(port),
        }
    )
    argv = [sys.executable, "-m", "modeldepot", "serve", "--port", str(port)]
    log = root / "service.log"
    with running(argv, env=env, port=port, log=log) as base:
        _wait_for(lambda: settled(base, plan), _SETTLE_TIMEOUT_S, log)
        total = int(_get_json(base + STATUS_PATH)["pagination"]["total"])
        results = [
            run_wrk(wrk, base + "/healthz", label="service /healthz", args=args),
            run_wrk(wrk, base + STATUS_PATH, label="status/detailed", args=args),
            _during_download(wrk, hub, base, args),
        ]
    return results, total


def _during_download(wrk: str, hub: LocalHub, base: str, args: argparse.Namespace) -> WrkResult:
    rule = hub.faults.add(Throttle(bytes_per_second=THROTTLE_BPS), server="cdn")
    manage = f"{base}/api/v1/models/download/manage"
    try:
        _post_json(manage, {"model_id": BIG_MODEL, "action": "start"})
        progress = f"{base}/api/v1/models/download/progress/{BIG_MODEL}"
        _wait_for(lambda: _get_json(progress)["downloaded_mb"] > 0, 30, Path("/dev/null"))
        before = _get_json(progress)
        result = run_wrk(wrk, base + STATUS_PATH, label="status/detailed, downloading", args=args)
        after = _get_json(progress)
        if after["status"] != "DOWNLOADING":
            raise RuntimeError(f"the download was not running throughout: {after}")
        moved = after["downloaded_mb"] - before["downloaded_mb"]
        note = f"download moved {moved:.1f} MB meanwhile, still {after['status']}"
        return WrkResult(**{**result.__dict__, "note": note})
    finally:
        with contextlib.suppress(OSError):
            _post_json(manage, {"model_id": BIG_MODEL, "action": "cancel"})
        hub.faults.remove(rule)


def measure_bare(
    wrk: str, root: Path, args: argparse.Namespace, *, access_log: bool, http: str = "auto"
) -> WrkResult:
    """The bare app; with ``access_log`` as uvicorn runs it by default (one log line per
    request, as ``modeldepot serve`` writes), without it to show what that line costs;
    ``http="h11"``: uvicorn's pure-Python parser, which ``modeldepot serve`` uses for its
    header limits and time-out (``modeldepot.api.server``), instead of httptools."""
    port = free_port()
    argv = [sys.executable, "-c", _BARE_APP, str(port), "on" if access_log else "off", http]
    label = "bare FastAPI route" + ("" if access_log else ", no access log")
    label += ", h11" if http == "h11" else ""
    with running(argv, env=child_env(), port=port, log=root / "bare.log") as base:
        return run_wrk(wrk, base + "/healthz", label=label, args=args)


# --- the report ----------------------------------------------------------------------


def table(results: list[WrkResult], healthz_rate: float) -> list[str]:
    rows = [
        "| endpoint | req/s | p50 ms | p99 ms | x service /healthz | requests | errors | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.label} | {r.requests_per_s:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.requests_per_s / healthz_rate:.2f} | {r.requests} | {r.errors or '-'} | "
            f"{r.note or '-'} |"
        )
    return rows


def checks(results: list[WrkResult]) -> list[str]:
    quiet, bare, bare_h11, healthz, status, busy = results
    lines = []
    for r in (status, busy):
        ratio = r.requests_per_s / healthz.requests_per_s
        ok = ratio >= 0.3 and r.p99_ms < 50
        lines.append(
            f"- {r.label}: {ratio:.2f} x /healthz (target >= 0.3), p99 {r.p99_ms:.1f} ms "
            f"(target < 50): {'met' if ok else 'NOT met'}"
        )
    lines.append(
        f"- service /healthz: {healthz.requests_per_s / bare.requests_per_s:.2f} x a bare "
        f"FastAPI route, {healthz.requests_per_s / bare_h11.requests_per_s:.2f} x one on h11 "
        "(what our middleware and the route cost)"
    )
    lines.append(
        f"- uvicorn's access log line: the bare route does {bare.requests_per_s:.0f} req/s "
        f"with it, {quiet.requests_per_s:.0f} without"
    )
    return lines


def report(results: list[WrkResult], *, plan: Plan, total: int, args: argparse.Namespace) -> str:
    facts = machine_facts()
    healthz = results[3].requests_per_s  # the service's own /healthz
    lines = [
        f"# Status at speed ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency (after a 2 s "
        f"warm-up); catalogue of {total} models, listed 100 a page ({plan.installed} "
        f"installed, {plan.partial} partial, {plan.missing + 1} missing, 3 built-in "
        "unreachable); `modeldepot serve` "
        "with default settings (log level info).",
        f"Machine: {facts['nproc']} CPU ({facts['cpu']}), Python {facts['python']}; wrk, the "
        "server and the local hub share these CPUs.",
        "",
        *table(results, healthz),
        "",
        *checks(results),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    try:
        wrk = ensure_binaries(("wrk",), ("wrk",))["wrk"]
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    plan = Plan(installed=40, partial=20, missing=60)
    with (
        tempfile.TemporaryDirectory(prefix="status-bench-") as tmp,
        LocalHub(Path(tmp) / "hub") as hub,
    ):
        root = Path(tmp)
        print(f"publishing {plan.total + 1} repos and filling the cache ...", flush=True)
        publish_catalogue(hub, root, plan)
        fill_cache(hub, root / "models", plan)
        hub.requests.clear()
        bare = measure_bare(wrk, root, args, access_log=True)
        quiet = measure_bare(wrk, root, args, access_log=False)
        bare_h11 = measure_bare(wrk, root, args, access_log=True, http="h11")
        service, total = measure_service(wrk, hub, root, plan, args)
    text = report([quiet, bare, bare_h11, *service], plan=plan, total=total, args=args)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "status.md").write_text(text)
    print(f"written to {args.out / 'status.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
