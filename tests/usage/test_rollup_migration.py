"""Migration 0010 adds up the events an earlier version stored into the hourly roll-ups
(on SQLite and PostgreSQL), so analytics after an upgrade include them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from modeldepot.db import _alembic_config, create_engine
from tests.support import SettingsFactory, hub_entry, run_app

ROWS = [
    ("e1", "alpha", "generation_completed", "2026-01-09 21:30:00", 6.0),
    ("e2", "alpha", "generation_completed", "2026-01-09 21:59:59", 8.0),
    ("e3", "alpha", "generation_failed", "2026-01-09 23:00:00", None),
    ("e4", "alpha", "generation_started", "2026-01-10 00:00:00", None),
    ("e5", "alpha", "model_loaded", "2026-01-10 00:00:00", None),
]


async def test_events_stored_before_the_rollups_are_added_up_once(
    make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    settings = make_settings(**database)
    engine = create_engine(settings.resolved_database_url, schema=settings.database_schema)

    def at_0009_with_events(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f'create schema if not exists "{settings.database_schema}"')
        command.upgrade(_alembic_config(connection), "0009")

        def stored(at: str) -> object:  # as each backend's DateTime column holds it
            moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
            if connection.dialect.name == "postgresql":
                return moment
            return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

        for event_id, model, kind, at, seconds in ROWS:
            connection.execute(
                text(
                    "insert into usage_events (event_id, model_id, type, at, client, "
                    "duration_seconds, received_at) values (:e, :m, :t, :at, 'c', :s, :at)"
                ),
                {"e": event_id, "m": model, "t": kind, "at": stored(at), "s": seconds},
            )

    try:
        async with engine.begin() as connection:
            await connection.run_sync(at_0009_with_events)
    finally:
        await engine.dispose()
    async with run_app(settings, entries=(hub_entry("alpha", "acme/alpha"),), resolve=False) as app:
        answer = await app.client.get(
            "/api/v1/models/analytics/alpha?start_date=2026-01-09&end_date=2026-01-10"
        )
    alpha = answer.json()["models"]["alpha"]
    assert (alpha["completed"], alpha["failed"], alpha["started"]) == (2, 1, 1)
    assert alpha["average_generation_time"] == 7.0
    assert alpha["peak_usage_hours"] == [21, 23]
    assert alpha["last_used"] == "2026-01-09T23:00:00Z"
    assert [row["uses"] for row in alpha["last_30_days_usage"]] == [3, 0]
