"""The usage reporter against the real service (uvicorn, SQLite): generations and loads
show in the status; outages are ridden out without storing an event twice; refusals drop
only what was refused; the buffer is bounded; flush and close are bounded waits.

Faults are injected only at the transport seam (``Seam``: the real HTTP transport behind a
gate and a list of faults)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from modeldepot.auth.keys import Role
from modeldepot.services import Services
from modeldepot.usage.reporter import AsyncUsageReporter, Backoff, UsageReporter
from modeldepot.usage.service import UsageRow
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry

ENTRIES = (hub_entry("alpha", "acme/alpha"), hub_entry("beta", "acme/beta"))
QUICK = Backoff(first=0.01, cap=0.02)
REPORTER_LOG = "modeldepot.usage.reporter"

Fault = Callable[[httpx.Request, httpx.BaseTransport], httpx.Response]


class Seam(httpx.BaseTransport):
    """The real transport, behind a gate (closed: requests wait for it) and faults used
    one per request, in order; records each request's events and each real answer."""

    def __init__(self, *faults: Fault, gate_open: bool = True) -> None:
        self.real = httpx.HTTPTransport()
        self.faults = list(faults)
        self.gate = threading.Event()
        if gate_open:
            self.gate.set()
        self.entered = threading.Event()
        self.sent: list[list[dict[str, Any]]] = []
        self.answers: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.read())["events"])
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.faults:
            return self.faults.pop(0)(request, self)
        return self.forward(request)

    def forward(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        response.read()
        self.answers.append({"status": response.status_code, **response.json()})
        return response

    def close(self) -> None:
        self.real.close()


def refuse_connection(request: httpx.Request, seam: httpx.BaseTransport) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def busy(request: httpx.Request, seam: httpx.BaseTransport) -> httpx.Response:
    envelope = {"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy", "details": {}}}
    return httpx.Response(503, headers={"Retry-After": "0"}, json=envelope)


def lose_the_answer(request: httpx.Request, seam: httpx.BaseTransport) -> httpx.Response:
    """The service stores the batch, but its answer never reaches the reporter."""
    assert isinstance(seam, Seam)
    seam.forward(request)
    raise httpx.ReadTimeout("timed out", request=request)


@pytest.fixture
def server(make_settings: SettingsFactory) -> Iterator[LiveServer]:
    with live_server(make_settings(), entries=ENTRIES) as running:
        yield running


@pytest.fixture
def reporters() -> Iterator[Callable[..., UsageReporter]]:
    """Reporters that are closed (and their seams with them) when the test ends."""
    made: list[UsageReporter] = []

    def make(base_url: str, **options: Any) -> UsageReporter:
        made.append(UsageReporter(base_url, backoff=QUICK, **options))
        return made[-1]

    yield make
    for reporter in made:
        reporter.close(timeout=1)


def status(server: LiveServer, model_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.base_url}/api/v1/models/status/detailed/{model_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def stored_rows(server: LiveServer) -> list[UsageRow]:
    async def rows(services: Services) -> list[UsageRow]:
        async with services.sessions() as session:
            return list((await session.execute(select(UsageRow).order_by(UsageRow.seq))).scalars())

    return server.call(rows)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == REPORTER_LOG and r.levelno == logging.WARNING
    ]


class Boom(Exception):
    pass


