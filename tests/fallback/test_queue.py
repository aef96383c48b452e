"""The wait queue against the real service and local hub (issue 12): queuing starts the
download, positions and estimates follow it, entries turn READY in priority order with an
event, exactly one concurrent claim wins, a restart loses nothing, entries expire with a
reason, a failed download fails its entries with suggestions, and a waited-for model is
protected from cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldepot.events import QueueEntryChange
from modeldepot.testing import LocalHub, Status, Throttle
from tests.fallback.queue_support import ENTRIES, Q, V, entry, make_repos, manage
from tests.support import (
    RunningApp,
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    progress_until,
    run_app,
)


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    return make_repos(local_hub)


async def enqueue(app: RunningApp, **fields: Any) -> dict[str, Any]:
    body = {"model_id": "wanted", "request": {"prompt": "a cat", "parameters": {"steps": 4}}}
    answer = await app.client.post(Q, json={**body, **fields})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_entries_wait_move_up_turn_ready_in_order_and_are_claimed_once(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Throttle(bytes_per_second=250_000), repo="acme/wanted", times=None)
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        events = app.services.bus.subscribe()
        first = await enqueue(app)
        second = await enqueue(app)
        urgent = await enqueue(app, priority="high")
        await progress_until(app, lambda p: p["progress_percent"] >= 20, "wanted")
        early = await entry(app, second["queue_id"])
        await progress_until(app, lambda p: p["progress_percent"] >= 60, "wanted")
        asked_at = datetime.now(UTC)
        later = await entry(app, second["queue_id"])
        cancelled = await app.client.delete(f"{Q}/{first['queue_id']}")
        moved_up = await entry(app, second["queue_id"])
        await app.services.downloads.run_until_idle()
        await app.services.queue.on_download_change("wanted")
        ready = await entry(app, second["queue_id"])
        claims = await asyncio.gather(
            *(app.client.post(f"{Q}/{second['queue_id']}/claim", json={}) for _ in range(5))
        )
        changes = []
        while events.pending:
            event = await events.get()
            if isinstance(event, QueueEntryChange):
                changes.append((event.queue_id, event.status))
        listed = (await app.client.get(f"{Q}?model_id=wanted&sort=created_at")).json()
    assert first["download_started"] is True
    assert second["download_started"] is False  # joined the running download
    assert (first["status"], first["position"]) == ("WAITING", 1)
    assert second["position"] == 2
    assert urgent["position"] == 1  # high priority goes first
    # The estimate follows the download.
    assert early["position"] == 3
    assert early["estimated_wait_time_minutes"] > later["estimated_wait_time_minutes"] >= 0
    assert datetime.fromisoformat(later["estimated_start_time"]) >= asked_at
    assert cancelled.json()["status"] == "CANCELLED"
    assert moved_up["position"] == 2
    assert (ready["status"], ready["estimated_wait_time_minutes"]) == ("READY", 0.0)
    # READY in priority then arrival order, with an event each; one claim wins.
    ready_events = [queue_id for queue_id, status in changes if status == "READY"]
    assert ready_events == [urgent["queue_id"], second["queue_id"]]
    assert sorted(c.status_code for c in claims) == [200, 409, 409, 409, 409]
    (won,) = [c.json() for c in claims if c.status_code == 200]
    assert won["request"] == {"prompt": "a cat", "parameters": {"steps": 4}}
    assert won["status"] == "CLAIMED"
    refused = next(c.json() for c in claims if c.status_code == 409)
    assert refused["error"]["code"] == "QUEUE_ENTRY_NOT_READY"
    statuses = {e["queue_id"]: e["status"] for e in listed["data"]}
    assert statuses == {
        first["queue_id"]: "CANCELLED",
        second["queue_id"]: "CLAIMED",
        urgent["queue_id"]: "READY",
    }
    assert listed["pagination"]["total"] == 3


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_bursts_of_claims_and_cancels_end_each_entry_exactly_once(
    seed: int, hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    rng = random.Random(seed)
    settings = make_settings(hf_endpoint=hub.endpoint, **database)
    async with run_app(settings, entries=ENTRIES) as app:
        await manage(app, "start", "other")
        await app.services.downloads.run_until_idle()
        ids = [(await enqueue(app, model_id="other"))["queue_id"] for _ in range(8)]
        events = app.services.bus.subscribe()
        actions = [
            (queue_id, rng.choice(["claim", "cancel"]))
            for queue_id in ids
            for _ in range(rng.randint(2, 5))
        ]
        rng.shuffle(actions)

        async def act(queue_id: str, action: str) -> tuple[str, str, int]:
            if action == "claim":
                answer = await app.client.post(f"{Q}/{queue_id}/claim", json={})
            else:
                answer = await app.client.delete(f"{Q}/{queue_id}")
            return queue_id, action, answer.status_code

        results = await asyncio.gather(*(act(q, a) for q, a in actions))
        final = {queue_id: (await entry(app, queue_id))["status"] for queue_id in ids}
        ended: dict[str, list[str]] = {queue_id: [] for queue_id in ids}
        while events.pending:
            event = await events.get()
            if isinstance(event, QueueEntryChange):
                ended[event.queue_id].append(event.status)
    for queue_id in ids:
        mine = [(action, code) for q, action, code in results if q == queue_id]
        winners = [action for action, code in mine if code == 200]
        assert len(winners) == 1, mine  # one wins, whatever the mix
        assert sorted(code for _, code in mine) == [200] + [409] * (len(mine) - 1)
        assert final[queue_id] == {"claim": "CLAIMED", "cancel": "CANCELLED"}[winners[0]]
        assert ended[queue_id] == [final[queue_id]]  # announced once


async def test_a_restart_mid_wait_loses_nothing(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Throttle(bytes_per_second=300_000), repo="acme/wanted", times=None)
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=ENTRIES) as app:
        queued = await enqueue(app)
        await progress_until(app, lambda p: p["progress_percent"] > 5, "wanted")
        await manage(app, "pause")
    hub.faults.clear()
    async with run_app(settings, entries=ENTRIES) as app:
        after_restart = await entry(app, queued["queue_id"])
        await manage(app, "resume")
        await app.services.downloads.run_until_idle()
        await app.services.queue.on_download_change("wanted")
        ready = await entry(app, queued["queue_id"])
    assert (after_restart["status"], after_restart["position"]) == ("WAITING", 1)
    assert after_restart["request"]["prompt"] == "a cat"
    assert ready["status"] == "READY"


async def test_entries_expire_with_a_reason(hub: LocalHub, make_settings: SettingsFactory) -> None:
    hub.faults.add(Throttle(bytes_per_second=100_000), repo="acme/wanted", times=None)
    settings = make_settings(hf_endpoint=hub.endpoint, queue_claim_timeout_minutes=5)
    async with run_app(settings, entries=ENTRIES) as app:
        impatient = await enqueue(app, max_wait_time_minutes=30)
        patient = await enqueue(app)
        ready_now = await enqueue(app, model_id="other")  # not installed: downloads
        await progress_until(app, lambda p: p["status"] == "COMPLETED", "other")
        await app.services.queue.on_download_change("other")
        unclaimed = await entry(app, ready_now["queue_id"])
        queue = app.services.queue
        queue._clock = lambda: datetime.now(UTC) + timedelta(minutes=31)
        await queue.tick()
        expired = [await entry(app, q["queue_id"]) for q in (impatient, patient, ready_now)]
        queue._clock = lambda: datetime.now(UTC) + timedelta(days=8)
        await queue.tick()
        forgotten = await app.client.get(f"{Q}/{impatient['queue_id']}")
        still_waiting = await entry(app, patient["queue_id"])
    assert unclaimed["status"] == "READY"
    # "wanted" is still downloading: the entry without a limit waits on.
    assert [e["status"] for e in expired] == ["EXPIRED", "WAITING", "EXPIRED"]
    assert expired[0]["reason"] == "Waited longer than max_wait_time_minutes"
    assert expired[2]["reason"] == "Not claimed within the claim time-out"
    assert forgotten.status_code == 404  # ended more than 7 days ago
    assert still_waiting["status"] == "WAITING"  # open entries are never forgotten


async def test_a_failed_download_fails_its_entries_with_suggestions(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Status(403), server="cdn", repo="acme/wanted", times=None)
    settings = make_settings(
        hf_endpoint=hub.endpoint, downloads={"max_retries": 0}, retry_base_delay_seconds=0.01
    )
    async with run_app(settings, entries=ENTRIES) as app:
        await manage(app, "start", "other")
        await app.services.downloads.run_until_idle()
        queued = await enqueue(app)
        await app.services.downloads.run_until_idle()
        await app.services.queue.on_download_change("wanted")
        failed = await entry(app, queued["queue_id"])
        claim = await app.client.post(f"{Q}/{queued['queue_id']}/claim", json={})
    assert failed["status"] == "FAILED"
    assert failed["reason"].startswith("The download of wanted failed")
    assert failed["suggestions"][0]["suggested_model"] == "other"
    assert failed["suggestions"][0]["availability_status"] == "AVAILABLE"
    assert claim.status_code == 409


async def test_switched_off_new_requests_are_refused_and_queued_ones_go_on(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    """``features.intelligent_fallback`` off: no suggestions, no new entries, no
    ``fallback_suggestion``; entries already queued keep their course (FAILED without
    suggestions); on again, everything is back."""
    hub.faults.add(Status(403), server="cdn", repo="acme/wanted", times=None)
    settings = make_settings(
        hf_endpoint=hub.endpoint, downloads={"max_retries": 0}, retry_base_delay_seconds=0.01
    )
    ask = {"requested_model": "wanted"}
    async with run_app(settings, entries=ENTRIES) as app:
        await manage(app, "start", "other")
        await app.services.downloads.run_until_idle()
        queued = await enqueue(app)
        off = await app.client.put(
            f"{V}/config/update", json={"features": {"intelligent_fallback": False}}
        )
        events = app.services.bus.subscribe()
        suggest_off = await app.client.post(f"{V}/models/fallback/suggest", json=ask)
        queue_off = await app.client.post(Q, json={"model_id": "other", "request": {"prompt": "x"}})
        await app.services.downloads.run_until_idle()
        await app.services.queue.on_download_change("wanted")
        failed = await entry(app, queued["queue_id"])
        announced = []
        while events.pending:
            announced.append((await events.get()).type)
        await app.client.put(
            f"{V}/config/update", json={"features": {"intelligent_fallback": True}}
        )
        suggest_on = await app.client.post(f"{V}/models/fallback/suggest", json=ask)
    assert off.status_code == 200, off.text
    for refused in (suggest_off, queue_off):
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "FEATURE_DISABLED"
        assert "intelligent_fallback" in refused.json()["error"]["message"]
    assert failed["status"] == "FAILED"
    assert failed["suggestions"] is None
    assert "fallback_suggestion" not in announced
    assert "queue_entry_change" in announced  # the queued entry went on
    assert suggest_on.status_code == 200
    assert suggest_on.json()["suggestions"][0]["suggested_model"] == "other"


async def test_a_model_made_available_another_way_readies_its_entries_at_once(
    hub: LocalHub, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files copied in (here by huggingface_hub) make the model AVAILABLE without a
    download of ours: the queue's loop is woken by the availability change (its periodic
    tick is pushed an hour away, so only the wake can do it)."""
    monkeypatch.setattr("modeldepot.fallback.queue.TICK_SECONDS", 3600.0)
    hub.faults.add(Throttle(bytes_per_second=200_000), repo="acme/wanted", times=None)
    settings = make_settings(hf_endpoint=hub.endpoint)
    async with run_app(settings, entries=ENTRIES) as app:
        queued = await enqueue(app)
        await manage(app, "cancel")
        await app.services.downloads.run_until_idle()
        waiting = await entry(app, queued["queue_id"])
        hub.faults.clear()
        events = app.services.bus.subscribe()
        loop = asyncio.create_task(app.services.queue.run_loop())
        try:
            await asyncio.to_thread(
                fill_cache_with_huggingface_hub, hub, "acme/wanted", settings.models_dir
            )
            await app.services.availability.recompute("wanted")
            async with asyncio.timeout(30):
                async for event in events:
                    if isinstance(event, QueueEntryChange) and event.status == "READY":
                        break
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        ready = await entry(app, queued["queue_id"])
    assert waiting["status"] == "WAITING"
    assert ready["status"] == "READY"


