"""Health tables: one row per health check run, the digest cache quick checks trust, and
one row per repair.

``health_checks`` keeps every run (queued, running, completed or failed) with its verdict,
so a check can be looked up by id and the latest verdict survives a restart.
``health_file_digests`` remembers, per repository commit and file, the digest a full hash
produced for the file as it was (size, mtime_ns, inode): a quick check after a restart
still skips files that have not changed since.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime


class HealthCheckRow(Base):
    __tablename__ = "health_checks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    check_type: Mapped[str] = mapped_column(String(16))
    force_check: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    commit_hash: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    estimated_completion: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    integrity_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    performance_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    overall_health: Mapped[str | None] = mapped_column(String(16), nullable=True)
    issues: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recommendations: Mapped[list[str]] = mapped_column(JSON, default=list)
    measurements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class FileDigestRow(Base):
    __tablename__ = "health_file_digests"

    repo_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    commit_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(80))
    verified_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RepairRow(Base):
    """A repair: what it did at once, and how it ended (``running`` until the download it
    started is over and the model has been verified again)."""

    __tablename__ = "health_repairs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    repair_type: Mapped[str] = mapped_column(String(16))
    force_repair: Mapped[bool] = mapped_column(default=False)
    commit_hash: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)
    actions_taken: Mapped[list[str]] = mapped_column(JSON, default=list)
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    download_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    overall_health: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
