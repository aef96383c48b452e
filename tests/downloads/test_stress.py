"""Randomised bursts of concurrent control actions (RELIABILITY.md 40), one seed per
database in the suite (the busiest of the first ones: it keeps the 20-minute budget).

The scenario and its invariants are in ``tests/downloads/stress.py``; ``bench/stress.py``
runs the same trial over many seeds and reports how many held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modeldepot.settings import Settings
from modeldepot.testing import LocalHub
from tests.downloads.stress import publish_models, run_trial

Fast = Callable[..., Settings]


@pytest.mark.parametrize("seed", [1])
async def test_bursts_of_concurrent_actions_leave_a_consistent_state(
    seed: int, local_hub: LocalHub, fast_settings: Fast, database: dict[str, Any]
) -> None:
    models = publish_models(local_hub, tag=f"s{seed}")
    report = await run_trial(
        seed,
        hub=local_hub,
        models=models,
        make_settings=lambda **more: fast_settings(**database, **more),
    )
    assert report.problems == [], report
    assert report.requests > 0
    assert not any(code >= 500 for code in report.by_status), report.by_status
