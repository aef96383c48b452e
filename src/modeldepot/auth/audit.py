"""The audit log: who did which admin action, on what, when, and how it ended.

Written by the HTTP layer (``modeldepot.api.access``) after an admin action was answered,
refusals (401, 403) included, and by ``modeldepot keys``; read by admins through
``GET /api/v1/audit``. Rows are never updated; the newest ``KEEP_ENTRIES`` are kept (a
client that keeps getting refused cannot grow the log without bound); the log is paged and
sorted in SQL.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import Integer, String, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime, select_page, sort_order

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "refused", "failed"]
AUDIT_SORT_FIELDS = ("at", "actor", "action", "status")


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEntry(BaseModel):
    at: datetime = Field(description="When the action was answered (UTC)")
    actor: str = Field(
        description="The API key's name; 'anonymous' when keys are off, 'unauthenticated' "
        "for a request without a valid key, 'cli:<user>' for `modeldepot keys`"
    )
    role: str | None = Field(description="The actor's role, if known")
    client: str | None = Field(description="The client's address")
    action: str = Field(description="Method and route, e.g. 'PUT /api/v1/config/update'")
    target: str | None = Field(description="The model id or key name acted on, if any")
    status: int = Field(description="The HTTP status answered (0 for a CLI action)")
    outcome: Outcome = Field(
        description="ok (2xx), refused (401, 403, 429: nothing was done) or failed"
    )
    request_id: str | None = None


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return "ok"
    if status in (401, 403, 429):
        return "refused"
    return "failed"


KEEP_ENTRIES = 100_000
"""The newest entries kept; older ones are deleted (checked every ``PRUNE_EVERY`` writes)."""
PRUNE_EVERY = 1000


class AuditLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        keep: int = KEEP_ENTRIES,
        prune_every: int = PRUNE_EVERY,
    ) -> None:
        self._sessions = sessions
        self._keep = keep
        self._prune_every = prune_every
        self._writes_to_prune = 1  # prune at the first write, then every prune_every

    async def record(
        self,
        *,
        actor: str,
        role: str | None,
        client: str | None,
        action: str,
        target: str | None,
        status: int,
        request_id: str | None = None,
    ) -> None:
        """Append one entry. A database failure is logged, never raised: the action
        itself has already been answered."""
        row = AuditRow(
            at=datetime.now(UTC),
            actor=actor[:64],
            role=role,
            client=client[:64] if client else None,
            action=action[:200],
            target=target[:200] if target else None,
            status=status,
            outcome=outcome_of(status) if status else "ok",
            request_id=request_id,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                self._writes_to_prune -= 1
                if self._writes_to_prune == 0:
                    self._writes_to_prune = self._prune_every
                    await session.flush()
                    await session.execute(
                        delete(AuditRow).where(AuditRow.seq <= row.seq - self._keep)
                    )
        except SQLAlchemyError as exc:
            logger.error("Could not write the audit log entry for %s: %s", action, exc)

    async def page(
        self, *, sort: str, descending: bool, offset: int, limit: int
    ) -> tuple[list[AuditEntry], int]:
        """One page of entries in SQL, and how many there are in all."""
        column = getattr(AuditRow, sort if sort in AUDIT_SORT_FIELDS else "at")
        order = sort_order(column, descending=descending, tie=AuditRow.seq)
        async with self._sessions() as session:
            rows, total = await select_page(
                session, select(AuditRow), order_by=order, offset=offset, limit=limit
            )
        return [AuditEntry.model_validate(row, from_attributes=True) for row in rows], total
