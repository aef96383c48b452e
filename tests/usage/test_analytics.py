"""``GET /models/analytics[/{model_id}]``: usage added up per UTC day and hour in SQL, on
SQLite and PostgreSQL, surviving a restart and the pruning of raw events (issue 11)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from modeldepot.usage.tables import UsageRow
from tests.support import SettingsFactory, hub_entry, run_app

V = "/api/v1"
ENTRIES = (hub_entry("alpha", "acme/alpha"), hub_entry("beta", "acme/beta"))
JANUARY = f"{V}/models/analytics?start_date=2026-01-01&end_date=2026-01-31"


def done(n: int, model: str, at: str, seconds: float) -> dict[str, Any]:
    return {
        "event_id": f"c-{n}",
        "model_id": model,
        "type": "generation_completed",
        "at": at,
        "duration_seconds": seconds,
    }


def failed(n: int, model: str, at: str) -> dict[str, Any]:
    return {"event_id": f"f-{n}", "model_id": model, "type": "generation_failed", "at": at}


EVENTS = [
    # 2026-01-01 is before the last 30 days of January (2..31): in totals, not in rows.
    done(1, "alpha", "2026-01-01T14:00:00Z", 4.0),
    # Late on the 9th in UTC although the reporter's clock said the 10th.
    done(2, "alpha", "2026-01-10T02:30:00+05:00", 6.0),
    done(3, "alpha", "2026-01-09T21:59:59Z", 8.0),
    failed(4, "alpha", "2026-01-09T23:59:59.999Z"),
    done(5, "alpha", "2026-01-10T00:00:00Z", 10.0),  # the first instant of the 10th
    done(6, "alpha", "2026-01-31T14:10:00Z", 2.0),
    done(7, "alpha", "2026-01-31T14:50:00Z", 2.0),
    {
        "event_id": "s-1",
        "model_id": "alpha",
        "type": "generation_started",
        "at": "2026-01-31T13:59:00Z",
    },
    done(8, "alpha", "2026-02-01T00:00:00Z", 99.0),  # the day after the range
    done(9, "beta", "2026-01-20T09:00:00Z", 30.0),
]


async def test_usage_adds_up_per_utc_day_with_empty_days_on_both_databases(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(**database)
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        answer = await app.client.post(f"{V}/models/usage", json={"events": EVENTS})
        assert answer.json()["accepted"] == len(EVENTS), answer.text
        everyone = (await app.client.get(JANUARY)).json()
        one = (
            await app.client.get(
                f"{V}/models/analytics/alpha?start_date=2026-01-01&end_date=2026-01-31"
            )
        ).json()
    alpha = everyone["models"]["alpha"]
    # In January: 1, 2, 3, 5, 6, 7 completed, 4 failed; 8 is February's.
    assert alpha["total_uses"] == 7
    assert (alpha["completed"], alpha["failed"], alpha["started"]) == (6, 1, 1)
    assert alpha["uses_per_day"] == round(7 / 31, 4)
    assert alpha["average_generation_time"] == round((4 + 6 + 8 + 10 + 2 + 2) / 6, 3)
    assert alpha["success_rate"] == round(6 / 7, 4)
    assert alpha["last_used"] == "2026-01-31T14:50:00Z"
    rows = alpha["last_30_days_usage"]
    assert [row["date"] for row in rows] == [
        (date(2026, 1, 2) + timedelta(days=n)).isoformat() for n in range(30)
    ]
    by_day = {row["date"]: (row["uses"], row["avg_time"]) for row in rows}
    assert by_day["2026-01-09"] == (3, 7.0)  # 2 and 3 completed (6 s, 8 s), 4 failed
    assert by_day["2026-01-10"] == (1, 10.0)
    assert by_day["2026-01-31"] == (2, 2.0)
    assert by_day["2026-01-15"] == (0, None)
    assert sum(uses for uses, _ in by_day.values()) == 6  # the 1st is outside the rows
    # Hour 14 (three uses: 1st, 31st twice), 21 (two, the 9th), then 0 and 23 (one each).
    assert alpha["peak_usage_hours"] == [14, 21, 0, 23]
    beta = everyone["models"]["beta"]
    assert (beta["total_uses"], beta["success_rate"], beta["peak_usage_hours"]) == (1, 1.0, [9])
    assert everyone["summary"] == {
        "total_generations": 8,
        "total_models_used": 2,
        "average_success_rate": round(7 / 8, 4),
        "most_used_model": "alpha",
        "least_used_model": "beta",
    }
    assert everyone["range"] == {
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
        "days": 31,
        "time_zone": "UTC",
    }
    assert one["models"] == {"alpha": alpha}
    assert one["summary"]["least_used_model"] == "alpha"
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        assert (await app.client.get(JANUARY)).json() == everyone


async def test_the_figures_survive_the_pruning_of_raw_events(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(**database, usage_retention_days=30)
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        events = [*EVENTS, done(100, "alpha", recent, 5.0)]
        assert (await app.client.post(f"{V}/models/usage", json={"events": events})).is_success
        before = (await app.client.get(JANUARY)).json()
        status_before = (await app.client.get(f"{V}/models/status/detailed/alpha")).json()
        deleted = await app.services.usage.prune(settings.usage_retention_days)
        assert deleted == len(EVENTS)  # everything but the recent one
        async with app.services.sessions() as session:
            left = await session.scalar(select(func.count()).select_from(UsageRow))
        assert left == 1
        assert (await app.client.get(JANUARY)).json() == before
    async with run_app(settings, entries=ENTRIES, resolve=False) as app:
        assert (await app.client.get(JANUARY)).json() == before
        status_after = (await app.client.get(f"{V}/models/status/detailed/alpha")).json()
    for name in ("last_used", "usage_frequency", "average_generation_time"):
        assert status_after[name] == status_before[name]


async def test_a_period_ends_today_and_the_default_is_a_month(
    make_settings: SettingsFactory,
) -> None:
    now = datetime.now(UTC)
    today = now.date()
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        events = [
            done(1, "alpha", now.isoformat(), 1.0),
            done(2, "alpha", (now - timedelta(days=6)).isoformat(), 1.0),
            done(3, "alpha", (now - timedelta(days=40)).isoformat(), 1.0),
        ]
        assert (await app.client.post(f"{V}/models/usage", json={"events": events})).is_success
        answers = {
            period: (await app.client.get(f"{V}/models/analytics/alpha{query}")).json()
            for period, query in (
                ("default", ""),
                ("day", "?period=day"),
                ("week", "?period=week"),
                ("year", "?period=year"),
            )
        }
    ranges = {period: body["range"] for period, body in answers.items()}
    uses = {period: body["models"]["alpha"]["total_uses"] for period, body in answers.items()}
    assert uses == {"default": 2, "day": 1, "week": 2, "year": 3}
    assert {period: r["days"] for period, r in ranges.items()} == {
        "default": 30,
        "day": 1,
        "week": 7,
        "year": 365,
    }
    assert all(r["end_date"] == today.isoformat() for r in ranges.values())
    assert len(answers["week"]["models"]["alpha"]["last_30_days_usage"]) == 7
    assert answers["day"]["models"]["alpha"]["last_30_days_usage"][0]["uses"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "?start_date=0001-01-01&end_date=0001-01-01",
        "?end_date=0001-01-05",
        "?start_date=9999-12-31&end_date=9999-12-31",
    ],
)
async def test_ranges_at_the_ends_of_the_calendar_answer(
    make_settings: SettingsFactory, query: str
) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.get(f"{V}/models/analytics{query}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["summary"]["total_generations"] == 0


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?period=week&start_date=2026-01-01", 422, "VALIDATION_ERROR"),
        ("?start_date=2026-02-01&end_date=2026-01-01", 422, "VALIDATION_ERROR"),
        ("?start_date=2026-13-01", 422, "VALIDATION_ERROR"),
        ("?period=fortnight", 422, "VALIDATION_ERROR"),
        ("?start_date=0", 422, "VALIDATION_ERROR"),
        ("/nobody", 404, "MODEL_NOT_FOUND"),
        ("/..%2Fx", 422, "INVALID_MODEL_ID"),
    ],
)
async def test_bad_queries_are_refused_in_the_envelope(
    make_settings: SettingsFactory, query: str, status: int, code: str
) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        answer = await app.client.get(f"{V}/models/analytics{query}")
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


async def test_switched_off_analytics_record_nothing(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), entries=ENTRIES, resolve=False) as app:
        off = {"features": {"usage_analytics": False}}
        assert (await app.client.put(f"{V}/config/update", json=off)).is_success
        refused = await app.client.post(f"{V}/models/usage", json={"events": EVENTS[:1]})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "FEATURE_DISABLED"
        assert (await app.client.get(JANUARY)).json()["summary"]["total_generations"] == 0
        on = {"features": {"usage_analytics": True}}
        assert (await app.client.put(f"{V}/config/update", json=on)).is_success
        accepted = await app.client.post(f"{V}/models/usage", json={"events": EVENTS[:1]})
        assert accepted.json()["accepted"] == 1
