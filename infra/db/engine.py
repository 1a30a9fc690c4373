"""Engines and connections: the async engines (SQLite or PostgreSQL), SQLite's WAL
checkpoint, the inline SQLite session of the unit of work, and the migrations."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import (
    Connection,
    Dialect,
    Engine,
    Result,
    ScalarResult,
    create_engine,
    make_url,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from infra.settings import Settings

SQLITE_CACHED_STATEMENTS = 8
"""Prepared statements each SQLite connection keeps (the driver's default is 128)."""


class JsonText(str):
    """A JSON document already serialized (a message's text): a JSON column stores it as is."""


def to_json_text(value: Any) -> str:
    """The JSON columns' serializer: pydantic-core's, several times faster than ``json``'s
    on the state documents every batch writes; ``JsonText`` is stored as it is."""
    if isinstance(value, JsonText):
        return str(value)
    return pydantic_core.to_json(value).decode()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(settings: Settings, *, read_only: bool = False) -> AsyncEngine:
    """The engine for ``settings.database_url``.

    On SQLite, writers start with ``BEGIN IMMEDIATE`` (the write lock up front, so two
    writers never deadlock upgrading a read lock); a ``read_only`` engine (the dashboard)
    starts deferred transactions that never take it, and WAL lets it read while a
    consumer writes.
    """
    url = settings.database_url
    if not is_sqlite(url):
        # No pre-ping: it costs a round trip per transaction, and a connection that died
        # fails the batch's transaction, which is retried on a fresh one.
        return create_async_engine(
            url, pool_size=5, max_overflow=5, pool_recycle=3600, json_serializer=to_json_text
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Few connections: writes take turns anyway, and each connection keeps its own page
    # cache (2 MiB), which fills up as the database grows. Few cached statements: the
    # bulk writes are multi-row statements whose text changes with the batch's size, so
    # the driver's default cache of 128 per connection kept up to 128 prepared statements
    # of thousands of parameters each, and RSS grew by tens of MiB over 100,000 inputs.
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30, "cached_statements": SQLITE_CACHED_STATEMENTS},
        pool_size=2,
        max_overflow=2,
        pool_timeout=300,
        json_serializer=to_json_text,
    )
    _configure_sqlite(engine.sync_engine, read_only=read_only, busy_timeout_ms=30000)
    return engine


WAL_AUTOCHECKPOINT_PAGES = 16_384
"""SQLite's own checkpoint, at 64 MiB of WAL (its default is 1,000 pages): a net for a
process that writes without ``Database.writing`` checkpointing after it."""
CHECKPOINT_INTERVAL_S = 1.0
"""A writing process checkpoints the WAL at most this often, after a write."""


def _passive_checkpoint(path: str) -> None:
    """Copy the WAL's committed pages into the database file, without taking SQLite's write
    lock (``PASSIVE``): writers of every process go on meanwhile."""
    with contextlib.closing(sqlite3.connect(path, timeout=0)) as connection:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


INLINE_BUSY_TIMEOUT_MS = 2000
"""How long an inline SQLite statement may wait for a lock, blocking the event loop. Every
writer of the service takes the writer lock first (``Database.writing``), so a wait here
means a foreign writer: the batch fails after this long and is retried, the loop goes on."""


def make_inline_engine(settings: Settings, *, read_only: bool) -> Engine:
    """A plain (synchronous) engine on the same SQLite file, for ``InlineSession``."""
    url = make_url(settings.database_url).set(drivername="sqlite+pysqlite")
    engine = create_engine(
        url,
        connect_args={
            "timeout": INLINE_BUSY_TIMEOUT_MS / 1000,
            "cached_statements": SQLITE_CACHED_STATEMENTS,
        },
        pool_size=2,
        max_overflow=2,
        pool_timeout=30,
        json_serializer=to_json_text,
    )
    _configure_sqlite(engine, read_only=read_only, busy_timeout_ms=INLINE_BUSY_TIMEOUT_MS)
    return engine


