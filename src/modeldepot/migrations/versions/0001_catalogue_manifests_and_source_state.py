"""catalogue manifests and source state

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 07:38:11.564244
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("repo_id", sa.String(length=200), nullable=False),
        sa.Column("commit_hash", sa.String(length=40), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifests")),
        sa.UniqueConstraint("repo_id", "commit_hash", name="uq_manifests_repo_commit"),
    )
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manifests_repo_id"), ["repo_id"], unique=False)

    op.create_table(
        "manifest_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name=op.f("fk_manifest_files_manifest_id_manifests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifest_files")),
        sa.UniqueConstraint("manifest_id", "path", name="uq_manifest_files_path"),
    )
    op.create_table(
        "model_source_state",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("latest_manifest_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["latest_manifest_id"],
            ["manifests.id"],
            name=op.f("fk_model_source_state_latest_manifest_id_manifests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_source_state")),
    )


def downgrade() -> None:

    op.drop_table("model_source_state")
    op.drop_table("manifest_files")
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manifests_repo_id"))

    op.drop_table("manifests")
