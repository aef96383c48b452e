"""The revisions table: which commits of a model modeldepot installed, replaced or removed.

One row per (model, commit). ``current`` is the commit the model's ref points at;
``previous`` is one it pointed at before an update or rollback, kept on disk until
``superseded_at`` + ``storage.revision_grace_hours``; ``removed`` once its snapshot and the
blobs only it used are gone. Snapshots that huggingface_hub or a user put in the cache have
no row and are never removed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime


class RevisionRow(Base):
    __tablename__ = "model_revisions"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    commit_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(String(200))
    revision: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    installed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    freed_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
