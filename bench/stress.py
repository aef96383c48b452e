"""Run the download stress trial (tests/downloads/stress.py) over many seeds.

    .venv/bin/python bench/stress.py --seeds 50            # SQLite
    .venv/bin/python bench/stress.py --seeds 50 --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

Each trial fires randomised bursts of concurrent start/pause/resume/cancel/priority/update
requests at three models behind a throttled local hub (sometimes restarting the service
between bursts), lets everything settle and checks the invariants listed in
tests/downloads/stress.py. Prints one line per trial and a summary; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.downloads.stress import publish_models, run_trial  # noqa: E402

from modeldepot.settings import Settings  # noqa: E402
from modeldepot.testing import LocalHub  # noqa: E402


def fast_settings(root: Path, hub: LocalHub, database: dict[str, Any], **more: Any) -> Settings:
    return Settings(
        models_dir=root / "models",
        data_dir=root / "data",
        hf_endpoint=hub.endpoint,
        hf_token=None,
        offline=False,
        allowed_models_roots=[root],
        hub_timeout_seconds=3,
        status_cache_ttl_seconds=0,
        min_segment_mb=0.25,
        stall_timeout_seconds=3,
        retry_base_delay_seconds=0.01,
        retry_max_delay_seconds=0.05,
        checkpoint_interval_seconds=0.05,
        **database,
        **more,
    )


async def trial(seed: int, postgres: str | None) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="stress-") as tmp, LocalHub(Path(tmp) / "hub") as hub:
        root = Path(tmp)
        database: dict[str, Any] = {}
        if postgres:
            database = {"database_url": postgres, "database_schema": f"s_{secrets.token_hex(6)}"}
        models = publish_models(hub, tag=f"b{seed}")
        started = time.monotonic()
        report = await run_trial(
            seed,
            hub=hub,
            models=models,
            make_settings=lambda **more: fast_settings(root, hub, database, **more),
        )
        if postgres:
            await _drop_schema(postgres, database["database_schema"])
        line = (
            f"seed {seed:4d}: {report.requests:3d} requests"
            f" {dict(sorted(report.by_status.items()))}"
            f" restarts {report.restarts} final {sorted(report.final.values())}"
            f" {time.monotonic() - started:5.1f} s"
        )
        if report.problems:
            line += "\n    " + "\n    ".join(report.problems)
        return not report.problems, line


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await connection.close()


UNRAISABLE: list[str] = []


def _record_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """A leaked socket or file shows up here (warnings are errors, as in the suite)."""
    UNRAISABLE.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of trials")
    parser.add_argument("--first", type=int, default=1000, help="first seed")
    parser.add_argument("--postgres", help="run on this PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    warnings.simplefilter("error")  # as pytest's filterwarnings = error
    sys.unraisablehook = _record_unraisable
    failed = 0
    for seed in range(args.first, args.first + args.seeds):
        ok, line = asyncio.run(trial(seed, args.postgres))
        gc.collect()
        if UNRAISABLE:
            ok, line = False, line + "\n    unraisable: " + "; ".join(UNRAISABLE)
            UNRAISABLE.clear()
        failed += not ok
        print(("ok   " if ok else "FAIL ") + line, flush=True)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{args.seeds - failed}/{args.seeds} trials held every invariant ({backend})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
