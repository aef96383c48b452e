"""The downloads table: one row per download job, its state and its outcome.

At most one row per model is active (queued, downloading, paused or verifying): a partial
unique index says so in the database itself (migration 0007), so no race can ever leave
two transfers of one model behind.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime

ACTIVE_STATUSES = ("QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING")
ACTIVE_SQL = "status IN ('QUEUED', 'DOWNLOADING', 'PAUSED', 'VERIFYING')"


class DownloadRow(Base):
    __tablename__ = "downloads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    repo_id: Mapped[str] = mapped_column(String(200))
    revision: Mapped[str] = mapped_column(String(200))
    commit_hash: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    max_retries: Mapped[int] = mapped_column(Integer)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    bandwidth_limit_mbps: Mapped[float] = mapped_column(Float, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    done_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    refetch: Mapped[list[str]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index(
            "uq_downloads_active_model",
            "model_id",
            unique=True,
            sqlite_where=text(ACTIVE_SQL),
            postgresql_where=text(ACTIVE_SQL),
        ),
    )
