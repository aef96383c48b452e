"""The seed's Python SDK examples run unchanged (``exec`` of the seed's text) against
``EnhancedModelAvailabilityClient`` and the real service, and print what they should."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from modeldepot.client import Client, EnhancedModelAvailabilityClient, EventStream
from modeldepot.client.compat import HTTPError, http_error_class
from modeldepot.errors import DownloadInProgress, InvalidModelId, ModelNotFound
from modeldepot.testing import LocalHub, Status
from tests.client.seed_sdk import HANDLING_DOWNLOAD_FAILURES, USAGE_EXAMPLE
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry

WAIT_S = 20.0
T2V = {"capabilities": ["text-to-video"], "quality": "high", "speed": "medium"}
ENTRIES = (
    hub_entry("my-model", "acme/my-model", **T2V),
    hub_entry("unavailable-model", "acme/unavailable", **T2V),
    hub_entry("large-model", "acme/large", **T2V),
    hub_entry("alternative", "acme/alternative", **T2V),
)


@pytest.fixture
def server(local_hub: LocalHub, make_settings: SettingsFactory) -> Iterator[LiveServer]:
    for repo in ("my-model", "unavailable", "large", "alternative"):
        local_hub.create_repo(f"acme/{repo}", {"model.ckpt": os.urandom(300_000)})
    settings = make_settings(hf_endpoint=local_hub.endpoint, retry_base_delay_seconds=0.01)
    with live_server(settings, entries=ENTRIES) as running:
        running.call(lambda services: services.catalog.refresh_all(), timeout=20)
        with Client(running.base_url) as client:  # a ready alternative to suggest
            client.download("alternative")
            client.wait_until_available("alternative", timeout=WAIT_S)
        yield running


class EventPacedTime:
    """The ``time`` the failure example sleeps with: ``sleep(n)`` returns at the next event
    about the model, not after ``n`` seconds.

    The example polls the download's progress every 5 s (30 s after a failure). Against
    the real service a poll is worth making only once something happened, and that is
    exactly when the service sends an event: every state change of a download sends one
    after the state changed, so the example's next poll sees it. Sleeping the seed's 5 s
    would make the test slow and still leave it guessing how long a download takes.
    """

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self.naps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self._events.get(timeout=WAIT_S)


def run(example: str, namespace: dict[str, Any]) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example, namespace)  # the seed's text, unchanged
    return printed.getvalue()


def run_failure_example(server: LiveServer, namespace: dict[str, Any]) -> tuple[str, list[float]]:
    with Client(server.base_url) as client, client.events(model_ids=["large-model"]) as events:
        paced = EventPacedTime(events)
        namespace.update(
            client=EnhancedModelAvailabilityClient(f"{server.base_url}/api/v1"),
            time=paced,
            requests=requests,
        )
        return run(HANDLING_DOWNLOAD_FAILURES, namespace), paced.naps


def test_the_usage_example(server: LiveServer) -> None:
    # The example builds its client with the seed's default base URL (localhost:8000):
    # the name it calls is the compatibility class, pointed at this service.
    here = functools.partial(EnhancedModelAvailabilityClient, f"{server.base_url}/api/v1")
    printed = run(USAGE_EXAMPLE, {"EnhancedModelAvailabilityClient": here})
    assert printed == (
        "Model available: False\nDownload started: True\nSuggested alternative: alternative\n"
    )


def test_the_failure_example_follows_a_download_to_the_end(server: LiveServer) -> None:
    namespace: dict[str, Any] = {}
    printed, naps = run_failure_example(server, namespace)
    with Client(server.base_url) as client:
        progress = client.progress("large-model")
    assert printed == ""
    assert progress.status == "COMPLETED"
    assert namespace["download_id"] == progress.download_id
    assert set(naps) <= {5}


def test_the_failure_example_when_the_download_is_running(server: LiveServer) -> None:
    with Client(server.base_url) as client:
        running = client.download("large-model", bandwidth_limit_mbps=0.01)
        printed, naps = run_failure_example(server, {})
        client.cancel("large-model")
    assert running.success
    assert printed == "Download already in progress\n"
    assert naps == []


def test_the_failure_example_when_retries_run_out(server: LiveServer, local_hub: LocalHub) -> None:
    local_hub.faults.add(Status(503), server="cdn", repo="acme/large", times=None)
    printed, naps = run_failure_example(server, {})
    with Client(server.base_url) as client:
        progress = client.progress("large-model")
    assert printed == "Download failed after all retries\n"
    assert (progress.status, progress.retry_count, progress.max_retries) == ("FAILED", 3, 3)
    assert set(naps) <= {5, 30}


def test_the_failure_example_for_a_model_not_in_the_catalogue(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    with live_server(make_settings(hf_endpoint=local_hub.endpoint)) as server:
        printed, _ = run_failure_example(server, {})
    assert printed == "HTTP error: Model 'large-model' is not in the catalogue\n"


def test_compat_errors_are_typed_and_requests_http_errors(server: LiveServer) -> None:
    client = EnhancedModelAvailabilityClient(f"{server.base_url}/api/v1")
    with pytest.raises(requests.exceptions.HTTPError) as invalid:
        client.get_model_status("no spaces")
    with pytest.raises(ModelNotFound) as unknown:
        client.get_download_progress("nope")
    with Client(server.base_url) as typed:
        running = typed.download("large-model", bandwidth_limit_mbps=0.01)
        with pytest.raises(DownloadInProgress) as busy:
            client.start_download("large-model")
        typed.cancel("large-model")
    client.close()
    error = invalid.value
    assert isinstance(error, InvalidModelId)
    assert error.response.status_code == 422
    assert error.response.json()["error"]["code"] == "INVALID_MODEL_ID"
    assert "INVALID_MODEL_ID" in error.response.text
    assert isinstance(unknown.value, requests.exceptions.HTTPError)
    assert unknown.value.response.status_code == 404
    assert busy.value.details["download_id"] == running.download_id
    assert busy.value.response.json()["error"]["code"] == "DOWNLOAD_IN_PROGRESS"


def test_compat_errors_without_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests.exceptions", None)  # as if not installed
    unknown = {"error": {"code": "MODEL_NOT_FOUND", "message": "no", "details": {}}}
    transport = httpx.MockTransport(lambda _request: httpx.Response(404, json=unknown))
    client = EnhancedModelAvailabilityClient("http://localhost:8000/api/v1", transport=transport)
    with pytest.raises(HTTPError) as raised:
        client.get_model_status("nope")
    assert http_error_class() is HTTPError
    assert isinstance(raised.value, ModelNotFound)
    assert not isinstance(raised.value, requests.exceptions.HTTPError)
    assert raised.value.response is not None
    assert raised.value.response.json() == unknown
