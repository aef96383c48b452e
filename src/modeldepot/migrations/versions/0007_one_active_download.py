"""one active download per model; digests a repair fetches again

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 07:00:00

Databases written before this revision may hold several active rows for one model (a
race the ledger now rules out). The newest one stays; the others become CANCELLED with a
message saying why, and a partial unique index keeps it that way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTIVE_SQL = "status IN ('QUEUED', 'DOWNLOADING', 'PAUSED', 'VERIFYING')"
SUPERSEDE_OLDER_ACTIVE = """
UPDATE downloads
   SET status = 'CANCELLED',
       error_message = 'Superseded by a newer download of the same model'
 WHERE status IN ('QUEUED', 'DOWNLOADING', 'PAUSED', 'VERIFYING')
   AND seq < (SELECT MAX(newer.seq) FROM downloads AS newer
               WHERE newer.model_id = downloads.model_id
                 AND newer.status IN ('QUEUED', 'DOWNLOADING', 'PAUSED', 'VERIFYING'))
"""


def upgrade() -> None:
    with op.batch_alter_table("downloads") as batch:
        batch.add_column(sa.Column("refetch", sa.JSON(), nullable=True))
    op.execute(SUPERSEDE_OLDER_ACTIVE)
    op.create_index(
        "uq_downloads_active_model",
        "downloads",
        ["model_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    )


def downgrade() -> None:
    op.drop_index("uq_downloads_active_model", table_name="downloads")
    with op.batch_alter_table("downloads") as batch:
        batch.drop_column("refetch")
