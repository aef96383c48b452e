"""Callback URLs of wait-queue entries, notified with retries (issue 12).

An entry queued with ``callback: {"url": ..., "secret": ...}`` is POSTed to that URL when
it turns READY, EXPIRED or FAILED (:data:`NOTIFIED`; claims and cancels are the app's own
doing and are not sent).

* **The SSRF policy of downloads.** The URL is checked by ``SourcePolicy`` when the entry
  is queued (refused: 422 ``UNSAFE_SOURCE``, nothing is queued) and again before every
  attempt, because a name may resolve elsewhere later. Redirects are not followed.
* **What is sent.** The WebSocket message's envelope with the whole entry:
  ``{"type": "queue_entry_change", "timestamp": ..., "data": <the entry>}``, built when the
  attempt is made (so it says the entry's state then). Headers: ``X-Modeldepot-Event``,
  ``X-Modeldepot-Delivery`` (``<queue_id>:<status>``, the same for every attempt of one
  notification, so a receiver can drop a duplicate) and, with a secret,
  ``X-Modeldepot-Signature: sha256=<hex HMAC-SHA256 of the body>``.
* **Retries.** Any 2xx delivers. A connection error, a time-out (``TIMEOUT_SECONDS``),
  408, 425, 429 or 5xx is tried again after :attr:`Backoff.first` seconds, doubling up to
  :attr:`Backoff.cap` (a ``Retry-After`` is honoured up to the cap), up to
  :attr:`Backoff.attempts` attempts in all; any other answer (a redirect, a 4xx) fails at
  once: the receiver said no.
* **Nothing lost.** The notification's state is in the entry's row (``PENDING`` with the
  time of the next attempt, then ``DELIVERED``, ``FAILED`` with the last error, or
  ``DROPPED`` when the entry was claimed or cancelled before it went out), so a restart
  resumes pending deliveries. Delivery is at least once: a process killed after the
  receiver answered and before the row was updated sends it again.

Attempts due together run concurrently (at most :data:`CONCURRENCY`); a receiver that
hangs holds its own delivery for at most ``TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.downloads.sources import SourcePolicy
from modeldepot.errors import DepotError
from modeldepot.fallback.queue_schemas import CallbackStatus, QueueStatus
from modeldepot.fallback.queue_tables import QueueRow, shown_url, to_entry
from modeldepot.upstream import parse_retry_after

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
CONCURRENCY = 16
BATCH = 64
RETRYABLE = frozenset({408, 425, 429})
ERROR_LENGTH = 500


@dataclass
class Backoff:
    """When to try again: ``first`` seconds, doubling, at most ``cap``; ``attempts`` in all
    (about 3 minutes of trying with the defaults)."""

    first: float = 2.0
    cap: float = 60.0
    attempts: int = 8

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the attempt after number ``attempt`` (from 1)."""
        wanted = self.first * 2.0 ** (attempt - 1)
        if retry_after is not None:
            wanted = max(wanted, retry_after)
        return min(wanted, self.cap)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CallbackSender:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        policy: SourcePolicy,
        sessions: async_sessionmaker[AsyncSession],
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._policy = policy
        self._sessions = sessions
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._busy: set[str] = set()

    async def check(self, url: str) -> None:
        """Refuse a URL the downloads' source policy refuses.

        Raises:
            UnsafeSource: bad scheme, or an internal address.
            UpstreamUnavailable: the host name does not resolve.
        """
        await self._policy.check(url)

    def wake(self) -> None:
        """A notification became due (the loop looks at once)."""
        self._wake.set()

    async def run_loop(self) -> None:
        """Deliver what is due, then sleep until the next attempt is due or a new
        notification is queued, until cancelled."""
        while True:
            self._wake.clear()
            await self.deliver_due()
            wait = await self._seconds_to_next()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        """Make one attempt of every notification due now; return how many were tried."""
        now = self._clock()
        async with self._sessions() as session:
            due = list(
                await session.scalars(
                    select(QueueRow.queue_id)
                    .where(
                        QueueRow.callback_status == CallbackStatus.PENDING.value,
                        QueueRow.callback_next_at <= now,
                    )
                    .order_by(QueueRow.callback_next_at)
                    .limit(BATCH)
                )
            )
        # Marked busy before the first await: a concurrent call skips them.
        due = [queue_id for queue_id in due if queue_id not in self._busy]
        self._busy.update(due)
        await asyncio.gather(*(self._attempt(queue_id) for queue_id in due))
        return len(due)

    async def _seconds_to_next(self) -> float | None:
        async with self._sessions() as session:
            due = await session.scalar(
                select(func.min(QueueRow.callback_next_at)).where(
                    QueueRow.callback_status == CallbackStatus.PENDING.value
                )
            )
        if due is None:
            return None
        if due.tzinfo is None:  # SQLite's aggregate skips the column type
            due = due.replace(tzinfo=UTC)
        return max(0.0, (due - self._clock()).total_seconds())

    async def _attempt(self, queue_id: str) -> None:
        try:
            async with self._limit:
                async with self._sessions() as session:
                    row = await session.get(QueueRow, queue_id)
                if row is None or row.callback_status != CallbackStatus.PENDING.value:
                    return
                if row.status not in {s.value for s in _SENT}:
                    await self._settle(row, CallbackStatus.DROPPED, error=None)
                    return
                await self._send(row)
        finally:
            self._busy.discard(queue_id)

    async def _send(self, row: QueueRow) -> None:
        assert row.callback_url is not None
        attempt = row.callback_attempts + 1
        now = self._clock()
        body = json.dumps(
            {
                "type": "queue_entry_change",
                "timestamp": now.isoformat(),
                "data": to_entry(row, None, None, now).model_dump(mode="json"),
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Modeldepot-Event": "queue_entry_change",
            "X-Modeldepot-Delivery": f"{row.queue_id}:{row.status}",
            "X-Modeldepot-Attempt": str(attempt),
        }
        if row.callback_secret:
            headers["X-Modeldepot-Signature"] = signature(row.callback_secret, body)
        retry_after: float | None = None
        try:
            await self._policy.check(row.callback_url)
            response = await self._client.post(
                row.callback_url,
                content=body,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                follow_redirects=False,
            )
        except DepotError as exc:  # refused by the policy now, or does not resolve
            final, error = not exc.status >= 500, exc.message
        except httpx.HTTPError as exc:
            final, error = False, f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                await self._settle(row, CallbackStatus.DELIVERED, error=None, attempts=attempt)
                return
            code = response.status_code
            final = not (code in RETRYABLE or code >= 500)
            error = f"HTTP {code}" + (" (redirects are not followed)" if code < 400 else "")
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        if final or attempt >= self.backoff.attempts:
            logger.warning(
                "Callback of queue entry %s to %s failed after %d attempts: %s",
                row.queue_id,
                shown_url(row.callback_url),
                attempt,
                error,
            )
            await self._settle(row, CallbackStatus.FAILED, error=error, attempts=attempt)
            return
        delay = self.backoff.delay(attempt, retry_after)
        await self._update(
            row,
            callback_attempts=attempt,
            callback_error=error[:ERROR_LENGTH],
            callback_next_at=self._clock() + timedelta(seconds=delay),
        )

    async def _settle(
        self, row: QueueRow, status: CallbackStatus, *, error: str | None, attempts: int = 0
    ) -> None:
        await self._update(
            row,
            callback_status=status.value,
            callback_attempts=attempts or row.callback_attempts,
            callback_error=None if error is None else error[:ERROR_LENGTH],
            callback_next_at=None,
            callback_delivered_at=self._clock() if status is CallbackStatus.DELIVERED else None,
        )

    async def _update(self, row: QueueRow, **values: object) -> None:
        """Only while the notification is still the one attempted: a newer change of the
        entry (READY, then EXPIRED) starts a new one, which must not be overwritten."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(QueueRow)
                .where(
                    QueueRow.queue_id == row.queue_id,
                    QueueRow.callback_status == CallbackStatus.PENDING.value,
                    QueueRow.callback_attempts == row.callback_attempts,
                    QueueRow.callback_next_at == row.callback_next_at,
                )
                .values(**values)
            )


_SENT = frozenset({QueueStatus.READY, QueueStatus.EXPIRED, QueueStatus.FAILED})
