"""The seed's Python SDK class and its "Handling Model Unavailability" example run
unchanged against the real service under uvicorn (issue 12), and WebSocket clients
receive ``fallback_suggestion`` and ``queue_entry_change``."""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import requests
from websockets.sync.client import connect

from modeldepot.testing import LocalHub, Throttle
from tests.fallback.seed_sdk import HANDLING_MODEL_UNAVAILABILITY, EnhancedModelAvailabilityClient
from tests.live_server import live_server
from tests.support import SettingsFactory, hub_entry

T2V = {"model_type": "text-to-video", "capabilities": ["text-to-video"], "quality": "high"}
ENTRIES = (
    hub_entry("preferred-model", "acme/preferred", **T2V, speed="medium"),
    hub_entry("alternative", "acme/alternative", **T2V, speed="high"),
)


class SeedClient(EnhancedModelAvailabilityClient):  # type: ignore[misc]
    """The seed's class plus the ``queue_request`` its example calls (the class lacks it),
    posting the documented body of ``POST /models/fallback/queue``."""

    def queue_request(self, model_id: str, request: dict[str, Any]) -> Any:
        url = f"{self.base_url}/models/fallback/queue"
        body = {"model_id": model_id, "request": request}
        response = requests.post(url, json=body, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()


def run_example(base_url: str) -> str:
    client = SeedClient(base_url=f"{base_url}/api/v1")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(HANDLING_MODEL_UNAVAILABILITY, {"client": client})  # the seed example, as written
    return printed.getvalue()


def make_repos(hub: LocalHub) -> None:
    hub.create_repo("acme/preferred", {"model.ckpt": os.urandom(1_000_000)})
    hub.create_repo("acme/alternative", {"model.ckpt": os.urandom(200_000)})


def test_the_example_uses_a_ready_alternative(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    make_repos(local_hub)
    with live_server(make_settings(hf_endpoint=local_hub.endpoint), entries=ENTRIES) as server:
        server.call(lambda s: s.catalog.refresh_all(), timeout=20)
        with connect(f"{server.ws_url}") as ws:
            ws.send(json.dumps({"action": "subscribe", "types": ["fallback_suggestion"]}))
            assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
            requests.post(
                f"{server.base_url}/api/v1/models/download/manage",
                json={"model_id": "alternative", "action": "start"},
                timeout=30,
            ).raise_for_status()
            server.call(lambda s: s.downloads.run_until_idle(), timeout=30)
            printed = run_example(server.base_url)
            announced = json.loads(ws.recv(timeout=10))
    assert printed == "Using alternative: alternative\n"
    assert announced["type"] == "fallback_suggestion"
    assert announced["requested_model"] == "preferred-model"
    assert announced["suggested_model"] == "alternative"
    assert set(announced) >= {"compatibility_score", "user_action_required", "timeout_seconds"}


def test_the_example_queues_when_nothing_is_ready(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    make_repos(local_hub)
    local_hub.faults.add(Throttle(bytes_per_second=500_000), repo="acme/preferred", times=None)
    with live_server(make_settings(hf_endpoint=local_hub.endpoint), entries=ENTRIES) as server:
        server.call(lambda s: s.catalog.refresh_all(), timeout=20)
        with connect(f"{server.ws_url}") as ws:
            ws.send(json.dumps({"action": "subscribe", "types": ["queue_entry_change"]}))
            assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
            printed = run_example(server.base_url)
            server.call(lambda s: s.downloads.run_until_idle(), timeout=30)
            server.call(lambda s: s.queue.on_download_change("preferred-model"), timeout=10)
            ready = json.loads(ws.recv(timeout=10))
        entries = requests.get(f"{server.base_url}/api/v1/models/fallback/queue", timeout=10)
    assert printed == "Request queued, position: 1\n"
    (entry,) = entries.json()["data"]
    assert entry["request"] == {"prompt": "Generate video...", "parameters": {}}
    assert ready == {
        "type": "queue_entry_change",
        "timestamp": ready["timestamp"],
        "queue_id": entry["queue_id"],
        "model_id": "preferred-model",
        "status": "READY",
        "reason": None,
    }
