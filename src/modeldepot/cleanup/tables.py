"""Pins and the record of every cleanup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime


class PinRow(Base):
    __tablename__ = "model_pins"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    pinned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CleanupRow(Base):
    __tablename__ = "cleanups"

    cleanup_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_cleanups_at", "at"),)
