"""A service with an empty catalogue answers every listing, empty (a 500 once: ``min`` of
no observations)."""

from __future__ import annotations

import httpx

from tests.live_server import live_server
from tests.support import SettingsFactory


def test_an_empty_catalogue_lists_nothing(make_settings: SettingsFactory) -> None:
    with live_server(make_settings()) as server:
        status = httpx.get(f"{server.base_url}/api/v1/models/status/detailed", timeout=10)
        health = httpx.get(f"{server.base_url}/api/v1/models/health", timeout=10)
    assert status.status_code == 200, status.text
    assert status.json()["models"] == {}
    assert status.json()["summary"]["total_models"] == 0
    assert health.status_code == 200, health.text