async def test_a_waited_for_model_is_protected_from_cleanup(
    hub: LocalHub, make_settings: SettingsFactory
) -> None:
    hub.faults.add(Throttle(bytes_per_second=300_000), repo="acme/wanted", times=None)
    async with run_app(make_settings(hf_endpoint=hub.endpoint), entries=ENTRIES) as app:
        queued = await enqueue(app)
        await progress_until(app, lambda p: p["progress_percent"] > 5, "wanted")
        await manage(app, "pause")
        await manage(app, "cancel")  # the entry still waits (a later start serves it)
        cleanup = await app.client.post(
            f"{V}/models/cleanup",
            json={"cleanup_type": "manual", "models_to_remove": ["wanted"], "dry_run": True},
        )
        waiting = await entry(app, queued["queue_id"])
    decisions = {d["model_id"]: d for d in cleanup.json()["decisions"]}
    assert waiting["status"] == "WAITING"
    if decisions["wanted"]["outcome"] != "absent":  # a cancel may leave nothing on disk
        assert decisions["wanted"]["reason"] == "Waited for by the wait queue"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model_id": "wanted"},
        {"model_id": "wanted", "request": {}},
        {"model_id": "wanted", "request": {"prompt": 5}},
        {"model_id": "wanted", "request": {"prompt": "x"}, "priority": "asap"},
        {"model_id": "wanted", "request": {"prompt": "x"}, "max_wait_time_minutes": 0},
        {"model_id": "wanted", "request": {"prompt": "x"}, "max_wait_time_minutes": "5"},
        {"model_id": "../x", "request": {"prompt": "x"}},
    ],
)
async def test_bad_queue_requests_are_422(
    make_settings: SettingsFactory, body: dict[str, Any]
) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(Q, json=body)
    assert answer.status_code == 422, answer.text


async def test_unknown_entries_and_models(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        missing = await app.client.get(f"{Q}/queue_0123456789abcdef")
        malformed = await app.client.get(f"{Q}/nope")
        claim = await app.client.post(f"{Q}/queue_0123456789abcdef/claim", json={})
        unknown = await app.client.post(Q, json={"model_id": "nobody", "request": {"prompt": "x"}})
    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404,
        "QUEUE_ENTRY_NOT_FOUND",
    )
    assert malformed.status_code == 422
    assert claim.status_code == 404
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "MODEL_NOT_FOUND")
