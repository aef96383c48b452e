"""API keys: created once, stored hashed, found by a public id, compared in constant time.

A key reads ``mdk_<id>_<secret>``: ``id`` (12 hex digits) names the row, ``secret``
(32 random bytes, URL-safe base64) is known only to its holder; the database keeps the
SHA-256 of the secret. A plain hash is the right tool for a random 256-bit secret (a slow
password hash protects guessable passwords, which a key is not), and it keeps every
request's check to one indexed read and one ``hmac.compare_digest``. An unknown id is
compared against a dummy digest all the same, so timing says nothing about which ids exist.

``last_used_at`` is written at most once a minute per key: a busy client does not turn
every request into a database write.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.db import Base, UtcDateTime, select_page, sort_order
from modeldepot.errors import InvalidInput, KeyExists, KeyNotFound

KEY_PREFIX = "mdk_"
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_KEY_RE = re.compile(r"^mdk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_KEY_NAME_RE = re.compile(KEY_NAME_PATTERN)
_DUMMY_DIGEST = hashlib.sha256(b"modeldepot: no such key").hexdigest()
LAST_USED_EVERY = timedelta(minutes=1)
KEY_SORT_FIELDS = ("name", "role", "created_at", "last_used_at")


class Role(StrEnum):
    """What a key may do; each role includes the ones before it.

    - ``read``: every GET and the WebSocket.
    - ``user``: also downloads (start, pause, resume, cancel, priority), health checks,
      queue entries and usage reports.
    - ``admin``: also configuration, repair, cleanup, update, rollback, API keys and the
      audit log.
    """

    read = "read"
    user = "user"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.read: 0, Role.user: 1, Role.admin: 2}


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


@dataclass(frozen=True)
class KeyInfo:
    """A key as anyone may see it: never its secret."""

    key_id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(
            key_id=row.key_id,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )


def validate_key_name(name: str) -> str:
    """Raises InvalidInput unless ``name`` is 1-64 letters, digits, '.', '_' or '-'."""
    if not _KEY_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "A key name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            details={"errors": [{"field": "name", "message": "invalid key name"}]},
        )
    return name


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class KeyStore:
    """The ``api_keys`` table. Safe to use from another process while the service runs
    (``modeldepot keys`` writes here directly): every call is one short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._last_written: dict[str, datetime] = {}

    async def create(self, name: str, role: Role) -> tuple[KeyInfo, str]:
        """A new key: its public record and the key itself (shown once, never stored).

        Raises:
            InvalidInput: a bad name. KeyExists: a key of that name exists.
        """
        validate_key_name(name)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(
            key_id=key_id,
            name=name,
            role=role.value,
            secret_sha256=_digest(secret),
            created_at=datetime.now(UTC),
            last_used_at=None,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise KeyExists(
                f"A key named '{name}' exists; revoke it first or choose another name",
                details={"name": name},
            ) from exc
        return KeyInfo.of(row), f"{KEY_PREFIX}{key_id}_{secret}"

    async def all(self) -> list[KeyInfo]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name))).all()
        return [KeyInfo.of(row) for row in rows]

    async def revoke(self, name: str) -> KeyInfo:
        """Delete the key named ``name``: it stops working at once.

        Raises:
            KeyNotFound: no key has that name.
        """
        async with self._sessions.begin() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise KeyNotFound(f"No API key is named '{name}'", details={"name": name})
            info = KeyInfo.of(row)
            await session.execute(delete(ApiKeyRow).where(ApiKeyRow.key_id == row.key_id))
        self._last_written.pop(info.key_id, None)
        return info

    async def authenticate(self, key: str) -> KeyInfo | None:
        """The key's record if ``key`` is a live key, else None (constant-time compare)."""
        match = _KEY_RE.fullmatch(key)
        key_id, secret = match.groups() if match else ("", "")
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id) if key_id else None
        expected = row.secret_sha256 if row is not None else _DUMMY_DIGEST
        valid = hmac.compare_digest(_digest(secret), expected)
        if row is None or not valid:
            return None
        await self._touch(row)
        return KeyInfo.of(row)

    async def is_live(self, key_id: str) -> bool:
        """Whether the key with this public id still exists (not revoked)."""
        async with self._sessions() as session:
            return await session.get(ApiKeyRow, key_id) is not None

    async def _touch(self, row: ApiKeyRow) -> None:
        now = datetime.now(UTC)
        last = self._last_written.get(row.key_id) or row.last_used_at
        if last is not None and now - last < LAST_USED_EVERY:
            return
        self._last_written[row.key_id] = now
        async with self._sessions.begin() as session:
            await session.execute(
                update(ApiKeyRow).where(ApiKeyRow.key_id == row.key_id).values(last_used_at=now)
            )
        row.last_used_at = now

    async def page(
        self, *, sort: str, descending: bool, offset: int, limit: int
    ) -> tuple[list[KeyInfo], int]:
        """One page of keys, sorted in SQL, and how many there are."""
        column = getattr(ApiKeyRow, sort if sort in KEY_SORT_FIELDS else "name")
        order = sort_order(column, descending=descending, tie=ApiKeyRow.name)
        async with self._sessions() as session:
            rows, total = await select_page(
                session, select(ApiKeyRow), order_by=order, offset=offset, limit=limit
            )
        return [KeyInfo.of(row) for row in rows], total
