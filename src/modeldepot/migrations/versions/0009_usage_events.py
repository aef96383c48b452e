"""usage events

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 14:15:00

What generation apps report (``modeldepot.usage``): one row per event, unique by the
app's ``event_id`` (a repeat is ignored), indexed for per-model time ranges.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=True),
        sa.Column("peak_vram_gb", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_usage_events_event_id")),
    )
    op.create_index("ix_usage_events_model_at", "usage_events", ["model_id", "at"])
    op.create_index("ix_usage_events_at", "usage_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_at", table_name="usage_events")
    op.drop_index("ix_usage_events_model_at", table_name="usage_events")
    op.drop_table("usage_events")
