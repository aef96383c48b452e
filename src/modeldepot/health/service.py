"""Health checks: runs them in the background, stores verdicts, feeds status and alerts.

A check request creates a ``check_<hex>`` run (queued) and returns at once with an
``estimated_completion``: now + bytes to read / hash rate, the rate being the last measured
one (the assumed :data:`ASSUMED_HASH_BPS` before any). Runs are bounded: one per model at
a time (a per-model lock; a request for a type already queued or running for the model
joins it), ``health_check_concurrency`` across models (a semaphore); hashing and reading
run in worker threads, never on the event loop.

Check types
    full         hash every file of the installed commit + structure (``integrity.py``)
    integrity    quick: sizes + structure; hash only files whose (size, mtime_ns, inode)
                 changed since their last full verification (digest cache in the
                 database); ``force_check`` hashes everything
    performance  read throughput and safetensors header parse time, scored against the
                 model's own history (``performance.py``)

The installed commit and its manifest come from ``HubCache.installed`` (the one rule for
every service). A model with nothing installed completes as ``missing`` without reading
anything.

What the verdicts feed
    status   (as a ``StatusContributor``): ``integrity_score``, ``corruption_detected``,
             ``last_health_check`` from the newest completed full/integrity check of the
             installed commit, ``performance_score`` from the newest performance check. A
             corrupted verdict makes the model ``CORRUPTED`` and unavailable. An active
             download of the model (the download engine's contributor runs first) keeps its
             status and drops the verdict: the bytes are being replaced. After each check
             the status is recomputed, which publishes ``model_availability_change``.
    alerts   a ``model_health_alert`` for every check that finds a problem in an installed
             model (see :class:`~modeldepot.events.ModelHealthAlert`); none when healthy.

Health view (``GET /models/health``)
    A model whose installed commit has a completed integrity verdict shows it. Otherwise
    the cheap size-only observation of the status decides: nothing installed -> ``missing``;
    missing files -> ``degraded``; wrong sizes -> ``corrupted`` (issues listed, no score);
    all present with the right sizes -> ``unknown`` (not yet proven; recommendation: run a
    full check). ``system_health.overall_score`` is the mean ``integrity_score`` of the
    models summarised (every catalogue model for the list, whichever page the API shows;
    the one model for ``/models/health/{id}``) that have a verdict and something installed
    (null when none); the counts count ``overall_health``; ``last_system_check`` is the
    newest ``last_check``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.availability.schemas import AvailabilityStatus, ModelStatus
from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.manifest import ManifestFile
from modeldepot.catalog.service import CatalogService
from modeldepot.errors import CheckNotFound
from modeldepot.events import EventBus, ModelHealthAlert
from modeldepot.health import performance, repo
from modeldepot.health.integrity import (
    IntegrityReport,
    judge,
    known_digests,
    observe_files,
)
from modeldepot.health.models import HealthCheckRow
from modeldepot.health.performance import Measurement, PerformanceSource
from modeldepot.health.schemas import (
    TRANSITIONS,
    CheckStatus,
    CheckType,
    HealthCheckPublic,
    HealthCheckStarted,
    HealthIssue,
    HealthResponse,
    ModelHealth,
)
from modeldepot.health.views import build_alert, newest, system_health, unverified_health
from modeldepot.ids import validate_check_id
from modeldepot.store.cache import HubCache, Installed

logger = logging.getLogger(__name__)
VerdictListener = Callable[[str, ModelHealthAlert | None], None]

ASSUMED_HASH_BPS = 500e6
"""Hash rate assumed before one was measured (bytes/s, a cautious sha256 on one core)."""
INTEGRITY_TYPES = ("full", "integrity")
ACTIVE_DOWNLOAD = frozenset({"QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING"})
PERF_HISTORY = 10


def _now() -> datetime:
    return datetime.now(UTC)


def new_check_id() -> str:
    return f"check_{secrets.token_hex(8)}"


class HealthService:
    """Health checks of catalogue models; also a ``StatusContributor``."""

    def __init__(
        self,
        *,
        catalog: CatalogService,
        availability: AvailabilityService,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        cache: HubCache,
        concurrency: int,
        perf_read_bytes: int,
    ) -> None:
        self._catalog = catalog
        self._availability = availability
        self._bus = bus
        self._sessions = sessions
        self._cache = cache
        self._limit = asyncio.Semaphore(concurrency)
        self._perf_read_bytes = perf_read_bytes
        self._model_locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[tuple[str, str, bool], str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._verdicts: dict[str, HealthCheckPublic] = {}
        self._performance: dict[str, HealthCheckPublic] = {}
        self._last_full: dict[str, datetime] = {}
        self._hash_bps = ASSUMED_HASH_BPS
        self._sources: list[PerformanceSource] = []
        self._verdict_listeners: list[VerdictListener] = []

    # --- lifecycle ---------------------------------------------------------------------

    async def load(self) -> None:
        """Restore the newest verdicts; runs a previous process left unfinished fail."""
        async with self._sessions() as session, session.begin():
            for row in await repo.unfinished_runs(session):
                row.status = CheckStatus.FAILED
                row.finished_at = _now()
                row.error = "interrupted: the service stopped before the check finished"
            verdicts = await repo.latest_completed_per_model(session, check_types=INTEGRITY_TYPES)
            perf = await repo.latest_completed_per_model(session, check_types=("performance",))
            fulls = await repo.latest_completed_per_model(session, check_types=("full",))
        self._verdicts = {m: HealthCheckPublic.model_validate(r) for m, r in verdicts.items()}
        self._performance = {m: HealthCheckPublic.model_validate(r) for m, r in perf.items()}
        self._last_full = {m: r.finished_at for m, r in fulls.items() if r.finished_at}

    async def close(self) -> None:
        """Cancel checks still running (their runs are failed at the next start)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run_until_idle(self) -> None:
        """Wait until no check is queued or running (tests, CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def add_performance_source(self, source: PerformanceSource) -> None:
        """Seam for later capabilities (usage data) to feed the performance score."""
        self._sources.append(source)

    def last_full_check(self, model_id: str) -> datetime | None:
        return self._last_full.get(model_id)

    # --- requests ----------------------------------------------------------------------

    async def request_check(
        self, model_id: str, check_type: CheckType, *, force: bool = False
    ) -> HealthCheckStarted:
        """Queue a check and start it in the background.

        Raises:
            InvalidModelId, ModelNotFound: see ``CatalogService.get``.
        """
        self._catalog.get(model_id)
        key = (model_id, check_type, force)
        pending = self._pending.get(key)
        if pending is not None:
            async with self._sessions() as session:
                joined = await repo.get_run(session, pending)
            if joined is not None:
                return HealthCheckStarted(
                    check_id=joined.id, estimated_completion=joined.estimated_completion
                )
        row = await self._create_run(model_id, check_type, force=force)
        self._pending[key] = row.id
        task = asyncio.create_task(self._execute(row.id, key), name=f"health:{row.id}")
        self._tasks[row.id] = task
        return HealthCheckStarted(check_id=row.id, estimated_completion=row.estimated_completion)

    async def run_check(
        self, model_id: str, check_type: CheckType, *, force: bool = False
    ) -> HealthCheckPublic:
        """Request a check and wait for its result (monitoring, CLI, tests)."""
        started = await self.request_check(model_id, check_type, force=force)
        task = self._tasks.get(started.check_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return await self.get_check(started.check_id)

    async def get_check(self, check_id: str) -> HealthCheckPublic:
        """Raises: InvalidCheckId (malformed), CheckNotFound (no such run)."""
        validate_check_id(check_id)
        async with self._sessions() as session:
            row = await repo.get_run(session, check_id)
        if row is None:
            raise CheckNotFound(f"No health check '{check_id}'", details={"check_id": check_id})
        return HealthCheckPublic.model_validate(row)

    # --- health view -------------------------------------------------------------------

    async def overview(self) -> HealthResponse:
        """Every catalogue model's health and their summary, unpaged (the API pages it)."""
        statuses = await self._availability.all_statuses()
        models = {m: self._model_health(s) for m, s in statuses.items()}
        return HealthResponse(models=models, system_health=system_health(models.values()))

    async def model_health(self, model_id: str) -> HealthResponse:
        """Raises: InvalidModelId, ModelNotFound."""
        status = await self._availability.status(model_id)
        models = {model_id: self._model_health(status)}
        return HealthResponse(models=models, system_health=system_health(models.values()))

    def _model_health(self, status: ModelStatus) -> ModelHealth:
        perf = self._performance.get(status.model_id)
        verdict = self._current_verdict(status.model_id, status.current_version)
        perf_score = perf.performance_score if perf is not None else None
        if verdict is not None and verdict.overall_health is not None:
            return ModelHealth(
                model_id=status.model_id,
                overall_health=verdict.overall_health,
                integrity_score=verdict.integrity_score,
                performance_score=perf_score,
                last_check=newest(verdict.finished_at, perf.finished_at if perf else None),
                issues=verdict.issues,
                recommendations=verdict.recommendations,
            )
        return unverified_health(status, perf)

    # --- status contributor ------------------------------------------------------------

    def contribute(self, model_id: str, fields: dict[str, Any]) -> None:
        if fields["availability_status"] in ACTIVE_DOWNLOAD:
            # A download is replacing the bytes: the verdict no longer describes them.
            self._verdicts.pop(model_id, None)
        verdict = self._current_verdict(model_id, fields.get("current_version"))
        perf = self._performance.get(model_id)
        if perf is not None:
            fields["performance_score"] = perf.performance_score
            fields["last_health_check"] = perf.finished_at
        if verdict is None:
            return
        fields["integrity_score"] = verdict.integrity_score
        fields["last_health_check"] = newest(verdict.finished_at, fields["last_health_check"])
        if verdict.overall_health != "corrupted":
            return
        fields["corruption_detected"] = True
        fields["availability_status"] = AvailabilityStatus.CORRUPTED
        fields["is_available"] = False

    def _current_verdict(self, model_id: str, commit: str | None) -> HealthCheckPublic | None:
        verdict = self._verdicts.get(model_id)
        if verdict is None or commit is None or verdict.commit != commit:
            return None
        return verdict

    # --- running a check ---------------------------------------------------------------

    async def _create_run(
        self, model_id: str, check_type: CheckType, *, force: bool
    ) -> HealthCheckRow:
        installed = await self._cache.installed(model_id)
        files = installed.manifest.files if installed.manifest and installed.commit else ()
        to_read = await self._bytes_to_read(installed, files, check_type, force=force)
        now = _now()
        row = HealthCheckRow(
            id=new_check_id(),
            model_id=model_id,
            check_type=check_type,
            force_check=force,
            status=CheckStatus.QUEUED,
            commit_hash=installed.commit,
            requested_at=now,
            estimated_completion=now + timedelta(seconds=1 + to_read / self._hash_bps),
            issues=[],
            recommendations=[],
            measurements={"bytes_to_read": to_read},
        )
        async with self._sessions() as session, session.begin():
            await repo.save_run(session, row)
        return row

    async def _bytes_to_read(
        self,
        installed: Installed,
        files: Sequence[ManifestFile],
        check_type: CheckType,
        *,
        force: bool,
    ) -> int:
        """Documented estimate: full -> every byte; quick -> bytes of files without a cached
        digest; performance -> up to the per-file read limit of every file."""
        if check_type == "performance":
            return sum(min(f.size or 0, self._perf_read_bytes) for f in files)
        if check_type == "integrity" and not force and installed.commit is not None:
            async with self._sessions() as session:
                known = await repo.known_digests(
                    session, repo_id=installed.entry.repo_id, commit=installed.commit
                )
            return sum(f.size or 0 for f in files if f.path not in known)
        return sum(f.size or 0 for f in files)

    async def _execute(self, check_id: str, key: tuple[str, str, bool]) -> None:
        model_id, check_type, force = key
        lock = self._model_locks.setdefault(model_id, asyncio.Lock())
        try:
            async with lock, self._limit:
                self._pending.pop(key, None)
                await self._move(check_id, CheckStatus.RUNNING, started_at=_now())
                try:
                    await self._perform(check_id, model_id, check_type, force=force)
                except Exception as exc:  # a background job: record, never lose it silently
                    logger.exception("Health check %s of %s failed", check_id, model_id)
                    await self._move(
                        check_id, CheckStatus.FAILED, finished_at=_now(), error=str(exc)
                    )
        finally:
            self._pending.pop(key, None)
            self._tasks.pop(check_id, None)
        await self._availability.recompute(model_id)

    async def _perform(self, check_id: str, model_id: str, check_type: str, *, force: bool) -> None:
        installed = await self._cache.installed(model_id)
        if check_type == "performance":
            await self._performance_check(check_id, installed)
        else:
            mode = "full" if check_type == "full" or force else "quick"
            await self._integrity_check(check_id, installed, full=mode == "full")

    async def _integrity_check(self, check_id: str, installed: Installed, *, full: bool) -> None:
        # Nothing installed: the newest commit's files, all missing (nothing is read).
        expected = installed.expected
        files = expected.files if expected is not None else ()
        commit = installed.commit
        started = time.perf_counter()
        if commit is None:
            report = judge(files, (), mode="full", checked_at=_now())
            evidence: tuple[Any, ...] = ()
        else:
            known = {}
            if not full:
                async with self._sessions() as session:
                    known = await repo.known_digests(
                        session, repo_id=installed.entry.repo_id, commit=commit
                    )
            observe = partial(
                observe_files,
                root=self._cache.root,
                snapshot_dir=installed.layout.snapshot_dir(commit),
                files=files,
                mode="full" if full else "quick",
                known=known,
            )
            evidence = await anyio.to_thread.run_sync(observe)
            report = judge(files, evidence, mode="full" if full else "quick", checked_at=_now())
        elapsed = time.perf_counter() - started
        hashed = sum(c.size_seen or 0 for c in report.files if c.hashed)
        if hashed and elapsed > 0:
            self._hash_bps = hashed / elapsed
        measurements = {
            "mode": report.mode,
            "files_checked": len(report.files),
            "files_hashed": report.files_hashed,
            "bytes_hashed": hashed,
            "bytes_expected": report.bytes_expected,
            "bytes_verified": report.bytes_verified,
            "duration_seconds": round(elapsed, 6),
        }
        if expected is None and commit is None:
            report = replace(report, overall_health="missing")
        row = await self._finish_integrity(check_id, installed, report, measurements, evidence)
        alert = self._publish_alert(row, report, installed=commit is not None)
        for listener in self._verdict_listeners:
            listener(row.model_id, alert)

    async def _finish_integrity(
        self,
        check_id: str,
        installed: Installed,
        report: IntegrityReport,
        measurements: dict[str, Any],
        evidence: Sequence[Any],
    ) -> HealthCheckPublic:
        issues = [HealthIssue.model_validate(i).model_dump() for i in report.issues]
        async with self._sessions() as session, session.begin():
            if installed.commit is not None:
                await repo.save_digests(
                    session,
                    repo_id=installed.entry.repo_id,
                    commit=installed.commit,
                    digests=known_digests(evidence),
                    verified_at=report.checked_at,
                )
            row = await self._transition(
                session,
                check_id,
                CheckStatus.COMPLETED,
                finished_at=report.checked_at,
                integrity_score=round(report.integrity_score, 6),
                overall_health=report.overall_health,
                issues=issues,
                recommendations=list(report.recommendations),
                measurements=measurements,
            )
        public = HealthCheckPublic.model_validate(row)
        self._verdicts[public.model_id] = public
        if public.check_type == "full" or public.force_check:
            self._last_full[public.model_id] = report.checked_at
        return public

    async def _performance_check(self, check_id: str, installed: Installed) -> None:
        if installed.commit is None or installed.manifest is None:
            await self._move(
                check_id,
                CheckStatus.COMPLETED,
                finished_at=_now(),
                overall_health="missing",
                recommendations=["download the model before measuring its performance"],
            )
            return
        run = partial(
            performance.measure,
            root=self._cache.root,
            snapshot_dir=installed.layout.snapshot_dir(installed.commit),
            files=installed.manifest.files,
            read_limit=self._perf_read_bytes,
        )
        current = await anyio.to_thread.run_sync(run)
        history = await self._performance_history(installed.entry.id)
        scored = performance.score(current, history)
        value = performance.combine(
            scored.value, (s.performance_score(installed.entry.id) for s in self._sources)
        )
        measurements = {
            "bytes_read": current.bytes_read,
            "read_seconds": round(current.read_seconds, 6),
            "read_mbps": round(current.read_mbps, 3),
            "files_read": current.files_read,
            "headers_parsed": current.headers_parsed,
            "header_parse_ms": round(current.header_parse_ms, 3),
            "baseline_read_mbps": round(scored.baseline_read_mbps, 3),
            "baseline_parse_ms": round(scored.baseline_parse_ms, 3),
            "read_ratio": scored.read_ratio,
            "parse_ratio": scored.parse_ratio,
            "history_size": len(history),
        }
        async with self._sessions() as session, session.begin():
            row = await self._transition(
                session,
                check_id,
                CheckStatus.COMPLETED,
                finished_at=_now(),
                performance_score=value,
                measurements=measurements,
            )
        public = HealthCheckPublic.model_validate(row)
        self._performance[public.model_id] = public

    async def _performance_history(self, model_id: str) -> list[Measurement]:
        async with self._sessions() as session:
            rows = await repo.completed_runs(
                session, check_types=("performance",), model_id=model_id, limit=PERF_HISTORY
            )
        return [_measurement(r.measurements) for r in rows if r.measurements.get("read_seconds")]

    # --- state and alerts --------------------------------------------------------------

    async def _move(self, check_id: str, status: CheckStatus, **changes: Any) -> None:
        async with self._sessions() as session, session.begin():
            await self._transition(session, check_id, status, **changes)

    async def _transition(
        self, session: AsyncSession, check_id: str, status: CheckStatus, **changes: Any
    ) -> HealthCheckRow:
        """Raises: ValueError: the move is not in ``TRANSITIONS`` (a bug, not input)."""
        row = await repo.get_run(session, check_id)
        if row is None:
            raise CheckNotFound(f"No health check '{check_id}'")
        current = CheckStatus(row.status)
        if status not in TRANSITIONS[current]:
            raise ValueError(f"health check {check_id}: {current} -> {status} is not allowed")
        row.status = status
        for name, value in changes.items():
            setattr(row, name, value)
        return row

    def on_verdict(self, listener: VerdictListener) -> None:
        """Call ``listener(model_id, alert)`` after every integrity check of a model
        (``alert`` is None when the installed model is healthy or nothing is installed).
        The listener runs inside the check: it must not wait for another check."""
        self._verdict_listeners.append(listener)

    def _publish_alert(
        self, check: HealthCheckPublic, report: IntegrityReport, *, installed: bool
    ) -> ModelHealthAlert | None:
        alert = build_alert(check, report) if installed else None
        if alert is not None:
            self._bus.publish(alert)
        return alert


def _measurement(data: dict[str, Any]) -> Measurement:
    return Measurement(
        bytes_read=int(data.get("bytes_read", 0)),
        read_seconds=float(data.get("read_seconds", 0.0)),
        headers_parsed=int(data.get("headers_parsed", 0)),
        header_parse_ms=float(data.get("header_parse_ms", 0.0)),
        files_read=int(data.get("files_read", 0)),
    )
