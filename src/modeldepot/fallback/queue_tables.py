"""The wait queue's table, and an entry as the API shows it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime
from modeldepot.downloads.schemas import Priority
from modeldepot.fallback.queue_schemas import (
    CallbackState,
    CallbackStatus,
    GenerationRequest,
    QueueEntry,
    QueueStatus,
)


class QueueRow(Base):
    __tablename__ = "wait_queue"

    queue_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    model_id: Mapped[str] = mapped_column(String(128))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    wait_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    claim_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    suggestions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The optional callback (modeldepot.fallback.callbacks): where, the shared secret it
    # is signed with, and the state of the pending notification.
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_secret: Mapped[str | None] = mapped_column(String(256), nullable=True)
    callback_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_next_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    callback_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_wait_queue_status_model", "status", "model_id"),
        Index("ix_wait_queue_callback_due", "callback_status", "callback_next_at"),
    )


def to_entry(row: QueueRow, position: int | None, eta: float | None, now: datetime) -> QueueEntry:
    """The entry as the API shows it; ``position`` and ``eta`` (seconds) of a WAITING
    entry come from the model's queue and download."""
    status = QueueStatus(row.status)
    wait: float | None = None
    start: datetime | None = None
    if status is QueueStatus.READY:
        wait, start = 0.0, row.ready_at
    elif status is QueueStatus.WAITING and eta is not None:
        wait, start = round(eta / 60, 2), now + timedelta(seconds=eta)
    return QueueEntry(
        queue_id=row.queue_id,
        model_id=row.model_id,
        status=status,
        priority=Priority(row.priority),
        request=GenerationRequest.model_validate(row.request),
        position=position if status is QueueStatus.WAITING else None,
        estimated_wait_time_minutes=wait,
        estimated_start_time=start,
        created_at=row.created_at,
        wait_until=row.wait_until,
        ready_at=row.ready_at,
        claim_until=row.claim_until,
        ended_at=row.ended_at,
        reason=row.reason,
        suggestions=row.suggestions,
        callback=None
        if row.callback_url is None
        else CallbackState(
            url=shown_url(row.callback_url),
            status=None if row.callback_status is None else CallbackStatus(row.callback_status),
            attempts=row.callback_attempts or 0,
            next_attempt_at=row.callback_next_at,
            last_error=row.callback_error,
            delivered_at=row.callback_delivered_at,
        ),
    )


def shown_url(url: str) -> str:
    """A callback URL without credentials or query, for the API and the logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
