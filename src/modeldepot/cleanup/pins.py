"""Pins (an extension): models the user keeps whatever their usage, never cleanup
candidates and never evicted for the quota. Kept in the database, mirrored in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.catalog.service import CatalogService
from modeldepot.cleanup.schemas import Pin, PinList
from modeldepot.cleanup.tables import PinRow


class PinStore:
    def __init__(
        self,
        *,
        catalog: CatalogService,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._catalog = catalog
        self._sessions = sessions
        self._clock = clock
        self._pins: dict[str, Pin] = {}
        self._pinning = asyncio.Lock()  # a pin's row and the mirror change together

    async def load(self) -> None:
        async with self._sessions() as session:
            for row in (await session.scalars(select(PinRow))).all():
                self._pins[row.model_id] = Pin(
                    model_id=row.model_id, pinned_at=row.pinned_at, reason=row.reason
                )

    def pins(self) -> PinList:
        return PinList(pins=sorted(self._pins.values(), key=lambda p: p.model_id))

    def is_pinned(self, model_id: str) -> bool:
        return model_id in self._pins

    async def pin(self, model_id: str, reason: str | None) -> Pin:
        """Keep ``model_id`` whatever its usage (idempotent: a repeat updates the reason).

        Raises:
            ModelNotFound, InvalidModelId.
        """
        entry = self._catalog.get(model_id)
        async with self._pinning:
            previous = self._pins.get(entry.id)
            pin = Pin(
                model_id=entry.id,
                pinned_at=previous.pinned_at if previous else self._clock(),
                reason=reason,
            )
            async with self._sessions.begin() as session:
                await session.merge(
                    PinRow(model_id=pin.model_id, pinned_at=pin.pinned_at, reason=pin.reason)
                )
            self._pins[entry.id] = pin
        return pin

    async def unpin(self, model_id: str) -> bool:
        """Return whether the model was pinned.

        Raises:
            ModelNotFound, InvalidModelId.
        """
        entry = self._catalog.get(model_id)
        async with self._pinning:
            async with self._sessions.begin() as session:
                await session.execute(delete(PinRow).where(PinRow.model_id == entry.id))
            return self._pins.pop(entry.id, None) is not None
