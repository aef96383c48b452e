"""Scheduled health monitoring: quick checks of every available model, full ones rarely.

Every ``health_monitoring.check_interval_hours`` a round runs a quick (``integrity``) check
of every model whose status is available, and of every model a verdict marked corrupted
(so a fix is noticed); a model whose last full check is older than
``full_check_interval_hours`` (or that never had one) gets a ``full`` check instead. Both
intervals and ``features.health_monitoring`` are read from the live configuration at every
step, so changing them takes effect without a restart. Checks go through the
:class:`~modeldepot.health.service.HealthService` queue (bounded, alerts, status).

:meth:`HealthMonitor.run_round` runs one round now (tests, CLI); :meth:`run_loop` only
sleeps between rounds, waking at least every :data:`POLL_SECONDS` to re-read the settings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modeldepot.availability.schemas import AvailabilityStatus
from modeldepot.availability.service import AvailabilityService
from modeldepot.config.schemas import ConfigPublic
from modeldepot.health.schemas import CheckType, HealthCheckPublic
from modeldepot.health.service import HealthService

POLL_SECONDS = 60.0


class HealthMonitor:
    """Decides which models to check in a round, and when rounds happen."""

    def __init__(
        self,
        *,
        health: HealthService,
        availability: AvailabilityService,
        config: Callable[[], ConfigPublic],
    ) -> None:
        self._health = health
        self._availability = availability
        self._config = config

    async def run_round(self, *, now: datetime | None = None) -> list[HealthCheckPublic]:
        """Check every model due now and wait for the results (none when disabled)."""
        current = self._config()
        if not current.features.health_monitoring:
            return []
        now = now or datetime.now(UTC)
        full_every = timedelta(hours=current.health_monitoring.full_check_interval_hours)
        statuses = await self._availability.all_statuses()
        watched = {AvailabilityStatus.AVAILABLE, AvailabilityStatus.UPDATE_AVAILABLE}
        due: list[tuple[str, CheckType]] = []
        for model_id, status in sorted(statuses.items()):
            ours = status.corruption_detected and status.integrity_score is not None
            if status.availability_status not in watched and not ours:
                continue
            last_full = self._health.last_full_check(model_id)
            full = last_full is None or now - last_full >= full_every
            due.append((model_id, "full" if full else "integrity"))
        return list(await asyncio.gather(*(self._health.run_check(m, kind) for m, kind in due)))

    async def run_loop(self) -> None:
        """Sleep ``check_interval_hours`` (live), run a round, repeat until cancelled."""
        last_round = time.monotonic()
        while True:
            interval = self._config().health_monitoring.check_interval_hours * 3600
            remaining = last_round + interval - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(remaining, POLL_SECONDS))
                continue
            last_round = time.monotonic()
            await self.run_round()
