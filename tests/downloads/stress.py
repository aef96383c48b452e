"""Randomised bursts of concurrent control actions, and the invariants that must hold after.

One trial (``run_trial``): three models on the local hub behind a throttled CDN; a seeded
random sequence of bursts, each firing several start / pause / resume / cancel /
set_priority / update requests at once (at one model or at several), sometimes a restart
of the service in between; then everything is let settle (paused downloads resumed or
cancelled, queue drained) and checked:

* no answer was a 5xx, and every answer is one the API documents for that action;
* at no point does the database hold more than one active row per model;
* the API, the database and the disk agree: the newest job's status is the same in the
  progress answer and in its row; a COMPLETED model is AVAILABLE, its ref names the
  commit, huggingface_hub loads it with ``local_files_only=True`` and every byte is right;
  no partial file is left behind by a settled model;
* nothing was logged at ERROR (no task died with an unhandled exception).

Used by tests/downloads/test_stress.py (a few seeds) and bench/stress.py (many seeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from sqlalchemy import func, select

from modeldepot.downloads.models import DownloadRow
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, Throttle
from tests.support import RunningApp, hub_entry, run_app

ACTIONS = ("start", "pause", "resume", "cancel", "set_priority", "update")
WEIGHTS = (4, 3, 3, 1, 1, 1)  # starts and pause/resume dominate: that is where races were
ALLOWED_STATUS = {
    "start": {200, 409},
    "pause": {200, 404, 409},
    "resume": {200, 404, 409},
    "cancel": {200, 404, 409},
    "set_priority": {200, 404},
    "update": {200, 404},
}
ACTIVE_STATUSES = ("QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING")
PRIORITIES = ("critical", "high", "normal", "low")
BIG_SIZE = 1_500_000


@dataclass
class StressModel:
    model_id: str
    repo_id: str
    files: dict[str, bytes]
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Every commit published so far and its files (the newest is ``files``)."""


@dataclass
class TrialReport:
    seed: int
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    restarts: int = 0
    final: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def publish_models(hub: LocalHub, *, tag: str) -> list[StressModel]:
    """Three repos: two with a multi-segment file, one small; one file shared by two."""
    rng = random.Random(tag)
    shared = rng.randbytes(BIG_SIZE)
    layouts = {
        "alpha": {"config.json": b'{"a": 1}\n', "model.safetensors": shared},
        "beta": {"config.json": b'{"b": 2}\n', "unet/model.safetensors": rng.randbytes(900_000)},
        "gamma": {"config.json": b'{"c": 3}\n', "weights.safetensors": shared},
    }
    models = []
    for name, files in layouts.items():
        repo_id = f"stress-{tag}/{name}"
        commit = hub.create_repo(repo_id, files)
        models.append(
            StressModel(
                model_id=f"{name}-{tag}", repo_id=repo_id, files=files, commits={commit: files}
            )
        )
    return models


async def _new_commit(
    app: RunningApp, hub: LocalHub, rng: random.Random, models: list[StressModel]
) -> None:
    """The hub publishes a new commit of a model and the service is asked to look: the
    next start is an update (a download beside the installed revision, then a ref switch)."""
    model = rng.choice(models)
    weights = next(path for path in model.files if path.endswith(".safetensors"))
    changed = {**model.files, weights: rng.randbytes(len(model.files[weights]))}
    commit = hub.commit(model.repo_id, add={weights: changed[weights]})
    model.files, model.commits[commit] = changed, changed
    await app.client.get(f"/api/v1/models/status/detailed/{model.model_id}?refresh=true")


async def run_trial(
    seed: int,
    *,
    hub: LocalHub,
    models: list[StressModel],
    make_settings: Callable[..., Settings],
    bursts: int = 12,
) -> TrialReport:
    """One seeded trial; ``report.problems`` lists every invariant broken (empty: fine)."""
    rng = random.Random(seed)
    report = TrialReport(seed=seed)
    hub.faults.clear()
    # Per response: a file moves at a few times this over its connections.
    hub.faults.add(Throttle(bytes_per_second=rng.choice([100_000, 200_000, 400_000])))
    settings = make_settings(downloads={"max_concurrent_downloads": rng.choice([1, 2, 3])})
    entries = tuple(hub_entry(m.model_id, m.repo_id) for m in models)
    with _errors_logged() as errors:
        restart_after = rng.randrange(bursts + 1)  # == bursts: no restart in this trial
        async with _app(settings, entries) as app:
            for number in range(bursts):
                if rng.random() < 0.25:
                    await _new_commit(app, hub, rng, models)
                await _burst(app, rng, models, report)
                await _check_one_active(app, report)
                if number == restart_after:
                    break
        if restart_after < bursts:
            report.restarts += 1
            async with _app(settings, entries) as app:
                await _check_one_active(app, report)
                for _ in range(bursts - restart_after - 1):
                    await _burst(app, rng, models, report)
                await _settle(app, rng, models, report)
                await _verify(app, models, settings, report)
        else:
            async with _app(settings, entries) as app:
                await _settle(app, rng, models, report)
                await _verify(app, models, settings, report)
    report.problems += [f"logged at ERROR: {message}" for message in errors]
    return report


@asynccontextmanager
async def _app(settings: Settings, entries: tuple[Any, ...]) -> AsyncIterator[RunningApp]:
    async with run_app(settings, entries=entries) as app:
        yield app


