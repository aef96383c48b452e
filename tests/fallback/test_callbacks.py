"""Wait-queue callbacks (issue 12): a real receiver on 127.0.0.1 is told of READY, EXPIRED
and FAILED, signed, retried on 5xx/429/connection errors and not on a refusal, across a
restart; the URL goes through the downloads' SSRF policy; a claimed entry's pending
notification is dropped; a burst of claims and deliveries sends each notification once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from modeldepot.fallback.callbacks import Backoff, signature
from modeldepot.testing import LocalHub, Throttle
from tests.fallback.queue_support import ENTRIES, Q, entry, make_repos, manage
from tests.fallback.receiver import receiver
from tests.live_server import live_server
from tests.support import RunningApp, SettingsFactory, run_app

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    return make_repos(local_hub)


async def enqueue(app: RunningApp, url: str, **fields: Any) -> dict[str, Any]:
    body = {
        "model_id": "other",
        "request": {"prompt": "a cat"},
        "callback": {"url": url, "secret": SECRET},
    }
    answer = await app.client.post(Q, json={**body, **fields})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def install_other(app: RunningApp) -> None:
    await manage(app, "start", "other")
    await app.services.downloads.run_until_idle()


def quick(app: RunningApp, attempts: int = 8) -> None:
    """Retries due at once: each ``deliver_due`` is then one more attempt."""
    app.services.queue.callbacks.backoff = Backoff(first=0, cap=0, attempts=attempts)


async def test_ready_is_posted_signed_and_shown_delivered(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        await install_other(app)
        with receiver() as hook:
            url = hook.url.replace("http://", "http://user:pw@") + "?token=abc"
            queued = await enqueue(app, url)
            pending = await entry(app, queued["queue_id"])
            tried = await app.services.queue.callbacks.deliver_due()
            (received,) = await hook.wait_for(1)
        delivered = await entry(app, queued["queue_id"])
    assert queued["status"] == "READY"
    assert pending["callback"]["status"] == "PENDING"
    assert tried == 1
    assert received.path == "/hooks/queue?token=abc"
    assert received.headers["x-modeldepot-event"] == "queue_entry_change"
    assert received.headers["x-modeldepot-delivery"] == f"{queued['queue_id']}:READY"
    assert received.headers["x-modeldepot-signature"] == signature(SECRET, received.body)
    message = received.json
    assert message["type"] == "queue_entry_change"
    assert message["data"]["queue_id"] == queued["queue_id"]
    assert message["data"]["status"] == "READY"
    assert message["data"]["request"] == {"prompt": "a cat", "parameters": {}}
    callback = delivered["callback"]
    assert callback["status"] == "DELIVERED"
    assert callback["attempts"] == 1
    assert callback["delivered_at"] is not None
    # Credentials and query (tokens) are never shown; the secret never leaves.
    assert callback["url"] == hook.url
    assert SECRET not in json.dumps(delivered)
    assert SECRET not in received.body.decode()


async def test_failures_are_retried_until_delivered(
    hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    script = [(503, {}), (429, {"Retry-After": "0"}), (200, {})]
    async with run_app(make_settings(hf_endpoint=hub.endpoint, **database), entries=ENTRIES) as app:
        await install_other(app)
        quick(app)
        with receiver(script) as hook:
            queued = await enqueue(app, hook.url)
            await app.services.queue.callbacks.deliver_due()
            after_one = await entry(app, queued["queue_id"])
            await app.services.queue.callbacks.deliver_due()
            await app.services.queue.callbacks.deliver_due()
            received = await hook.wait_for(3)
            nothing_more = await app.services.queue.callbacks.deliver_due()
        done = await entry(app, queued["queue_id"])
    assert after_one["callback"]["status"] == "PENDING"
    assert after_one["callback"]["last_error"] == "HTTP 503"
    assert after_one["callback"]["next_attempt_at"] is not None
    assert [r.headers["x-modeldepot-attempt"] for r in received] == ["1", "2", "3"]
    assert {r.headers["x-modeldepot-delivery"] for r in received} == {f"{queued['queue_id']}:READY"}
    assert nothing_more == 0
    assert (done["callback"]["status"], done["callback"]["attempts"]) == ("DELIVERED", 3)


@pytest.mark.parametrize(
    ("script", "attempts", "error"),
    [
        ([(404, {})], 1, "HTTP 404"),  # the receiver said no: not retried
        ([(302, {"Location": "http://169.254.169.254/"})], 1, "HTTP 302"),  # not followed
        ([(500, {})] * 3, 3, "HTTP 500"),  # attempts used up
    ],
)
async def test_refusals_and_exhausted_attempts_fail(
    script: list[tuple[int, dict[str, str]]],
    attempts: int,
    error: str,
    hub: LocalHub,
    make_settings: SettingsFactory,
) -> None:
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        await install_other(app)
        quick(app, attempts=3)
        with receiver(script) as hook:
            queued = await enqueue(app, hook.url)
            for _ in range(4):
                await app.services.queue.callbacks.deliver_due()
            received = await hook.wait_for(attempts)
        failed = await entry(app, queued["queue_id"])
    assert len(received) == attempts
    assert failed["callback"]["status"] == "FAILED"
    assert failed["callback"]["attempts"] == attempts
    assert failed["callback"]["last_error"].startswith(error)
    assert failed["status"] == "READY"  # the entry itself is unaffected


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/queue"


async def test_a_pending_notification_survives_a_restart(
    hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(hf_endpoint=hub.endpoint, **database)
    with receiver([(503, {})]) as hook:
        async with run_app(settings, entries=ENTRIES) as app:
            await install_other(app)
            quick(app)
            queued = await enqueue(app, hook.url)
            await app.services.queue.callbacks.deliver_due()
            before = await entry(app, queued["queue_id"])
        async with run_app(settings, entries=ENTRIES) as app:
            await app.services.queue.callbacks.deliver_due()
            received = await hook.wait_for(2)
            after = await entry(app, queued["queue_id"])
    assert before["callback"]["status"] == "PENDING"
    assert [r.headers["x-modeldepot-attempt"] for r in received] == ["1", "2"]
    assert after["callback"]["status"] == "DELIVERED"


async def test_an_unreachable_receiver_is_retried(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        await install_other(app)
        quick(app, attempts=2)
        queued = await enqueue(app, closed_port_url())
        await app.services.queue.callbacks.deliver_due()
        once = await entry(app, queued["queue_id"])
        await app.services.queue.callbacks.deliver_due()
        twice = await entry(app, queued["queue_id"])
    assert once["callback"]["status"] == "PENDING"
    assert once["callback"]["last_error"].startswith("ConnectError")
    assert (twice["callback"]["status"], twice["callback"]["attempts"]) == ("FAILED", 2)


async def test_expired_and_failed_entries_are_notified_claims_are_not(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Throttle(bytes_per_second=100_000), repo="acme/wanted", times=None)
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        await install_other(app)
        with receiver() as hook:
            claimed = await enqueue(app, hook.url)
            claim = await app.client.post(f"{Q}/{claimed['queue_id']}/claim", json={})
            waiting = await enqueue(app, hook.url, model_id="wanted", max_wait_time_minutes=1)
            queue = app.services.queue
            queue._clock = lambda: datetime.now(UTC) + timedelta(minutes=2)
            queue.callbacks._clock = queue._clock
            await queue.tick()
            await queue.callbacks.deliver_due()
            (received,) = await hook.wait_for(1)
            dropped = await entry(app, claimed["queue_id"])
            expired = await entry(app, waiting["queue_id"])
    assert claim.status_code == 200
    assert dropped["callback"]["status"] == "DROPPED"  # claimed before it went out
    assert received.json["data"]["queue_id"] == waiting["queue_id"]
    assert received.json["data"]["status"] == "EXPIRED"
    assert received.headers["x-modeldepot-delivery"] == f"{waiting['queue_id']}:EXPIRED"
    assert expired["callback"]["status"] == "DELIVERED"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.1.2.3/hook", "UNSAFE_SOURCE"),
        ("http://169.254.169.254/latest/meta-data", "UNSAFE_SOURCE"),
        ("http://127.0.0.2:8000/hook", "UNSAFE_SOURCE"),
        ("http://[::ffff:10.0.0.1]/hook", "UNSAFE_SOURCE"),
        ("http://no-such-host.invalid/hook", "VALIDATION_ERROR"),
        ("ftp://example.com/hook", "VALIDATION_ERROR"),
        ("http://exa mple.com/hook", "VALIDATION_ERROR"),
        ("http://example.com/" + "a" * 2048, "VALIDATION_ERROR"),
        ("HTTP://host:tBn3Z4KA1}uzF81/", "VALIDATION_ERROR"),  # found by schemathesis
        ("http://host:99999/", "VALIDATION_ERROR"),
        ("http://:80/", "VALIDATION_ERROR"),
    ],
)
async def test_callback_urls_go_through_the_source_policy(
    url: str, code: str, hub: LocalHub, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        answer = await app.client.post(
            Q,
            json={"model_id": "wanted", "request": {"prompt": "x"}, "callback": {"url": url}},
        )
        listed = (await app.client.get(Q)).json()
        started = app.services.downloads.is_active("wanted")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code
    assert listed["data"] == []  # nothing queued
    assert started is False  # and no download started


@pytest.mark.parametrize(
    "callback",
    [
        {"url": "http://127.0.0.1/h", "secret": "short"},
        {"url": "http://127.0.0.1/h", "secret": "x" * 257},
        {"url": "http://127.0.0.1/h", "secret": "has a space in it!!"},
        {"url": "http://127.0.0.1/h", "extra": 1},
        {"secret": SECRET},
        {"url": 5},
    ],
)
async def test_bad_callbacks_are_422(
    callback: dict[str, Any], make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(
            Q, json={"model_id": "wanted", "request": {"prompt": "x"}, "callback": callback}
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_a_burst_of_claims_and_deliveries_sends_each_notice_at_most_once(
    hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    rng = random.Random(12)
    async with run_app(make_settings(hf_endpoint=hub.endpoint, **database), entries=ENTRIES) as app:
        await install_other(app)
        with receiver() as hook:
            queued = [await enqueue(app, hook.url) for _ in range(12)]
            ids = [q["queue_id"] for q in queued]
            callbacks = app.services.queue.callbacks
            work = [callbacks.deliver_due() for _ in range(4)] + [
                app.client.post(f"{Q}/{queue_id}/claim", json={}) for queue_id in rng.sample(ids, 6)
            ]
            rng.shuffle(work)
            await asyncio.gather(*work)
            await callbacks.deliver_due()  # whatever a claim left pending
            final = [await entry(app, queue_id) for queue_id in ids]
            delivered = [e for e in final if e["callback"]["status"] == "DELIVERED"]
            received = list(hook.received)  # every POST has been answered by now
    assert {e["callback"]["status"] for e in final} <= {"DELIVERED", "DROPPED"}
    assert len(received) == len(delivered)  # nothing sent twice, nothing unrecorded
    assert sorted(r.json["data"]["queue_id"] for r in received) == sorted(
        e["queue_id"] for e in delivered
    )


def test_ready_on_completion_reaches_the_websocket_and_the_callback(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    """The running service alone: nothing but the download finishing triggers both."""
    local_hub.create_repo("acme/wanted", {"model.ckpt": os.urandom(1_000_000)})
    local_hub.faults.add(Throttle(bytes_per_second=1_000_000), repo="acme/wanted", times=None)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    with (
        receiver() as hook,
        live_server(settings, entries=ENTRIES[:1]) as server,
        connect(server.ws_url) as ws,
    ):
        server.call(lambda s: s.catalog.refresh_all(), timeout=20)
        ws.send(json.dumps({"action": "subscribe", "types": ["queue_entry_change"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        answer = requests.post(
            f"{server.base_url}{Q}",
            json={"model_id": "wanted", "request": {"prompt": "x"}, "callback": {"url": hook.url}},
            timeout=30,
        )
        answer.raise_for_status()
        queue_id = answer.json()["queue_id"]
        event = json.loads(ws.recv(timeout=60))
        (received,) = server.call(lambda s: hook.wait_for(1), timeout=60)
    assert answer.json()["status"] == "WAITING"
    assert (event["queue_id"], event["status"]) == (queue_id, "READY")
    assert received.json["data"]["queue_id"] == queue_id
    assert received.json["data"]["status"] == "READY"
