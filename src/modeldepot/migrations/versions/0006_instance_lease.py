"""instance lease

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 06:45:00

One row per lease name: today only ``single-instance``, the process that owns this
database (see ``modeldepot.instance``). Cluster mode will add rows of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_dir", sa.Text(), nullable=False),
        sa.Column("models_dir", sa.Text(), nullable=False),
        sa.Column("bind", sa.String(length=300), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_leases")),
    )


def downgrade() -> None:
    op.drop_table("instance_leases")
