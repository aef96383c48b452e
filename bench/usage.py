"""Usage at volume: ingest rate and analytics latency on SQLite and PostgreSQL (issue 11).

For each database the real service (``python -m modeldepot serve``, offline, a temporary
data and models directory, a TOML catalogue of ``--models`` models that exist nowhere) is
started, then:

1. ``--events`` usage events (about 80 % ``generation_completed`` with a duration, 10 %
   ``generation_failed``, 10 % ``generation_started``) at random times from the first UTC
   day of ``period=month`` until now, over the models at random, are generated lazily in
   batches of 1000 and sent by ``--clients`` concurrent httpx clients to
   ``POST /api/v1/models/usage``: events/s and wall time (generating the batches included);
2. every event is checked to be counted (the answers' ``accepted`` and the analytics'
   totals against what was generated), so a fast run that lost events cannot pass;
3. ``--queries`` sequential ``GET /api/v1/models/analytics?period=month`` and as many of
   ``/analytics/{a random model}?period=month``, after 3 unmeasured warm-up requests each:
   p50, p99 and max latency, against the targets p50 < 300 ms and p99 < 1 s.

    .venv/bin/python bench/usage.py [--events 1000000] [--models 100] [--queries 200]
        [--clients 4] [--backend sqlite|postgres|both] [--postgres-url URL]

PostgreSQL runs in a fresh schema ``bench_<random>``, dropped afterwards. Prints a table
and writes ``bench/out/usage.md``. A backend whose run fails (a report refused, an event
not counted) is listed as failed with the error, the others still run, and the exit
status is 1. Not part of the test suite (``tests/test_bench_usage.py``
runs it at a tiny scale).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from dlbench.report import markdown_table
from dlbench.servers import free_port
from dlbench.system import child_env, machine_facts
from status import running

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
USAGE_PATH = "/api/v1/models/usage"
ANALYTICS_PATH = "/api/v1/models/analytics"
BATCH_SIZE = 1000  # the most one report may carry (usage.schemas.MAX_EVENTS_PER_BATCH)
MONTH_DAYS = 30  # period=month: today and the 29 UTC days before it
WARM_UP = 3
P50_TARGET_MS = 300.0
P99_TARGET_MS = 1000.0
APP_INSTANCES = 8  # distinct `client` values in the events (not the HTTP clients)
_UNREACHABLE_HUB = "http://127.0.0.1:9"  # belt and braces: the service is offline too


# --- the events ----------------------------------------------------------------------


@dataclass
class Generated:
    """What the batches held so far, to check the service counted every event."""

    completed: int = 0
    failed: int = 0
    started: int = 0
    seconds_generating: float = 0.0

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.started


@dataclass(frozen=True)
class Workload:
    events: int
    model_ids: tuple[str, ...]
    seed: int
    first_day: date  # the first UTC day the events fall on (period=month's first day)


def event_batches(workload: Workload, tally: Generated) -> Iterator[bytes]:
    """The request bodies, one batch at a time (never the whole workload in memory)."""
    rng = random.Random(workload.seed)
    run = secrets.token_hex(4)  # unique event ids, also across runs on one database
    start = datetime.combine(workload.first_day, datetime.min.time(), UTC).timestamp()
    for first in range(0, workload.events, BATCH_SIZE):
        began = time.perf_counter()
        span = time.time() - start  # never ahead of the service's clock
        count = min(BATCH_SIZE, workload.events - first)
        events = [
            _event(rng, f"{run}-{first + n:08d}", workload, at=start + rng.random() * span)
            for n in range(count)
        ]
        for event in events:
            _count(tally, event["type"])
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        tally.seconds_generating += time.perf_counter() - began
        yield body


def _event(rng: random.Random, event_id: str, workload: Workload, *, at: float) -> dict[str, Any]:
    draw = rng.random()
    event: dict[str, Any] = {
        "event_id": event_id,
        "model_id": rng.choice(workload.model_ids),
        "type": "generation_started",
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "client": f"bench-app-{rng.randrange(APP_INSTANCES)}",
    }
    if draw < 0.8:
        event["type"] = "generation_completed"
        event["duration_seconds"] = round(rng.lognormvariate(3.0, 0.6), 3)  # median ~20 s
    elif draw < 0.9:
        event["type"] = "generation_failed"
    return event


def _count(tally: Generated, kind: str) -> None:
    if kind == "generation_completed":
        tally.completed += 1
    elif kind == "generation_failed":
        tally.failed += 1
    else:
        tally.started += 1


# --- ingest --------------------------------------------------------------------------


@dataclass
class Ingest:
    seconds: float = 0.0
    accepted: int = 0
    duplicates: int = 0


async def ingest(http: httpx.AsyncClient, batches: Iterator[bytes], *, clients: int) -> Ingest:
    """`clients` concurrent senders share one lazy stream of batches; each sends its next
    batch once the previous one is answered (stored), as an app's reporter does."""
    result = Ingest()

    async def sender() -> None:
        for body in batches:  # next() never yields to the loop: no batch is taken twice
            response = await http.post(
                USAGE_PATH, content=body, headers={"content-type": "application/json"}
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"POST {USAGE_PATH} answered {response.status_code}: {response.text[:600]}"
                )
            answer = response.json()
            result.accepted += answer["accepted"]
            result.duplicates += answer["duplicates"]

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(sender())
    result.seconds = time.perf_counter() - began
    return result


