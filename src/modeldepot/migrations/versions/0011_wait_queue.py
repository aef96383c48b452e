"""wait queue

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 17:00:00

Generation requests waiting for their model (``modeldepot.fallback.queue``): one row per
entry, kept after it ends (claimed, expired, cancelled, failed) with the reason.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wait_queue",
        sa.Column("queue_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suggestions", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("queue_id", name=op.f("pk_wait_queue")),
    )
    op.create_index("ix_wait_queue_status_model", "wait_queue", ["status", "model_id"])


def downgrade() -> None:
    op.drop_index("ix_wait_queue_status_model", table_name="wait_queue")
    op.drop_table("wait_queue")
