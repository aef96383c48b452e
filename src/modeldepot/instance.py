"""Which process owns this data: the lock files and the database lease (issue 8).

One modeldepot process at a time uses a data directory, a models directory and a database:
two would resume the same download into the same partial files and one's clean-up would
delete the other's bytes (RELIABILITY.md 41). A second process refuses to start with
``AlreadyRunning``, naming the holder (pid, host, since when, its directories). Two
mechanisms guard it, because each alone can be fooled::

    <data_dir>/modeldepot.lock             lock file of the data directory
    <models_dir>/.locks/modeldepot.lock    lock file of the models directory (``.locks/`` is
                                           huggingface_hub's own lock folder, the one
                                           folder ``scan_cache_dir`` skips)
    table instance_leases                  one row, name 'single-instance': the holder,
                                           renewed_at, expires_at

- **Lock files**: ``flock`` on a descriptor held open for the life of the process (the
  kernel drops it when the process dies, even by kill -9). The file holds the holder as
  JSON and its mtime is a heartbeat, touched at every renewal. flock lies on some network
  file systems (granted to everyone, or per host only), so a granted flock is not enough:
  if the file names another holder whose heartbeat is fresh, and that holder runs on
  another host or is a live process on this one, the start is refused all the same.
- **The database lease** covers what no file can: two processes on different machines or
  different directories sharing one PostgreSQL database (or one SQLite file). It is taken
  with conditional statements only (insert if absent, replace if the holder is gone), so
  two starters cannot both win on either backend, renewed every ``ttl / 3`` and deleted
  on a clean exit.

A holder that did not release (kill -9, power cut) is *abandoned* once its heartbeat is
older than its ttl, or at once if it ran on this host and its process is gone: a restart
right after a kill -9 starts immediately. Heartbeats are compared with this host's clock,
so hosts sharing a database need clocks closer together than the ttl.

This is "the single-instance lease". Cluster mode (a later issue) is its extension, not a
replacement: replicas will each hold a row of their own (name = their instance id) and
coordinate downloads through the database, and the ``single-instance`` row becomes the
lease of whichever replica runs the singleton work (start-up recovery, sweeps). The lock
files stay per process and per directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Integer, String, Text, delete, insert, update
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modeldepot.blocking import finish
from modeldepot.db import Base, UtcDateTime
from modeldepot.errors import AlreadyRunning, ConfigError, StorageError
from modeldepot.settings import Settings

logger = logging.getLogger(__name__)

LEASE_NAME = "single-instance"
LOCK_FILE_NAME = "modeldepot.lock"
MODELS_LOCK_FOLDER = ".locks"
DEFAULT_TTL_SECONDS = 30.0
TTL_RANGE_SECONDS = (1.0, 3600.0)
_MAX_LOCK_CONTENT = 64 * 1024
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


# --- who holds it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """A process that owns (or claims) the data: what a refusal tells the user."""

    instance_id: str
    pid: int
    hostname: str
    started_at: datetime
    data_dir: str
    models_dir: str
    database: str = ""
    bind: str | None = None

    @classmethod
    def starting(cls, settings: Settings, *, models_dir: Path, bind: str | None = None) -> Holder:
        """This process, about to use ``settings``' data and ``models_dir``."""
        return cls(
            instance_id=secrets.token_hex(8),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            started_at=datetime.now(UTC),
            data_dir=str(settings.data_dir),
            models_dir=str(models_dir),
            database=describe_database(settings),
            bind=bind,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat()}

    @classmethod
    def from_json(cls, value: Any) -> Holder | None:
        """The holder a lock file names; None if it names none (empty, torn or foreign)."""
        try:
            return cls(
                instance_id=str(value["instance_id"]),
                pid=int(value["pid"]),
                hostname=str(value["hostname"]),
                started_at=datetime.fromisoformat(value["started_at"]).astimezone(UTC),
                data_dir=str(value["data_dir"]),
                models_dir=str(value["models_dir"]),
                database=str(value.get("database", "")),
                bind=None if value.get("bind") is None else str(value["bind"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def describe(self) -> str:
        """``pid 42 on host 'box' since 2026-11-29 06:50:01 UTC (data dir ..., ...)``."""
        where = [f"data dir {self.data_dir}", f"models dir {self.models_dir}"]
        if self.database:
            where.append(f"database {self.database}")
        if self.bind:
            where.append(f"serving {self.bind}")
        since = self.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid} on host '{self.hostname}' since {since} ({', '.join(where)})"

    @property
    def is_local(self) -> bool:
        return self.hostname == socket.gethostname()


def describe_database(settings: Settings) -> str:
    """The database URL without its password, and the schema if one is set."""
    try:
        url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except ArgumentError:  # the database module reports it; never echo a password here
        return "(a database URL that does not parse)"
    return f"{url} schema {settings.database_schema}" if settings.database_schema else url


def is_abandoned(holder: Holder, *, fresh_until: datetime, now: datetime) -> bool:
    """Whether a holder that did not release may be replaced: its heartbeat has run out,
    or it ran on this host and its process is gone (a kill -9 must not delay a restart)."""
    if now >= fresh_until:
        return True
    return holder.is_local and not process_exists(holder.pid)


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process on this host."""
    if pid <= 0:  # 0 and negatives would address process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # a killed child its parent has not reaped yet is dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def refusal(what: str, *, holder: Holder | None, note: str = "") -> AlreadyRunning:
    """The error a second process stops with: what is held, and by whom."""
    by = f"by {holder.describe()}" if holder else "by a process that has not said who it is"
    message = (
        f"Another modeldepot process already uses {what}: held {by}{note}. Stop it first: "
        "one process per data directory, models directory and database."
    )
    details: dict[str, Any] = {"resource": what}
    if holder is not None:
        details["holder"] = holder.to_json()
    return AlreadyRunning(message, details=details)


def _check_ttl(ttl: float) -> float:
    low, high = TTL_RANGE_SECONDS
    if not low <= ttl <= high:
        raise ConfigError(f"The instance lease ttl must be {low:g} to {high:g} s, not {ttl}")
    return ttl


# --- lock files -----------------------------------------------------------------------------


class LockFile:
    """One held lock file: an open descriptor with ``flock``, our holder JSON inside, and
    the mtime as heartbeat. Never replaced while held (a new inode would detach the lock).

    The descriptor held for the life of the process is read-only (flock needs no more):
    a file held open for writing would keep the models disk from being remounted
    read-only. The record is written, and cleared, through short-lived descriptors."""

    def __init__(self, path: Path, fd: int, *, holder: Holder, writable: bool) -> None:
        self.path = path
        self.writable = writable
        self._fd: int | None = fd
        self._holder = holder

    @classmethod
    def acquire(cls, path: Path, *, holder: Holder, ttl: float, what: str) -> LockFile:
        """Take ``path`` for ``holder``.

        Raises:
            AlreadyRunning: another live process holds it (by flock or by a fresh record).
            OSError: the file cannot be opened or written (the caller translates it).
        """
        fd, writable = _open_lock_file(path)
        try:
            if not _try_flock(fd, path):
                raise refusal(what, holder=_read_record(fd)[0])
            other, other_ttl = _read_record(fd)
            if other is not None and other.instance_id != holder.instance_id:
                heartbeat = datetime.fromtimestamp(os.fstat(fd).st_mtime, UTC)
                fresh_until = heartbeat + timedelta(seconds=other_ttl or ttl)
                if not is_abandoned(other, fresh_until=fresh_until, now=datetime.now(UTC)):
                    note = f" (its file system granted a lock it holds: {path})"
                    raise refusal(what, holder=other, note=note)
            if writable:
                _write_record(path, holder, ttl=ttl)
            else:
                logger.warning("%s is not ours to write: locked, but it does not name us", path)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, holder=holder, writable=writable)

    def touch(self) -> bool:
        """Renew the heartbeat; False if the file now names another holder (flock lied and
        someone else wrote it since)."""
        if self._fd is None:
            return False
        if not self.writable:
            return True
        try:
            os.utime(self._fd)
        except OSError as exc:  # e.g. the disk was remounted read-only: nothing to renew
            logger.debug("Cannot renew the heartbeat of %s: %s", self.path, exc.strerror)
        current, _ = _read_record(self._fd)
        return current is not None and current.instance_id == self._holder.instance_id

    def release(self) -> None:
        """Empty the file if it is still ours (the next starter on this host must not take
        our record, with our pid alive, for a live holder), then drop the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            current, _ = _read_record(fd)
            if self.writable and current and current.instance_id == self._holder.instance_id:
                os.truncate(self.path, 0)
        except OSError as exc:
            logger.warning("Could not clear the lock file %s: %s", self.path, exc)
        finally:
            os.close(fd)


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """A descriptor on ``path`` and whether we may write it. A lock file we may not write
    (a read-only mount, another user's file in a shared cache) is opened read-only: flock
    works on it all the same.

    Raises:
        OSError: it cannot be opened at all (e.g. absent from a read-only directory).
    """
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    writable = True
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644))
    except OSError as exc:
        if exc.errno not in _READ_ONLY_ERRNOS:
            raise
        if not path.exists():
            raise
        writable = False
    return os.open(path, os.O_RDONLY | flags), writable