async def check_counted(
    http: httpx.AsyncClient, workload: Workload, tally: Generated, sent: Ingest
) -> None:
    """Every generated event stored and counted by the analytics.

    The range is asked with explicit dates from the events' first day to today, so a run
    that crosses midnight UTC still covers every event.

    Raises:
        RuntimeError: a count differs.
    """
    end = datetime.now(UTC).date()
    params = {"start_date": workload.first_day.isoformat(), "end_date": end.isoformat()}
    response = await http.get(ANALYTICS_PATH, params=params)
    response.raise_for_status()
    models = [m for m in response.json()["models"].values() if m["model_id"] in workload.model_ids]
    found = {
        "accepted": sent.accepted,
        "duplicates": sent.duplicates,
        "completed": sum(m["completed"] for m in models),
        "failed": sum(m["failed"] for m in models),
        "started": sum(m["started"] for m in models),
    }
    expected = {
        "accepted": tally.total,
        "duplicates": 0,
        "completed": tally.completed,
        "failed": tally.failed,
        "started": tally.started,
    }
    if found != expected:
        raise RuntimeError(f"the service did not count every event: {found} != {expected}")


# --- analytics latency ---------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    samples_ms: tuple[float, ...]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)

    @property
    def max(self) -> float:
        return max(self.samples_ms)

    @property
    def meets_target(self) -> bool:
        return self.p50 < P50_TARGET_MS and self.p99 < P99_TARGET_MS


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (with 200 samples p99 is the second slowest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


async def time_requests(http: httpx.AsyncClient, paths: Sequence[str]) -> Latency:
    """GET each path in turn (one at a time): milliseconds until the body is read."""
    samples = []
    for path in paths:
        began = time.perf_counter()
        response = await http.get(path)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        samples.append(elapsed)
    return Latency(tuple(samples))


async def measure_analytics(
    http: httpx.AsyncClient, workload: Workload, *, queries: int
) -> tuple[Latency, Latency]:
    rng = random.Random(workload.seed + 1)
    everyone = f"{ANALYTICS_PATH}?period=month"
    ones = [
        f"{ANALYTICS_PATH}/{rng.choice(workload.model_ids)}?period=month"
        for _ in range(WARM_UP + queries)
    ]
    await time_requests(http, [everyone] * WARM_UP + ones[:WARM_UP])
    return (
        await time_requests(http, [everyone] * queries),
        await time_requests(http, ones[WARM_UP:]),
    )


# --- one backend ---------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    events: int
    ingest: Ingest
    generating_s: float
    analytics_all: Latency
    analytics_one: Latency
    peak_rss_mb: float | None

    @property
    def meets_target(self) -> bool:
        return self.analytics_all.meets_target and self.analytics_one.meets_target


@dataclass(frozen=True)
class Failure:
    """A backend whose run stopped: reported in the table, the other backends still run."""

    backend: str
    events: int
    error: str


async def exercise(
    base: str, *, backend: str, workload: Workload, args: argparse.Namespace
) -> BackendResult:
    tally = Generated()
    # trust_env=False: no proxy from the environment; traffic stays on 127.0.0.1.
    async with httpx.AsyncClient(base_url=base, timeout=300, trust_env=False) as http:
        print(f"  ingesting {workload.events} events ...", flush=True)
        sent = await ingest(http, event_batches(workload, tally), clients=args.clients)
        await check_counted(http, workload, tally, sent)
        print(f"  {args.queries} + {args.queries} analytics queries ...", flush=True)
        everyone, one = await measure_analytics(http, workload, queries=args.queries)
    peak = service_peak_rss_mb(base)
    return BackendResult(
        backend=backend,
        events=workload.events,
        ingest=sent,
        generating_s=tally.seconds_generating,
        analytics_all=everyone,
        analytics_one=one,
        peak_rss_mb=peak,
    )


def service_peak_rss_mb(base: str) -> float | None:
    """The service's peak resident memory (``VmHWM``), found by the port it serves on
    among this machine's processes (Linux ``/proc``); None if it cannot be read."""
    port = base.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"modeldepot" not in argv or port.encode() not in argv:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1000
        except OSError:
            continue
    return None


def write_catalogue(path: Path, model_ids: Sequence[str]) -> None:
    """Text-to-video entries on hub repos that exist nowhere: usage reports need only ids."""
    entries = (
        textwrap.dedent(f"""\
            [[models]]
            id = "{model_id}"
            source = "hf://bench/{model_id}"
            model_type = "text-to-video"
            """)
        for model_id in model_ids
    )
    path.write_text("\n".join(entries))


def run_backend(
    backend: str, workload: Workload, args: argparse.Namespace
) -> BackendResult | Failure:
    """A fresh service on a fresh database; the temporary directory (and the PostgreSQL
    schema) removed afterwards. A refused report or a miscount is a `Failure`."""
    print(f"{backend}:", flush=True)
    schema = f"bench_{secrets.token_hex(6)}" if backend == "postgres" else None
    with tempfile.TemporaryDirectory(prefix="usage-bench-") as tmp:
        root = Path(tmp)
        write_catalogue(root / "catalog.toml", workload.model_ids)
        port = free_port()
        env = child_env(_service_settings(root, port=port, schema=schema, args=args))
        argv = [sys.executable, "-m", "modeldepot", "serve", "--port", str(port)]
        try:
            with running(argv, env=env, port=port, log=root / "service.log") as base:
                try:
                    return asyncio.run(
                        exercise(base, backend=backend, workload=workload, args=args)
                    )
                except (RuntimeError, httpx.HTTPError, ExceptionGroup) as exc:
                    error = _first_leaf(exc)
                    print(f"  failed: {error}", file=sys.stderr, flush=True)
                    return Failure(backend, workload.events, f"{type(error).__name__}: {error}")
        finally:
            if schema is not None:
                asyncio.run(drop_schema(args.postgres_url, schema))


def _service_settings(
    root: Path, *, port: int, schema: str | None, args: argparse.Namespace
) -> dict[str, str]:
    settings = {
        "MODELDEPOT_MODELS_DIR": str(root / "models"),
        "MODELDEPOT_DATA_DIR": str(root / "data"),
        "MODELDEPOT_CATALOG": str(root / "catalog.toml"),
        "MODELDEPOT_OFFLINE": "true",
        "MODELDEPOT_HF_ENDPOINT": _UNREACHABLE_HUB,
        "MODELDEPOT_PORT": str(port),
    }
    if schema is not None:
        settings["MODELDEPOT_DATABASE_URL"] = args.postgres_url
        settings["MODELDEPOT_DATABASE_SCHEMA"] = schema
    return settings


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: what a sender raised."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await connection.close()


# --- the report ----------------------------------------------------------------------


HEADERS = (
    "backend",
    "events",
    "ingest events/s",
    "ingest s",
    "analytics all p50 / p99 / max ms",
    "analytics one p50 / p99 / max ms",
    "service peak RSS MB",
    "meets target",
)


def table(results: Sequence[BackendResult | Failure]) -> str:
    return markdown_table(HEADERS, [_row(r) for r in results])


def _row(r: BackendResult | Failure) -> list[str]:
    if isinstance(r, Failure):
        return [r.backend, f"{r.events:,}", "-", "-", "-", "-", "-", "NO: failed (below)"]
    return [
        r.backend,
        f"{r.events:,}",
        f"{r.events / r.ingest.seconds:,.0f}",
        f"{r.ingest.seconds:.1f}",
        _latencies(r.analytics_all),
        _latencies(r.analytics_one),
        "?" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
        "yes" if r.meets_target else "NO",
    ]


def _latencies(latency: Latency) -> str:
    return f"{latency.p50:.1f} / {latency.p99:.1f} / {latency.max:.1f}"


def report(results: Sequence[BackendResult | Failure], args: argparse.Namespace) -> str:
    failures = [f"- {r.backend}: {r.error}" for r in results if isinstance(r, Failure)]
    lines = [
        f"# Usage at volume ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        *_setup(results, args),
        "",
        table(results),
        "",
        f"Target (issue 11): p50 < {P50_TARGET_MS:.0f} ms and p99 < {P99_TARGET_MS:.0f} ms "
        "for both analytics requests.",
        *(["", "Failures:", *failures] if failures else []),
        "",
    ]
    return "\n".join(lines)


def _setup(results: Sequence[BackendResult | Failure], args: argparse.Namespace) -> list[str]:
    """What was run, on what: the paragraph above the table."""
    facts = machine_facts()
    shared = "the clients and the service"
    if any(r.backend == "postgres" for r in results):
        shared += " (and PostgreSQL)"
    generating = "; ".join(
        f"{r.backend}: {r.generating_s:.1f} s of {r.ingest.seconds:.1f} s"
        for r in results
        if isinstance(r, BackendResult)
    )
    return [
        f"{args.events:,} usage events (about 80 % completed with a duration, 10 % failed, "
        f"10 % started) over {args.models} models at random times of the last {MONTH_DAYS} "
        f"UTC days, sent by {args.clients} concurrent httpx clients in batches of "
        f"{BATCH_SIZE} to `POST {USAGE_PATH}` of `modeldepot serve` (default settings, "
        "offline); every event checked to be counted. Then "
        f"{args.queries} sequential requests each of `GET {ANALYTICS_PATH}?period=month` "
        f"(every catalogue model) and `{ANALYTICS_PATH}/{{random model}}?period=month`, "
        f"after {WARM_UP} warm-up requests each.",
        "",
        f"Machine: {facts['nproc']} CPU ({facts['cpu']}), {facts['memory']}, Python "
        f"{facts['python']}; {shared} share these CPUs. Generating the batches (in the "
        f"clients, part of the ingest wall time) took {generating or '-'}.",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=_positive, default=1_000_000)
    parser.add_argument("--models", type=_positive, default=100)
    parser.add_argument("--queries", type=_positive, default=200, help="per analytics request")
    parser.add_argument("--clients", type=_positive, default=4, help="concurrent senders")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def main() -> int:
    args = parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    workload = Workload(
        events=args.events,
        model_ids=tuple(f"usage-{n:03d}" for n in range(args.models)),
        seed=args.seed,
        first_day=datetime.now(UTC).date() - timedelta(days=MONTH_DAYS - 1),
    )
    results = [run_backend(backend, workload, args) for backend in backends]
    text = report(results, args)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "usage.md").write_text(text)
    print(f"written to {args.out / 'usage.md'}")
    return 1 if any(isinstance(r, Failure) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
