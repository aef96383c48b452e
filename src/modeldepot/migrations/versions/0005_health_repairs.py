"""health repairs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_repairs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("repair_type", sa.String(length=16), nullable=False),
        sa.Column("force_repair", sa.Boolean(), nullable=False),
        sa.Column("commit_hash", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actions_taken", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("download_id", sa.String(length=40), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overall_health", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_repairs")),
    )
    with op.batch_alter_table("health_repairs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_health_repairs_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_health_repairs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("health_repairs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_repairs_status"))
        batch_op.drop_index(batch_op.f("ix_health_repairs_model_id"))
    op.drop_table("health_repairs")