async def _burst(
    app: RunningApp, rng: random.Random, models: list[StressModel], report: TrialReport
) -> None:
    targets = [rng.choice(models)] if rng.random() < 0.6 else models
    actions = rng.choices(ACTIONS, weights=WEIGHTS, k=rng.randint(2, 8))
    calls = [_action(app, action, rng.choice(targets).model_id, rng) for action in actions]
    for action, response in await asyncio.gather(*calls):
        report.requests += 1
        report.by_status[response.status_code] = report.by_status.get(response.status_code, 0) + 1
        if response.status_code not in ALLOWED_STATUS[action]:
            report.problems.append(f"{action} answered {response.status_code}: {response.text}")
    # Let some bytes flow before the next burst: wait for a progress event the bus carries.
    await _some_progress(app, rng)


async def _action(app: RunningApp, action: str, model_id: str, rng: random.Random) -> Any:
    body: dict[str, Any] = {"model_id": model_id, "action": action}
    if action in ("start", "set_priority") or (action == "update" and rng.random() < 0.5):
        body["priority"] = rng.choice(PRIORITIES)
    if action in ("start", "update") and rng.random() < 0.5:
        body["bandwidth_limit_mbps"] = rng.choice([0, 1, 5])
    if action == "update" and rng.random() < 0.3:
        body["max_retries"] = rng.randint(0, 5)
    response = await app.client.post("/api/v1/models/download/manage", json=body)
    return action, response


async def _some_progress(app: RunningApp, rng: random.Random) -> None:
    events = rng.randint(0, 6)
    if not events or not app.services.downloads.active().active_downloads:
        await asyncio.sleep(0)
        return
    subscription = app.services.bus.subscribe()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                for _ in range(events):
                    await subscription.get()
    finally:
        subscription.close()


async def _check_one_active(app: RunningApp, report: TrialReport) -> None:
    async with app.services.sessions() as session:
        query = (
            select(DownloadRow.model_id, func.count())
            .where(DownloadRow.status.in_(ACTIVE_STATUSES))
            .group_by(DownloadRow.model_id)
        )
        for model_id, count in (await session.execute(query)).all():
            if count > 1:
                report.problems.append(f"{count} active rows for {model_id}")


async def _settle(
    app: RunningApp, rng: random.Random, models: list[StressModel], report: TrialReport
) -> None:
    """Resume or cancel what is paused; then let the queue drain."""
    for model in models:
        job = app.services.downloads.job(model.model_id)
        if job is not None and job.status.value == "PAUSED":
            action = "resume" if rng.random() < 0.7 else "cancel"
            _, response = await _action(app, action, model.model_id, rng)
            if response.status_code != 200:
                report.problems.append(f"settling {action} answered {response.status_code}")
    await asyncio.wait_for(app.services.downloads.run_until_idle(), 60)


async def _verify(
    app: RunningApp, models: list[StressModel], settings: Settings, report: TrialReport
) -> None:
    async with app.services.sessions() as session:
        rows = {row.id: row for row in (await session.scalars(select(DownloadRow))).all()}
    for model in models:
        await _verify_model(app, model, settings, rows, report)


async def _verify_model(
    app: RunningApp,
    model: StressModel,
    settings: Settings,
    rows: dict[str, DownloadRow],
    report: TrialReport,
) -> None:
    progress = await app.client.get(f"/api/v1/models/download/progress/{model.model_id}")
    status = (await app.client.get(f"/api/v1/models/status/detailed/{model.model_id}")).json()
    folder = settings.models_dir / ("models--" + model.repo_id.replace("/", "--"))
    partials = sorted(p.name for p in folder.glob("blobs/*modeldepot-partial*"))
    if progress.status_code == 404:
        report.final[model.model_id] = "never started"
        return
    body = progress.json()
    job_status = body["status"]
    report.final[model.model_id] = job_status
    row = rows.get(body["download_id"])
    if row is None or row.status != job_status:
        report.problems.append(
            f"{model.model_id}: API says {job_status}, DB says {row and row.status}"
        )
    if job_status == "FAILED":  # the hub is healthy: nothing may fail under any ordering
        report.problems.append(f"{model.model_id}: FAILED: {body['error_message']}")
    if job_status in ACTIVE_STATUSES:
        report.problems.append(f"{model.model_id}: still {job_status} after settling")
    if job_status == "COMPLETED":
        problems = _loadable(model, settings.models_dir, body["commit"])
        # The service was told of every new commit (_new_commit refreshes): an older one
        # installed is an available update, the newest one is simply available.
        newest = list(model.commits)[-1]
        expected = "AVAILABLE" if body["commit"] == newest else "UPDATE_AVAILABLE"
        if status["availability_status"] != expected:
            problems.append(f"status {status['availability_status']}, expected {expected}")
        report.problems += [f"{model.model_id}: {p}" for p in problems]
    elif job_status == "CANCELLED" and partials:
        report.problems.append(f"{model.model_id}: cancelled but partial files left: {partials}")
    installed = status["availability_status"] in ("AVAILABLE", "UPDATE_AVAILABLE")
    if installed and not (folder / "refs" / "main").is_file():
        report.problems.append(f"{model.model_id}: AVAILABLE without refs/main")


def _loadable(model: StressModel, models_dir: Path, commit: str) -> list[str]:
    try:
        folder = Path(snapshot_download(model.repo_id, cache_dir=models_dir, local_files_only=True))
    except Exception as exc:  # huggingface_hub's own verdict is what we report
        return [f"huggingface_hub cannot load it: {exc!r}"]
    problems = []
    if folder.name != commit:
        problems.append(f"huggingface_hub loads {folder.name}, the download was {commit}")
    for path, data in model.commits.get(commit, {}).items():
        on_disk = (folder / path).read_bytes() if (folder / path).exists() else b""
        if hashlib.sha256(on_disk).digest() != hashlib.sha256(data).digest():
            problems.append(f"{path} has wrong bytes")
    return problems


@contextlib.contextmanager
def _errors_logged() -> Any:
    """Collect every ERROR record logged while the block runs (asyncio's "Task exception
    was never retrieved" included)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)
