"""Usage reported through the API shows in every model's status (issue 11, first part):
idempotent by event id, strictly validated, group-committed, rebuilt at a restart, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldepot.testing import LocalHub
from modeldepot.usage.service import LOADED_TTL
from tests.support import SettingsFactory, fill_cache_with_huggingface_hub, hub_entry, run_app

V = "/api/v1"
ENTRIES = (hub_entry("alpha", "acme/alpha"), hub_entry("beta", "acme/beta"))
NOW = datetime.now(UTC).replace(microsecond=0)


def event(n: int | str, model: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "model_id": model, "type": kind, **extra}


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


async def status(app: Any, model: str) -> dict[str, Any]:
    answer = await app.client.get(f"{V}/models/status/detailed/{model}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_reported_usage_shows_in_the_status_and_survives_a_restart(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(**database)
    events = [
        event(1, "alpha", "generation_started", at=ago(days=40)),
        event(2, "alpha", "generation_completed", at=ago(days=40), duration_seconds=99.0),
        event(3, "alpha", "generation_completed", at=ago(days=29, hours=1), duration_seconds=10),
        event(4, "alpha", "generation_failed", at=ago(days=2)),
        event(
            5,
            "alpha",
            "generation_completed",
            at=ago(hours=3),
            duration_seconds=20.5,
            parameters={"resolution": "1280x720", "steps": 30, "frames": 81},
            peak_vram_gb=21.5,
        ),
        event(6, "alpha", "model_loaded", at=ago(hours=1), client="ui-1"),
    ]
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        before = await status(app, "alpha")
        assert (before["last_used"], before["usage_frequency"], before["is_loaded"]) == (
            None,
            0.0,
            False,
        )
        answer = await app.client.post(f"{V}/models/usage", json={"events": events})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True, "accepted": 6, "duplicates": 0}
        again = await app.client.post(f"{V}/models/usage", json={"events": events[3:]})
        assert again.json() == {"success": True, "accepted": 0, "duplicates": 3}
        alpha = await status(app, "alpha")
        beta = await status(app, "beta")
    # Uses: the generations that ended within the 30 UTC days up to today: 3, 4 and 5
    # (2 is older; 1 only started). The average is over completed ones in the window.
    expected = {
        "last_used": datetime.fromisoformat(ago(hours=3)),
        "usage_frequency": round(3 / 30, 4),
        "average_generation_time": round((10 + 20.5) / 2, 3),
        "is_loaded": True,
    }
    assert figures(alpha) == expected
    assert figures(beta) == {
        "last_used": None,
        "usage_frequency": 0.0,
        "average_generation_time": None,
        "is_loaded": False,
    }
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        assert figures(await status(app, "alpha")) == expected  # rebuilt from the database


def figures(body: dict[str, Any]) -> dict[str, Any]:
    last = body["last_used"]
    return {
        "last_used": datetime.fromisoformat(last) if last else None,
        "usage_frequency": body["usage_frequency"],
        "average_generation_time": body["average_generation_time"],
        "is_loaded": body["is_loaded"],
    }


async def test_a_model_is_loaded_while_any_client_has_it_and_reports(
    make_settings: SettingsFactory,
) -> None:
    stale = LOADED_TTL + timedelta(minutes=5)
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:

        async def report(*events: dict[str, Any]) -> bool:
            answer = await app.client.post(f"{V}/models/usage", json={"events": list(events)})
            assert answer.status_code == 200, answer.text
            return bool((await status(app, "beta"))["is_loaded"])

        assert await report(event("a", "beta", "model_loaded", client="app-1"))
        assert await report(event("b", "beta", "model_loaded", client="app-2"))
        assert await report(event("c", "beta", "model_unloaded", client="app-1"))
        assert not await report(event("d", "beta", "model_unloaded", client="app-2"))
        # A client that loaded it and then went silent for over a day (crashed) does not
        # keep it loaded.
        assert not await report(
            event("e", "beta", "model_loaded", client="app-3", at=(NOW - stale).isoformat())
        )


BAD = [
    ({"events": []}, "events"),
    ({"events": [event(1, "alpha", "generation_completed")]}, "events.0"),
    (
        {"events": [event(1, "alpha", "generation_completed", duration_seconds="3")]},
        "events.0.duration_seconds",
    ),
    (
        {"events": [event(1, "alpha", "generation_completed", duration_seconds=-1)]},
        "events.0.duration_seconds",
    ),
    (
        {"events": [event(1, "alpha", "generation_completed", duration_seconds=1e300)]},
        "events.0.duration_seconds",
    ),
    ({"events": [event(1, "alpha", "model_loaded", duration_seconds=3)]}, "events.0"),
    ({"events": [event(1, "alpha", "generation_ended")]}, "events.0.type"),
    ({"events": [event(1, "../x", "model_loaded")]}, "events.0.model_id"),
    ({"events": [event("bad id!", "alpha", "model_loaded")]}, "events.0.event_id"),
    ({"events": [event(1, "alpha", "model_loaded", at="2026-11-29T10:00:00")]}, "events.0.at"),
    ({"events": [event(1, "alpha", "model_loaded", extra=True)]}, "events.0.extra"),
    (
        {"events": [event(1, "alpha", "generation_started", parameters={"steps": 1.5})]},
        "events.0.parameters.steps",
    ),
    (
        {"events": [event(1, "alpha", "generation_started", parameters={"resolution": "big"})]},
        "events.0.parameters.resolution",
    ),
    ({"events": [event(n, "alpha", "model_loaded") for n in range(1001)]}, "events"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f for _, f in BAD])
async def test_bad_reports_are_422_naming_the_field_and_store_nothing(
    make_settings: SettingsFactory, body: dict[str, Any], field: str
) -> None:
    good = event("fine", "alpha", "generation_failed")
    if body["events"] and len(body["events"]) < 1000:
        body = {"events": [good, *body["events"]]}
        field = field.replace("events.0", "events.1")
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(f"{V}/models/usage", json=body)
        alpha = await status(app, "alpha")
    assert answer.status_code == 422, answer.text
    fields = [e["field"] for e in answer.json()["error"]["details"]["errors"]]
    assert any(
        f == f"body.{field}" or f == field or f.startswith(f"body.{field}") for f in fields
    ), fields
    assert alpha["last_used"] is None  # not even the good event of the batch


async def test_concurrent_reports_are_written_together_and_each_counted_once(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    rng = random.Random(10)
    ids = [f"burst-{n}" for n in range(60)]
    batches = [rng.sample(ids, 12) for _ in range(25)]  # overlapping: many duplicates
    async with run_app(make_settings(**database), entries=ENTRIES, resolve=False) as app:
        answers = await asyncio.gather(
            *(
                app.client.post(
                    f"{V}/models/usage",
                    json={
                        "events": [
                            event(i.removeprefix("e-"), "alpha", "generation_failed")
                            | {"event_id": i}
                            for i in batch
                        ]
                    },
                )
                for batch in batches
            )
        )
        alpha = await status(app, "alpha")
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    accepted = sum(a.json()["accepted"] for a in answers)
    duplicates = sum(a.json()["duplicates"] for a in answers)
    distinct = len({i for batch in batches for i in batch})
    assert accepted == distinct
    assert accepted + duplicates == sum(len(b) for b in batches)
    assert alpha["usage_frequency"] == round(distinct / 30, 4)


async def test_an_unknown_model_is_404_and_nothing_of_the_batch_is_stored(
    make_settings: SettingsFactory,
) -> None:
    body = {"events": [event(1, "alpha", "generation_failed"), event(2, "nobody", "model_loaded")]}
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(f"{V}/models/usage", json=body)
        alpha = await status(app, "alpha")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "MODEL_NOT_FOUND"
    assert alpha["last_used"] is None


async def test_a_time_ahead_of_the_service_clock_is_taken_as_received(
    make_settings: SettingsFactory,
) -> None:
    ahead = event(1, "alpha", "generation_failed", at=(NOW + timedelta(days=3)).isoformat())
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(f"{V}/models/usage", json={"events": [ahead]})
        alpha = await status(app, "alpha")
    assert answer.status_code == 200
    last_used = datetime.fromisoformat(alpha["last_used"])
    assert NOW <= last_used <= datetime.now(UTC)


async def test_reported_usage_decides_the_storage_tier(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    """hot: used in the last 7 days; warm: in the last 30; cold: older or never."""
    names = ("hot", "warm", "cold", "never")
    for name in names:
        local_hub.create_repo(f"acme/{name}", {"config.json": name.encode()})
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    for name in names:
        fill_cache_with_huggingface_hub(local_hub, f"acme/{name}", settings.models_dir)
    entries = tuple(hub_entry(name, f"acme/{name}") for name in names)
    uses = {"hot": ago(days=6, hours=23), "warm": ago(days=29), "cold": ago(days=31)}
    events = [
        event(name, name, "generation_completed", at=at, duration_seconds=1.0)
        for name, at in uses.items()
    ]
    async with run_app(settings, entries=entries) as app:
        answer = await app.client.post(f"{V}/models/usage", json={"events": events})
        assert answer.status_code == 200, answer.text
        storage = (await app.client.get(f"{V}/models/storage")).json()
    rows = {m["model_id"]: m for m in storage["models_storage"]}
    assert {name: rows[name]["storage_tier"] for name in names} == {
        "hot": "hot",
        "warm": "warm",
        "cold": "cold",
        "never": "cold",
    }
    for name, at in uses.items():
        assert datetime.fromisoformat(rows[name]["last_accessed"]) == datetime.fromisoformat(at)
    assert rows["never"]["last_accessed"] is None
    assert rows["hot"]["usage_frequency"] == round(1 / 30, 4)
    assert rows["cold"]["usage_frequency"] == 0.0  # outside the 30-day window


async def test_full_batches_arriving_together_fit_the_database_limits(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    """Five 1000-event reports at once become one write of 5000 rows: more parameters than
    PostgreSQL takes in one statement (32,767), so the write goes in pages."""
    batches = [
        [
            event(f"{b}-{n}", "alpha", "generation_completed", duration_seconds=1.0)
            for n in range(1000)
        ]
        for b in range(5)
    ]
    async with run_app(make_settings(**database), entries=ENTRIES, resolve=False) as app:
        answers = await asyncio.gather(
            *(app.client.post(f"{V}/models/usage", json={"events": b}) for b in batches)
        )
        alpha = await status(app, "alpha")
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    assert sum(a.json()["accepted"] for a in answers) == 5000
    assert alpha["usage_frequency"] == round(5000 / 30, 4)