def test_generations_completed_and_failed_show_in_the_status(
    server: LiveServer, reporters: Callable[..., UsageReporter]
) -> None:
    reporter = reporters(server.base_url, client="wan-ui-1")
    before = datetime.now(UTC)
    started = time.monotonic()
    with reporter.generation(
        "alpha", resolution="1280x720", steps=30, frames=81, guidance_scale=5
    ) as gen:
        gen.peak_vram_gb = 21.5
    took = time.monotonic() - started
    failure = Boom("out of memory")
    with pytest.raises(Boom) as raised, reporter.generation("alpha", steps=4):
        raise failure
    assert raised.value is failure  # propagated unchanged
    assert reporter.flush(timeout=10)

    alpha = status(server, "alpha")
    assert before <= datetime.fromisoformat(alpha["last_used"]) <= datetime.now(UTC)
    assert alpha["usage_frequency"] == round(2 / 30, 4)  # started events are not uses
    assert 0 <= alpha["average_generation_time"] <= round(took, 3) + 0.001
    rows = stored_rows(server)
    assert [r.type for r in rows] == [
        "generation_started",
        "generation_completed",
        "generation_started",
        "generation_failed",
    ]
    assert {r.client for r in rows} == {"wan-ui-1"}
    assert len({r.event_id for r in rows}) == 4
    completed, failed = rows[1], rows[3]
    assert completed.parameters == {
        "resolution": "1280x720",
        "steps": 30,
        "frames": 81,
        "guidance_scale": 5,
    }
    assert completed.peak_vram_gb == 21.5
    assert failed.duration_seconds is not None
    assert failed.parameters == {"steps": 4}
    assert (reporter.delivered, reporter.refused, reporter.dropped) == (4, 0, 0)


def test_loaded_and_unloaded_set_is_loaded(
    server: LiveServer, reporters: Callable[..., UsageReporter]
) -> None:
    reporter = reporters(server.base_url, client="ui-2")
    reporter.loaded("beta")
    assert reporter.flush(timeout=10)
    assert status(server, "beta")["is_loaded"] is True
    reporter.unloaded("beta")
    assert reporter.flush(timeout=10)
    assert status(server, "beta")["is_loaded"] is False


