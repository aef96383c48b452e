"""The database: one async SQLAlchemy engine, a session factory, and migrations at start-up.

SQLite (``sqlite+aiosqlite``) is the default, in the data directory; PostgreSQL
(``postgresql+asyncpg``) is the same schema for cluster mode. The schema is owned by the
Alembic migrations in ``modeldepot/migrations``; start-up upgrades to head.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, DateTime, MetaData, Select, TypeDecorator, event, func, select
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from modeldepot.errors import ConfigError, StorageError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL and foreign keys; PostgreSQL may be
    confined to one ``schema`` (created if missing).

    Raises:
        ConfigError: the URL is not an async SQLite or PostgreSQL URL.
    """
    parsed = make_url(url)
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ConfigError(
            "database_url must use sqlite+aiosqlite:// or postgresql+asyncpg://",
            details={"driver": parsed.drivername},
        )
    if parsed.drivername.startswith("sqlite") and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {}
    if schema and parsed.drivername.startswith("postgresql"):
        connect_args["server_settings"] = {"search_path": schema}
    engine = create_async_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest migration.

    Raises:
        StorageError: the database cannot be reached or migrated.
    """

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            schema = connection.exec_driver_sql("select current_schema()").scalar()
            if schema is None:  # search_path names a schema that does not exist yet
                path = connection.exec_driver_sql("show search_path").scalar_one()
                connection.exec_driver_sql(f'create schema if not exists "{path.split(",")[0]}"')
        command.upgrade(_alembic_config(connection), "head")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"Cannot open or migrate the database: {exc}") from exc


@asynccontextmanager
async def open_database(
    url: str, *, schema: str | None = None
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Create the engine, migrate, yield a session factory, dispose on exit."""
    engine = create_engine(url, schema=schema)
    try:
        await migrate(engine)
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


Sortable = ColumnElement[Any] | InstrumentedAttribute[Any]


def sort_order(column: Sortable, *, descending: bool, tie: Sortable) -> list[ColumnElement[Any]]:
    """The one ordering convention of every paged list: ``column`` with nulls last in
    ascending order and first in descending order, then ``tie`` ascending."""
    primary = column.desc().nulls_first() if descending else column.asc().nulls_last()
    return [primary, tie.asc()]


async def select_page(
    session: AsyncSession,
    statement: Select[Any],
    *,
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
) -> tuple[list[Any], int]:
    """One page of ``statement``'s rows in SQL (its own ORDER BY replaced by ``order_by``,
    then OFFSET and LIMIT) and the count of all its rows.

    A statement selecting one thing (``select(Row)`` or one column) gives those things,
    any other the rows.
    """
    unordered = statement.order_by(None)
    total = await session.scalar(select(func.count()).select_from(unordered.subquery()))
    result = await session.execute(unordered.order_by(*order_by).offset(offset).limit(limit))
    rows = result.scalars().all() if len(statement.column_descriptions) == 1 else result.all()
    return list(rows), int(total or 0)
