"""usage roll-ups, pins and cleanup records

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 15:40:00

- ``usage_hours``: per model and UTC hour, what the usage events added up to (written in
  the same transaction as the events): the analytics read these, so the figures survive
  the pruning of raw events older than the retention.
- ``model_pins``: models the user keeps whatever their usage (never cleanup candidates).
- ``cleanups``: every cleanup, dry runs included, with its result, looked up by id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_hours",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("duration_sum", sa.Float(), nullable=False),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("model_id", "day", "hour", name=op.f("pk_usage_hours")),
    )
    op.create_index("ix_usage_hours_day", "usage_hours", ["day"])
    # Events stored before the roll-ups existed are added up once, here.
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(sa.text(_BACKFILL_POSTGRESQL if postgresql else _BACKFILL_SQLITE))
    op.create_table(
        "model_pins",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_pins")),
    )
    op.create_table(
        "cleanups",
        sa.Column("cleanup_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("cleanup_id", name=op.f("pk_cleanups")),
    )
    op.create_index("ix_cleanups_at", "cleanups", ["at"])


_BACKFILL_SQLITE = """
INSERT INTO usage_hours (model_id, day, hour, started, completed, failed,
                         duration_sum, duration_count, last_at)
SELECT model_id, DATE(at), CAST(STRFTIME('%H', at) AS INTEGER),
       SUM(type = 'generation_started'), SUM(type = 'generation_completed'),
       SUM(type = 'generation_failed'),
       COALESCE(SUM(CASE WHEN type = 'generation_completed' THEN duration_seconds END), 0),
       SUM(type = 'generation_completed' AND duration_seconds IS NOT NULL),
       MAX(CASE WHEN type IN ('generation_completed', 'generation_failed') THEN at END)
FROM usage_events WHERE type LIKE 'generation_%'
GROUP BY model_id, DATE(at), CAST(STRFTIME('%H', at) AS INTEGER)
"""

_BACKFILL_POSTGRESQL = """
INSERT INTO usage_hours (model_id, day, hour, started, completed, failed,
                         duration_sum, duration_count, last_at)
SELECT model_id, day, hour,
       COUNT(*) FILTER (WHERE type = 'generation_started'),
       COUNT(*) FILTER (WHERE type = 'generation_completed'),
       COUNT(*) FILTER (WHERE type = 'generation_failed'),
       COALESCE(SUM(duration_seconds) FILTER (WHERE type = 'generation_completed'), 0),
       COUNT(duration_seconds) FILTER (WHERE type = 'generation_completed'),
       MAX(at) FILTER (WHERE type IN ('generation_completed', 'generation_failed'))
FROM (SELECT *, CAST(at AT TIME ZONE 'UTC' AS DATE) AS day,
             CAST(EXTRACT(HOUR FROM at AT TIME ZONE 'UTC') AS INTEGER) AS hour
      FROM usage_events WHERE type LIKE 'generation_%') AS e
GROUP BY model_id, day, hour
"""


def downgrade() -> None:
    op.drop_index("ix_cleanups_at", table_name="cleanups")
    op.drop_table("cleanups")
    op.drop_table("model_pins")
    op.drop_index("ix_usage_hours_day", table_name="usage_hours")
    op.drop_table("usage_hours")