def _configure_sqlite(engine: Engine, *, read_only: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # SQLite checkpoints in the COMMIT that crossed the threshold, so under our
            # writer lock: the other process waited for it. The service checkpoints in a
            # thread instead (``Database._checkpoint``); this is only the safety net.
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class InlineSession:
    """The part of ``AsyncSession`` the unit of work uses, over a plain SQLite session
    run on the event loop's own thread.

    Why: a SQLite statement of a batch takes tens of microseconds, and the aiosqlite
    driver sends each one (and each fetch) to a thread and back; under load those hops,
    not SQLite, were most of a batch's database time on the kiosk path (kiosk p50 at
    200/s halved without them: ``tools/latency_probe.py 1000 200 20 authority,relay``).
    Inline, a statement blocks the loop only as long as SQLite works; a wait for a lock
    is bounded by ``INLINE_BUSY_TIMEOUT_MS`` and taken in a thread first
    (``Database.writing``). PostgreSQL keeps the asyncio driver: its time is the network.
    """

    def __init__(self, session: Session) -> None:
        self.sync_session = session
        self.bind = session.get_bind()

    def execute_many(self, statement: Any, rows: list[dict[str, Any]]) -> int:
        """``statement`` once per row through the driver's ``executemany``: rows changed.

        Why: for each row SQLAlchemy builds the parameters in Python (the compiled
        parameters, then every value's type processor), which cost more than SQLite's
        own work on a batch's thousands of rows. Here the statement is compiled once per
        shape and each value goes through its type's processor alone.
        """
        if not rows:
            return 0
        sql, compiled = _compiled_for_executemany(statement, tuple(rows[0]), self.bind.dialect)
        stamps: dict[int, str] = {}

        def stamp(value: Any) -> Any:
            """A time as the driver's own adapter writes it (``isoformat(" ")``), once per
            time object: a unit of work's rows share one (``UnitOfWork.now``). Anything
            else (``None``, text) goes to the driver as it is, as before."""
            if not isinstance(value, datetime):
                return value
            text = stamps.get(id(value))
            if text is None:
                text = stamps[id(value)] = value.isoformat(" ")
            return text

        binds = [
            (name, stamp if process is _TIME else process, fixed)
            for name, process, fixed in compiled
        ]
        # Column by column, then zipped into rows: a loop per column costs a fraction of
        # a generator per row deciding, for each value, what to do with it.
        columns = [
            repeat(fixed, len(rows))
            if name is None
            else [row[name] for row in rows]
            if process is None
            else [process(row[name]) for row in rows]
            for name, process, fixed in binds
        ]
        params = list(zip(*columns, strict=True)) if columns else [()] * len(rows)
        driver = self.sync_session.connection().connection.driver_connection
        dbapi = self.bind.dialect.loaded_dbapi
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, params)
            return int(cursor.rowcount)
        except dbapi.Error as error:
            # As SQLAlchemy would raise it (a lock timeout, a duplicate id): the consumer
            # loop retries a batch on ``DBAPIError``; a bare driver error would stop it.
            raise DBAPIError.instance(sql, params, error, dbapi.Error) from error
        finally:
            cursor.close()

    async def execute(self, statement: Any, params: Any = None) -> Result[Any]:
        return self.sync_session.execute(statement, params)

    async def scalars(self, statement: Any, params: Any = None) -> ScalarResult[Any]:
        return self.sync_session.scalars(statement, params)

    async def scalar(self, statement: Any, params: Any = None) -> Any:
        return self.sync_session.scalar(statement, params)

    async def rollback(self) -> None:
        self.sync_session.rollback()

    def add_all(self, instances: Iterable[object]) -> None:
        self.sync_session.add_all(instances)


AnySession = AsyncSession | InlineSession


@lru_cache(maxsize=64)
def _compiled_for_executemany(
    statement: Any, keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, list[tuple[str | None, Callable[[Any], Any] | None, Any]]]:
    """The SQL of ``statement`` for rows with ``keys``, and per positional parameter: the
    row's key and its type's processor, or (``None``, ``None``, value) for a literal.

    The unit of work builds its statements once (``_insert_into``, ``_upsert_states``...),
    so caching by the object is caching by shape; the cache keeps them alive.
    """
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    binds: list[tuple[str | None, Callable[[Any], Any] | None, Any]] = []
    for name in compiled.positiontup or ():
        kind = compiled.binds[name].type
        process = kind.bind_processor(dialect)
        if name in keys:
            # A time column has no processor here: the driver adapts it (``_TIME``).
            time_column = process is None and isinstance(kind, DateTime)
            binds.append((name, _TIME if time_column else process, None))
        else:
            value = compiled.binds[name].effective_value
            binds.append((None, None, value if process is None else process(value)))
    return compiled.string, binds


def _TIME(value: Any) -> Any:
    """Marks a time column's parameter: ``execute_many`` converts each time object once."""
    raise AssertionError("replaced by InlineSession.execute_many")


_MIGRATION_LOCK = 0x5350_4301
"""PostgreSQL advisory lock key: processes starting together migrate one at a time."""


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from infra.migrations import upgrade_to_head

    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(upgrade_to_head)
        await conn.commit()
