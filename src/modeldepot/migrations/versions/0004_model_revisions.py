"""model revisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_revisions",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("commit_hash", sa.String(length=40), nullable=False),
        sa.Column("repo_id", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("freed_bytes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("model_id", "commit_hash", name=op.f("pk_model_revisions")),
    )
    with op.batch_alter_table("model_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_revisions_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_revisions_state"))
    op.drop_table("model_revisions")
