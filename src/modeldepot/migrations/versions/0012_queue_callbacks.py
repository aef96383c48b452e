"""wait queue callbacks

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 18:40:00

A wait-queue entry's optional callback URL and the state of its notification
(``modeldepot.fallback.callbacks``): pending deliveries survive a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wait_queue") as batch:
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_secret", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("callback_status", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("callback_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("callback_next_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("callback_error", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("callback_delivered_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_wait_queue_callback_due", "wait_queue", ["callback_status", "callback_next_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_wait_queue_callback_due", table_name="wait_queue")
    with op.batch_alter_table("wait_queue") as batch:
        for column in (
            "callback_delivered_at",
            "callback_error",
            "callback_next_at",
            "callback_attempts",
            "callback_status",
            "callback_secret",
            "callback_url",
        ):
            batch.drop_column(column)
