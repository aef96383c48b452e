"""Every periodic loop a service defines is started with the service, and keeps running.

A loop that exists but is never started looks done in review and does nothing in use
(the storage quota check and the wait queue's expiry were both written and not started
once): the static test ties each ``run_*loop`` method to the composition root, the live
one sees the tasks running.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import modeldepot
from modeldepot.services import open_services
from tests.support import SettingsFactory

SRC = Path(modeldepot.__file__).parent
LOOP = re.compile(r"async def (run_\w*loop)\(")
# Loops another service's loop delegates to (same name, one level down).
DELEGATED = {("downloads/scheduler.py", "run_progress_loop")}
EXPECTED_TASKS = {
    "catalog-refresh",
    "availability-watch",
    "download-progress",
    "health-monitor",
    "revision-sweep",
    "usage-retention",
    "storage-quota",
    "wait-queue",
    "queue-callbacks",
}


def test_every_loop_method_is_started_by_the_composition_root() -> None:
    start = (SRC / "services.py").read_text()
    body = start[start.index("def _start_background") :]
    loops = {
        (str(path.relative_to(SRC)), name)
        for path in SRC.rglob("*.py")
        for name in LOOP.findall(path.read_text())
    }
    assert len(loops) >= len(EXPECTED_TASKS)
    missing = {
        (path, name)
        for path, name in loops - DELEGATED
        if f".{name}" not in body.split("for name, loop in loops")[0]
    }
    assert missing == set()


async def test_the_loops_run_while_the_service_does(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with open_services(settings, include_builtin=False) as services:
        await asyncio.sleep(0)  # let every task take its first step
        running = {t.get_name() for t in services.tasks if not t.done()}
        assert running == EXPECTED_TASKS
    assert services.tasks == []