def _try_flock(fd: int, path: Path) -> bool:
    """flock, without waiting. True when granted, or when the file system has no locks at
    all (ENOLCK, EOPNOTSUPP: then the record and the database lease decide alone)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        logger.warning("%s: the file system offers no locks (%s)", path, exc.strerror)
    return True


def _read_record(fd: int) -> tuple[Holder | None, float | None]:
    """The holder a lock file names and the ttl it announced."""
    try:
        value = json.loads(os.pread(fd, _MAX_LOCK_CONTENT, 0))
    except (OSError, ValueError):
        return None, None
    if not isinstance(value, dict):
        return None, None
    ttl = value.get("ttl_seconds")
    low, high = TTL_RANGE_SECONDS
    usable_ttl = float(ttl) if isinstance(ttl, int | float) and low <= ttl <= high else None
    return Holder.from_json(value), usable_ttl


def _write_record(path: Path, holder: Holder, *, ttl: float) -> None:
    """Our record, in place in the locked file (same inode), made durable (a network file
    system shows it to other hosts only once flushed)."""
    data = json.dumps({**holder.to_json(), "ttl_seconds": ttl}, indent=1).encode()
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class DirectoryLocks:
    """The lock files of the data directory and the models directory, held together."""

    files: list[LockFile] = field(default_factory=list)

    def touch(self) -> bool:
        """Renew every heartbeat; False if one of them names another holder now."""
        return all([lock.touch() for lock in self.files])

    def release(self) -> None:
        while self.files:
            self.files.pop().release()

    def __enter__(self) -> DirectoryLocks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_directories(
    holder: Holder, *, data_dir: Path, models_dir: Path, ttl: float = DEFAULT_TTL_SECONDS
) -> DirectoryLocks:
    """Take the lock files of both directories (which must exist) for ``holder``; release
    them with ``release()`` or by using the result as a context manager.

    A directory we cannot write to at all (a read-only mount) is not locked, with a
    warning: nothing can be written there by us or by a second process, and status still
    works.

    Raises:
        AlreadyRunning: another process holds one of them.
        ConfigError: a lock file cannot be used (e.g. it is a symlink or a directory).
    """
    _check_ttl(ttl)
    locks = DirectoryLocks()
    wanted = [
        (data_dir / LOCK_FILE_NAME, f"the data directory {data_dir}"),
        (models_dir / MODELS_LOCK_FOLDER / LOCK_FILE_NAME, f"the models directory {models_dir}"),
    ]
    try:
        for path, what in wanted:
            if (lock := _lock(holder, path, what=what, ttl=ttl)) is not None:
                locks.files.append(lock)
    except BaseException:
        locks.release()
        raise
    return locks


def _lock(holder: Holder, path: Path, *, what: str, ttl: float) -> LockFile | None:
    """Take one directory's lock file; None (with a warning) where we cannot write at all:
    nothing of ours can be written there either, by this process or by a second one.

    Raises:
        AlreadyRunning: another process holds it.
        ConfigError: the lock file cannot be used for another reason.
    """
    try:
        path.parent.mkdir(exist_ok=True)
        return LockFile.acquire(path, holder=holder, ttl=ttl, what=what)
    except OSError as exc:
        if exc.errno in _READ_ONLY_ERRNOS:
            logger.warning("%s is not locked: %s: %s", what, path, exc.strerror)
            return None
        raise ConfigError(
            f"Cannot lock {what}: {path}: {exc.strerror}", details={"path": str(path)}
        ) from exc


# --- the database lease ---------------------------------------------------------------------


class InstanceLeaseRow(Base):
    """A lease on this database: today only ``single-instance`` (see the module doc)."""

    __tablename__ = "instance_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    pid: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    data_dir: Mapped[str] = mapped_column(Text)
    models_dir: Mapped[str] = mapped_column(Text)
    bind: Mapped[str | None] = mapped_column(String(300), nullable=True)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def holder(self) -> Holder:
        return Holder(
            instance_id=self.instance_id,
            pid=self.pid,
            hostname=self.hostname,
            started_at=self.started_at,
            data_dir=self.data_dir,
            models_dir=self.models_dir,
            bind=self.bind,
        )


class InstanceLease:
    """The single-instance lease while this process holds it.

    ``lost`` is set (once, for good) when the lease stops being provably ours: another
    instance holds it, a lock file names another holder, or renewals failed until it
    expired. The composition root decides what to do about it.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        holder: Holder,
        ttl: float,
        expires_at: datetime,
    ) -> None:
        self.holder = holder
        self.ttl = ttl
        self.expires_at = expires_at
        self.lost = asyncio.Event()
        self._sessions = sessions

    async def renew(self) -> bool:
        """Extend the lease by ``ttl``; False (and ``lost`` set) if it is not ours any more.

        A database error is logged and counts as a missed renewal.
        """
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=self.ttl)
        statement = (
            update(InstanceLeaseRow)
            .where(_ours(self.holder))
            .values(renewed_at=now, expires_at=expires_at)
        )
        try:
            async with self._sessions.begin() as session:
                renewed = _rowcount(await session.execute(statement)) == 1
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("Could not renew the instance lease: %s", exc)
            if datetime.now(UTC) >= self.expires_at:
                self._lose("renewals failed until it expired")
            return False
        if not renewed:
            self._lose("another process holds it now")
            return False
        self.expires_at = expires_at
        return True

    async def release(self) -> None:
        """Give the lease up (a database error only delays the next start by the ttl)."""
        try:
            async with self._sessions.begin() as session:
                await session.execute(delete(InstanceLeaseRow).where(_ours(self.holder)))
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("Could not release the instance lease (it expires by itself): %s", exc)

    async def keep(self, locks: DirectoryLocks | None) -> None:
        """Renew the lease and the heartbeats of ``locks`` every ``ttl / 3`` until
        cancelled. Once lost, renewals go on (they fail harmlessly while another process
        holds it); ``lost`` stays set."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            if locks is not None:
                try:
                    ours = await anyio.to_thread.run_sync(locks.touch)
                except OSError as exc:
                    logger.warning("Could not renew the lock files' heartbeat: %s", exc)
                    ours = True
                if not ours:
                    self._lose("a lock file names another process")
            await finish(self.renew())

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            logger.error("The single-instance lease is lost: %s", why)
            self.lost.set()


def _ours(holder: Holder) -> Any:
    return (InstanceLeaseRow.name == LEASE_NAME) & (
        InstanceLeaseRow.instance_id == holder.instance_id
    )


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


async def take_lease(
    sessions: async_sessionmaker[AsyncSession], *, holder: Holder, ttl: float
) -> InstanceLease:
    """Take the single-instance lease of this database for ``holder``.

    Each step is one conditional statement (insert if there is no row; replace the row only
    if it still names the abandoned holder that was read), so concurrent starters cannot
    both win; a starter that loses a race looks again.

    Raises:
        AlreadyRunning: a live process holds it.
        StorageError: the database cannot be reached.
    """
    _check_ttl(ttl)
    try:
        for _ in range(4):
            now = datetime.now(UTC)
            async with sessions.begin() as session:
                row = await session.get(InstanceLeaseRow, LEASE_NAME)
                current = None if row is None else (row.holder(), row.expires_at)
            if current is None:
                won = await _insert_lease(sessions, holder=holder, now=now, ttl=ttl)
            else:
                won = await _replace_lease(sessions, holder=holder, current=current, ttl=ttl)
            if won:
                return InstanceLease(
                    sessions, holder=holder, ttl=ttl, expires_at=now + timedelta(seconds=ttl)
                )
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"Cannot take the instance lease in the database: {exc}") from exc
    raise refusal("this database", holder=None, note=" (it keeps changing hands)")


def _lease_values(holder: Holder, *, now: datetime, ttl: float) -> dict[str, Any]:
    return {
        "instance_id": holder.instance_id,
        "pid": holder.pid,
        "hostname": holder.hostname,
        "started_at": holder.started_at,
        "data_dir": holder.data_dir,
        "models_dir": holder.models_dir,
        "bind": holder.bind,
        "renewed_at": now,
        "expires_at": now + timedelta(seconds=ttl),
    }


async def _insert_lease(
    sessions: async_sessionmaker[AsyncSession], *, holder: Holder, now: datetime, ttl: float
) -> bool:
    values = _lease_values(holder, now=now, ttl=ttl)
    try:
        async with sessions.begin() as session:
            await session.execute(insert(InstanceLeaseRow).values(name=LEASE_NAME, **values))
    except DatabaseIntegrityError:  # another starter inserted first: look again
        return False
    return True


async def _replace_lease(
    sessions: async_sessionmaker[AsyncSession],
    *,
    holder: Holder,
    current: tuple[Holder, datetime],
    ttl: float,
) -> bool:
    """Replace an abandoned holder's row, only if it still is that holder's and (unless its
    process is known dead) still expired.

    Raises:
        AlreadyRunning: the holder is alive.
    """
    other, expires_at = current
    now = datetime.now(UTC)
    if not is_abandoned(other, fresh_until=expires_at, now=now):
        raise refusal("this database", holder=other)
    condition = _ours(other)
    if now < expires_at:  # taken over because its process is gone: it cannot renew
        logger.info("Taking over the instance lease of %s: its process is gone", other.describe())
    else:
        condition = condition & (InstanceLeaseRow.expires_at <= now)
    statement = (
        update(InstanceLeaseRow).where(condition).values(_lease_values(holder, now=now, ttl=ttl))
    )
    async with sessions.begin() as session:
        return _rowcount(await session.execute(statement)) == 1


@contextlib.asynccontextmanager
async def hold_lease(
    sessions: async_sessionmaker[AsyncSession],
    *,
    holder: Holder,
    locks: DirectoryLocks | None = None,
    ttl: float = DEFAULT_TTL_SECONDS,
) -> AsyncIterator[InstanceLease]:
    """Take the lease, keep it (and the heartbeats of ``locks``) renewed every ``ttl / 3``
    in a background task, and release it on exit.

    Raises:
        AlreadyRunning: a live process holds the lease.
        StorageError: the database cannot be reached.
    """
    lease = await take_lease(sessions, holder=holder, ttl=ttl)
    keeper = asyncio.create_task(lease.keep(locks), name="instance-lease")
    try:
        yield lease
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await finish(lease.release())