def test_an_outage_is_ridden_out_and_each_event_is_stored_once(
    server: LiveServer,
    reporters: Callable[..., UsageReporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seam = Seam(refuse_connection, refuse_connection, busy, lose_the_answer, gate_open=False)
    reporter = reporters(server.base_url, transport=seam)
    with reporter.generation("alpha"):  # a batch of one or two events, whatever the timing
        pass
    seam.gate.set()
    assert reporter.flush(timeout=10)

    reported = {event["event_id"] for batch in seam.sent for event in batch}
    assert len(reported) == 2
    assert sum(a["accepted"] for a in seam.answers) == 2  # the resend after the lost
    assert sum(a["duplicates"] for a in seam.answers) >= 1  # answer was a duplicate
    assert {r.event_id for r in stored_rows(server)} == reported
    assert len(stored_rows(server)) == 2
    assert status(server, "alpha")["usage_frequency"] == round(1 / 30, 4)
    assert reporter.delivered == 2
    assert len([w for w in warnings_of(caplog) if "unavailable" in w]) == 1


def test_refused_events_are_dropped_with_a_warning_and_the_rest_still_goes(
    server: LiveServer,
    reporters: Callable[..., UsageReporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seam = Seam(gate_open=False)
    reporter = reporters(server.base_url, transport=seam)
    reporter.loaded("alpha")
    assert seam.entered.wait(10)  # in flight: what follows is sent together, afterwards
    with reporter.generation("alpha", steps=0):  # 422: steps must be 1 or more
        pass
    reporter.loaded("nobody")  # 404: not in the catalogue
    reporter.unloaded("alpha")
    seam.gate.set()
    assert not reporter.flush(timeout=10)  # settled, but not all delivered

    assert [a["status"] for a in seam.answers] == [200, 422, 404, 200]
    assert [[(e["model_id"], e["type"]) for e in batch] for batch in seam.sent][-1] == [
        ("alpha", "model_unloaded")
    ]
    warnings = warnings_of(caplog)
    assert any("VALIDATION_ERROR" in w and "2 of 4" in w for w in warnings), warnings
    assert any("MODEL_NOT_FOUND" in w and "1 of 2" in w for w in warnings), warnings
    assert (reporter.delivered, reporter.refused) == (2, 3)

    reporter.loaded("beta")  # later events still go
    assert reporter.flush(timeout=10)
    assert status(server, "beta")["is_loaded"] is True
    alpha = status(server, "alpha")
    assert (alpha["is_loaded"], alpha["last_used"]) == (False, None)


def test_a_full_buffer_drops_the_oldest_events_with_one_warning(
    server: LiveServer,
    reporters: Callable[..., UsageReporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seam = Seam(gate_open=False)
    reporter = reporters(server.base_url, transport=seam, max_buffered=3)
    reporter.loaded("alpha")
    assert seam.entered.wait(10)
    reporter.loaded("beta")  # dropped
    reporter.unloaded("beta")  # dropped
    reporter.unloaded("alpha")
    reporter.loaded("beta")
    reporter.loaded("alpha")
    assert reporter.dropped == 2
    seam.gate.set()
    assert not reporter.flush(timeout=10)  # some of it never went

    assert [[(e["model_id"], e["type"]) for e in batch] for batch in seam.sent] == [
        [("alpha", "model_loaded")],
        [("alpha", "model_unloaded"), ("beta", "model_loaded"), ("alpha", "model_loaded")],
    ]
    assert len([w for w in warnings_of(caplog) if "dropping the oldest" in w]) == 1
    assert reporter.delivered == 4
    assert reporter.flush(timeout=10)  # nothing pending, nothing lost since


def test_flush_times_out_while_the_service_does_not_answer(
    server: LiveServer, reporters: Callable[..., UsageReporter]
) -> None:
    seam = Seam(gate_open=False)
    reporter = reporters(server.base_url, transport=seam)
    reporter.loaded("alpha")
    assert seam.entered.wait(10)
    assert reporter.flush(timeout=0.2) is False
    seam.gate.set()
    assert reporter.flush(timeout=10) is True
    assert status(server, "alpha")["is_loaded"] is True


def test_close_is_bounded_when_the_service_is_down(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reporter = UsageReporter(f"http://127.0.0.1:{port}", backoff=QUICK)
    with reporter.generation("alpha"):
        pass  # never blocks, never raises
    started = time.monotonic()
    assert reporter.close(timeout=0.3) is False
    assert time.monotonic() - started < 3
    assert (reporter.dropped, reporter.delivered) == (2, 0)
    reporter.loaded("alpha")  # after close: dropped, no error
    assert reporter.dropped == 3
    assert any("ConnectError" in w for w in warnings_of(caplog))
    assert any("2 events unsent" in w for w in warnings_of(caplog))


def test_api_keys_are_sent_and_a_wrong_one_is_a_refusal(
    make_settings: SettingsFactory,
    reporters: Callable[..., UsageReporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with live_server(make_settings(auth_required=True), entries=ENTRIES) as server:

        async def user_key(services: Services) -> str:
            return (await services.keys.create("wan-ui", Role.user))[1]

        good = reporters(server.base_url, api_key=server.call(user_key))
        good.loaded("alpha")
        assert good.flush(timeout=10)
        bad = reporters(server.base_url, api_key="mdk_000000000000_wrong")
        bad.loaded("beta")
        assert not bad.flush(timeout=10)
        assert (good.delivered, bad.refused) == (1, 1)
        assert any("UNAUTHORIZED" in w for w in warnings_of(caplog))
        assert [r.model_id for r in stored_rows(server)] == ["alpha"]


async def test_the_async_reporter_reports_without_blocking_the_loop(server: LiveServer) -> None:
    async with AsyncUsageReporter(server.base_url, client="async-app", backoff=QUICK) as reporter:
        async with reporter.generation("beta", steps=8):
            pass
        with pytest.raises(Boom):
            async with reporter.generation("beta"):
                raise Boom
        reporter.loaded("beta")
        assert await reporter.flush(timeout=10)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        beta = (await client.get("/api/v1/models/status/detailed/beta")).json()
    assert beta["usage_frequency"] == round(2 / 30, 4)
    assert beta["is_loaded"] is True
    assert reporter.reporter.delivered == 5
