"""Database engine, session factory and the declarative base."""

import functools
import math
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, Index, Insert, MetaData, String, Table, Uuid, event, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names let Alembic autogenerate drop and alter them reliably.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class CreatedAtMixin:
    # Set in Python, not with now(): now() is constant within a transaction, and the
    # order of messages stored in one transaction must still be kept.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


OWNER_MAX_CHARS = 100


class OwnedMixin:
    """Rows of an API key's owner (app.core.security.owner_of). Every query of such a table
    filters on owner: another owner's row is as absent as one that never existed."""

    owner: Mapped[str] = mapped_column(String(OWNER_MAX_CHARS))


# The connections each process keeps open, and the most it opens: no overflow, as
# SQLAlchemy closes an overflow connection when it is returned, so a load beyond the pool
# would open and close a connection per request (TLS, authentication) just when the process
# is busiest. A request past the 15 waits for a free connection instead.
POOL_SIZE = 15
# A worker's run holds a connection only while it writes, never while it waits on the model:
# this many runs share one, the rest of their time being the model's. At most half of
# PostgreSQL's default max_connections (100), so that an api and a worker fit beside it.
RUNS_PER_CONNECTION = 10
WORKER_POOL_MAX = 50


def worker_pool_size(concurrency: int) -> int:
    """The pool of a worker running `concurrency` runs at once (an api process's at least)."""
    wanted = math.ceil(concurrency / RUNS_PER_CONNECTION)
    return min(WORKER_POOL_MAX, max(POOL_SIZE, wanted))


def create_engine(database_url: str, *, timeout: float, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """Create the async engine; connections the server has closed are replaced at checkout."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": timeout},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no connection the server has closed (a restart, pg_terminate_backend).

    Not pool_pre_ping, three round trips with asyncpg before every checkout: asyncpg reads
    each idle connection, so it knows at once when the server closes one. A connection cut
    otherwise (a network fault) fails its next query, and SQLAlchemy then replaces every
    older one. DisconnectionError is the pool's documented signal to open a new connection.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


async def insert_new[R: DeclarativeBase](session: AsyncSession, row: R) -> R:
    """Insert a new row with one Core INSERT ... RETURNING; the caller commits, as after
    session.add. The row comes back with every column as stored, transient.

    For rows written once and not changed in the same session: the ORM's unit of work has
    nothing to track for them. A column left None gets its default, Python's or the server's,
    as on the ORM path (a test holds them alike), so one with a default cannot be NULL here.
    """
    table = cast(Table, row.__table__)
    stored = await _inserted(session, _insert_into(table), row)
    assert stored is not None
    return stored


async def insert_once[R: DeclarativeBase](session: AsyncSession, row: R, unique: Index) -> R | None:
    """insert_new, unless the table holds a row with the same values in the unique index:
    then nothing is written and None comes back. ON CONFLICT DO NOTHING on that index alone:
    racing inserts of one row store it once, neither fails, and any other violation still
    raises."""
    return await _inserted(session, _insert_unless(cast(Table, row.__table__), unique), row)


async def _inserted[R: DeclarativeBase](
    session: AsyncSession, statement: Insert, row: R
) -> R | None:
    table = cast(Table, row.__table__)
    # Parameters of a statement built once per table: values() would put them into the
    # statement, which SQLAlchemy then walks for its cache key on every call.
    values = {c.key: value for c in table.c if (value := getattr(row, c.key)) is not None}
    stored = (await session.execute(statement, values)).one_or_none()
    if stored is None:
        return None
    for column in table.c:
        setattr(row, column.key, stored._mapping[column])
    return row


@functools.cache
def _insert_into(table: Table) -> Insert:
    return insert(table).returning(*table.c)


@functools.cache
def _insert_unless(table: Table, unique: Index) -> Insert:
    where = unique.dialect_options["postgresql"]["where"]
    statement = postgresql.insert(table).on_conflict_do_nothing(
        index_elements=list(unique.expressions), index_where=where
    )
    return statement.returning(*table.c)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement commits on its own (commit() does nothing): for writes
    that are one statement, one round trip where BEGIN and COMMIT around it make three. The
    engine's pool is shared."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
