"""The usage tables: raw events (kept for the retention) and their hourly roll-ups (kept)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime


class UsageRow(Base):
    """One reported event, unique by the app's ``event_id``."""

    __tablename__ = "usage_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    model_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    client: Mapped[str] = mapped_column(String(64))
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    peak_vram_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_usage_events_model_at", "model_id", "at"),
        Index("ix_usage_events_at", "at"),
    )


class UsageHourRow(Base):
    """What one model's generations added up to in one UTC hour.

    Written in the transaction that stores the events, so it always agrees with them; it
    outlives them (raw events are pruned after the retention), and the analytics read it.
    """

    __tablename__ = "usage_hours"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    started: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    duration_sum: Mapped[float] = mapped_column(Float)
    duration_count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (Index("ix_usage_hours_day", "day"),)
