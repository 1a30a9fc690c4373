"""SQLAlchemy 2 (async) tables, engine and the unit of work.

The unit of work is what makes processing effectively-once: a batch's new room
states, the ids of the inputs it consumed and the messages it must publish (the
outbox) are committed in one database transaction, before Kafka offsets are.
SQLite (the embedded default) and PostgreSQL (production, CI) are both served.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import secrets
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import pydantic_core
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import (
    Connection,
    Dialect,
    Engine,
    Result,
    ScalarResult,
    create_engine,
    make_url,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from infra.observability import observe_checkpoint, observe_writer_lock_wait
from infra.settings import Settings


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class RoomRow(Base):
    """The room authority's state of one room, as the domain's JSON document."""

    __tablename__ = "rooms"
    room_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    center_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    occupancy: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    decisions: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bumped by every write; a write expecting an older version fails (see ``StaleState``)."""


class ProcessedInput(Base):
    """Every input a consumer group has decided, by ``event_id``: redeliveries are skipped."""

    __tablename__ = "processed_inputs"
    # event_id leads the key: a batch looks up its ids, whatever the consumer's history.
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Digest of the input's content (migration 0006): the same id with other content is
    not a re-send but a mistake, and is dead-lettered instead of skipped."""


class BookingIdRow(Base):
    """Every booking id a room answered (confirmed or rejected): ids are never reused.

    The room's state forgets bookings two days after they end; this table does not, and it
    is read only for the ids a batch's requests carry (one query per batch, by key), so
    the rooms kept in memory stay small however long their history.
    """

    __tablename__ = "booking_ids"
    room_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    booking_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_UID_PREFIX = secrets.token_hex(10)
"""80 random bits per process: with the counter below, a row's uid is unique forever."""
_uid_counter = itertools.count()


def new_outbox_uid() -> str:
    """32 hex digits, never reused (a uuid4 per row cost more than deciding the input)."""
    return f"{_UID_PREFIX}{next(_uid_counter):012x}"


class OutboxRow(Base):
    """A message to publish, written in the same transaction as the state it reports.

    ``id`` orders the rows; ``uid`` names one row forever (an integer id comes back after
    a reset or a restore), and it is what the relay's recovery looks for in the topics.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    uid: Mapped[str] = mapped_column(String(32), default=new_outbox_uid)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        Index("ix_outbox_unpublished", "published", "id"),
        Index("ix_outbox_uid", "uid", unique=True),
        {"sqlite_autoincrement": True},
    )
    published: Mapped[bool] = mapped_column(Boolean, default=False)


class OutboxIdentity(Base):
    """One row, created once by migration 0005: this outbox's Kafka ``transactional.id``.

    Every relay of this database uses it, so the one taking over fences the one before.
    """

    __tablename__ = "outbox_identity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    transactional_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageStateRow(Base):
    """The statistics consumer's fold state, per room (``room:<id>``) or center."""

    __tablename__ = "usage_state"
    scope_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UsageMonthlyRow(Base):
    """The latest ``usage-monthly`` value for each key, as dashboards read it."""

    __tablename__ = "usage_monthly"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))
    ident: Mapped[str] = mapped_column(String(64), index=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MonthCloseRow(Base):
    """How far each usage scope's months are closed, and when its next month ends.

    The month close reads only the rows whose ``next_close_at`` has passed (and the
    scopes without a row), so running it every few minutes costs one small query.
    """

    __tablename__ = "usage_month_close"
    scope_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    closed_through: Mapped[str] = mapped_column(String(7))
    """The last local month closed (``YYYY-MM``): every month up to it is final."""
    next_close_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    """When the month after ``closed_through`` ends in the scope's time zone(s)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsumerPositionRow(Base):
    """Where a consumer group is in each partition, committed with what it decided there.

    Kafka forgets a group's offsets after it has been away for ``offsets.retention.minutes``;
    the group then starts over from the earliest record kept, beyond its id memory. The
    statistics resume from these positions instead (``decisions`` is kept forever).
    """

    __tablename__ = "consumer_positions"
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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

log = logging.getLogger(__name__)


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
        params = [
            tuple(
                fixed if name is None else row[name] if process is None else process(row[name])
                for name, process, fixed in binds
            )
            for row in rows
        ]
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


class StaleState(Exception):
    """A state changed in the database since this consumer loaded it.

    Only a consumer that lost its partitions without noticing (a zombie) or a second
    writer can cause it: the transaction rolls back, the cached states are dropped and
    the batch is decided again from what the database holds.
    """


class PendingMessage(NamedTuple):
    """An outbox row not yet published."""

    id: int
    uid: str
    topic: str
    key: str | None
    value: str


@dataclass(frozen=True)
class StoredState:
    """A state document as stored, with the version a write-back must find."""

    state: dict[str, Any]
    version: int


class UnitOfWork:
    """One database transaction: states, processed inputs and outbox rows together.

    Reads go through ``session`` while the batch is decided; every write is collected
    and made when the unit of work commits (``flush``), with one bulk statement per
    table (per-row ORM objects cost more than the decisions themselves). On SQLite
    the reads happen outside the write lock, so the lock is held only for the writes
    (a batch's deciding never makes another consumer wait); the writes are checked
    (state versions, unique ids) so a read that went stale meanwhile fails the commit.
    """

    def __init__(self, session: AnySession, consumer: str) -> None:
        self.session = session
        self.consumer = consumer
        self._sqlite = session.bind.dialect.name == "sqlite"
        self._processed: list[dict[str, Any]] = []
        self._booking_ids: dict[tuple[str, str], dict[str, Any]] = {}
        self._outbox: list[dict[str, Any]] = []
        self._states: list[tuple[type[RoomRow] | type[UsageStateRow], list[dict[str, Any]]]] = []
        self._usage: list[dict[str, Any]] = []
        self._closes: list[dict[str, Any]] = []
        self._positions: list[dict[str, Any]] = []
        self._objects: list[Base] = []
        self.published = 0
        """Outbox rows this unit of work added."""
        self.now = utcnow()
        """When the unit of work began: the time of the rows it writes (one object, so
        ``InlineSession.execute_many`` formats it once for all of them)."""

    async def already_processed(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        found: set[str] = set()
        # Core columns, not ORM attributes: the ORM's row loading cost more than the query.
        processed = _table(ProcessedInput).c
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self.session.scalars(
                select(processed.event_id).where(
                    processed.consumer == self.consumer, processed.event_id.in_(chunk)
                )
            )
            found.update(rows)
        return found

    async def processed_digests(
        self, event_ids: Iterable[str]
    ) -> dict[str, tuple[str | None, str, int, int]]:
        """Of these ids, those decided before: (digest, topic, partition, offset). One
        query per 500 ids, as ``already_processed``."""
        ids = list(event_ids)
        processed = _table(ProcessedInput).c
        found: dict[str, tuple[str | None, str, int, int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self.session.execute(
                select(
                    processed.event_id,
                    processed.digest,
                    processed.topic,
                    processed.partition,
                    processed.offset,
                ).where(processed.consumer == self.consumer, processed.event_id.in_(chunk))
            )
            for event_id, digest, topic, partition, offset in rows:
                found[event_id] = (digest, topic, partition, offset)
        return found

    def mark_processed(
        self, event_id: str, topic: str, partition: int, offset: int, digest: str | None = None
    ) -> None:
        self._processed.append(
            {
                "consumer": self.consumer,
                "event_id": event_id,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "processed_at": self.now,
                "digest": digest,
            }
        )

    async def booking_ids_seen(self, ids: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (room_id, booking_id) were answered before: one query per 500."""
        wanted = sorted(set(ids))
        found: set[tuple[str, str]] = set()
        columns = _table(BookingIdRow).c
        for start in range(0, len(wanted), 500):
            rows = await self.session.execute(
                select(columns.room_id, columns.booking_id).where(
                    tuple_(columns.room_id, columns.booking_id).in_(wanted[start : start + 500])
                )
            )
            found.update((room_id, booking_id) for room_id, booking_id in rows)
        return found

    def remember_booking_id(self, room_id: str, booking_id: str) -> None:
        """The room answered this booking id; written at commit (an id known already stays)."""
        self._booking_ids.setdefault(
            (room_id, booking_id),
            {"room_id": room_id, "booking_id": booking_id, "seen_at": self.now},
        )

    def publish(self, topic: str, key: str | None, value: dict[str, Any] | str) -> None:
        text = str(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        self._outbox.append(
            {
                "uid": new_outbox_uid(),
                "topic": topic,
                "key": key,
                "value": text,
                "created_at": self.now,
                "published": False,
            }
        )

    async def load_rooms(self, room_ids: Iterable[str]) -> dict[str, RoomRow]:
        """Rooms as ORM rows, locked until commit (PostgreSQL ``FOR UPDATE``)."""
        ids = sorted(set(room_ids))
        if not ids:
            return {}
        query = select(RoomRow).where(RoomRow.room_id.in_(ids)).order_by(RoomRow.room_id)
        if not self._sqlite:
            query = query.with_for_update()
        rows = await self.session.scalars(query)
        return {row.room_id: row for row in rows}

    def add_room(self, row: RoomRow) -> None:
        self._objects.append(row)

    async def load_states(
        self, table: type[RoomRow] | type[UsageStateRow], ids: Iterable[str], *, lock: bool
    ) -> dict[str, StoredState]:
        """State documents by id; ``lock`` holds them until commit on PostgreSQL.

        States that one partition owner keeps in memory need no lock (the version
        guards the write); states shared by several owners (a center's) are locked.
        """
        key = _state_key(table)
        columns = _table(table).c
        wanted = sorted(set(ids))
        found: dict[str, StoredState] = {}
        for start in range(0, len(wanted), 500):
            query = (
                select(key, columns.state, columns.version)
                .where(key.in_(wanted[start : start + 500]))
                .order_by(key)
            )
            if lock and not self._sqlite:
                query = query.with_for_update()
            for ident, state, version in await self.session.execute(query):
                found[ident] = StoredState(state, version)
        return found

    async def load_versions(
        self, table: type[RoomRow] | type[UsageStateRow], ids: Iterable[str], *, lock: bool
    ) -> dict[str, int]:
        """Stored versions by id (``lock`` as in ``load_states``): a state kept in memory
        whose version is still the stored one need not be read again."""
        key = _state_key(table)
        version = _table(table).c.version
        wanted = sorted(set(ids))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            query = select(key, version).where(key.in_(wanted[start : start + 500])).order_by(key)
            if lock and not self._sqlite:
                query = query.with_for_update()
            for ident, stored in await self.session.execute(query):
                found[ident] = stored
        return found

    async def save_states(
        self, table: type[RoomRow] | type[UsageStateRow], rows: list[dict[str, Any]]
    ) -> None:
        """Insert or update states, each only if its stored version is ``version - 1``.

        Every row carries the table's columns with ``version`` already bumped; for
        ``rooms``, ``decisions`` is the number this write adds. The commit raises
        ``StaleState`` when any stored version was not the one expected.
        """
        if rows:
            # Serialized now, not while the write holds SQLite's writer lock.
            for row in rows:
                row["state"] = JsonText(to_json_text(row["state"]))
            self._states.append((table, rows))

    async def upsert_usage_rows(self, rows: list[dict[str, Any]]) -> None:
        """The latest ``usage-monthly`` values, one row per key."""
        self._usage.extend(rows)

    def save_month_closes(self, rows: list[dict[str, Any]]) -> None:
        """Where each scope's months are closed through (``usage_month_close`` rows)."""
        self._closes.extend(rows)

    def save_positions(self, positions: dict[tuple[str, int], int]) -> None:
        """The next offset to read per (topic, partition), for this unit's consumer."""
        now = utcnow()
        self._positions.extend(
            {
                "consumer": self.consumer,
                "topic": topic,
                "partition": partition,
                "next_offset": offset,
                "updated_at": now,
            }
            for (topic, partition), offset in sorted(positions.items())
        )

    async def _write_positions(self, session: AnySession) -> None:
        await _write_rows(session, _upsert_positions(self._sqlite), self._positions)
        self._positions = []

    async def _write_closes(self, session: AnySession) -> None:
        await _write_rows(session, _upsert_closes(self._sqlite), self._closes)
        self._closes = []

    async def _write_usage(self, session: AnySession, rows: list[dict[str, Any]]) -> None:
        await _write_rows(session, _upsert_usage(self._sqlite), rows, chunk=500)

    async def _write_states(
        self,
        session: AnySession,
        table: type[RoomRow] | type[UsageStateRow],
        rows: list[dict[str, Any]],
    ) -> None:
        """The versioned upsert of ``save_states``."""
        if not rows:
            return
        statement = _upsert_states(table, self._sqlite, tuple(rows[0]))
        if isinstance(session, InlineSession):  # SQLite counts the rows each write changed
            written = session.execute_many(statement, rows)
        else:
            written = 0
            returning = statement.returning(_state_key(table))
            for start in range(0, len(rows), 500):
                result = await session.execute(returning, rows[start : start + 500])
                written += len(result.all())
        if written != len(rows):
            raise StaleState(f"{len(rows) - written} of {len(rows)} {table.__tablename__} changed")

    async def flush(self, session: AnySession) -> None:
        """Make every collected write in ``session`` (the transaction about to commit)."""
        for table, rows in self._states:
            await self._write_states(session, table, rows)
        await self._write_usage(session, self._usage)
        await self._write_closes(session)
        await self._write_positions(session)
        await self._insert(session, ProcessedInput, self._processed)
        await _write_rows(
            session, _insert_booking_ids(self._sqlite), list(self._booking_ids.values())
        )
        await self._insert(session, OutboxRow, self._outbox)
        self.published += len(self._outbox)
        session.add_all(self._objects)
        self._states, self._usage, self._processed, self._outbox, self._objects = (
            [],
            [],
            [],
            [],
            [],
        )
        self._booking_ids = {}

    async def _insert(
        self, session: AnySession, model: type[Base], rows: list[dict[str, Any]]
    ) -> None:
        """Plain inserts: SQLite through ``_write_rows``, PostgreSQL by ``COPY``."""
        if self._sqlite or not isinstance(session, AsyncSession):
            await _write_rows(session, _insert_into(model), rows)
        else:
            await _copy_rows(session, model, rows)


async def _write_rows(
    session: AnySession, statement: Any, rows: list[dict[str, Any]], *, chunk: int | None = None
) -> None:
    """``statement`` for every row: inline SQLite through ``execute_many``; otherwise one
    bulk execution (per ``chunk`` rows), SQLAlchemy's ``insertmanyvalues``."""
    if not rows:
        return
    if isinstance(session, InlineSession):
        session.execute_many(statement, rows)
        return
    step = chunk or len(rows)
    for start in range(0, len(rows), step):
        await session.execute(statement, rows[start : start + step])


async def _copy_rows(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: plain inserts (no conflict clause) by ``COPY``, in the transaction.

    Why: SQLAlchemy's bulk insert (``insertmanyvalues``) binds every value of every row in
    Python and sends the rows as SQL text; a batch's thousands of consumed ids and outbox
    rows went there. asyncpg's ``copy_records_to_table`` sends them in its binary format.
    A unique violation (a second owner of a partition, for a moment) still rolls the batch
    back as a ``DBAPIError``, which the consumer loop retries.
    """
    if not rows:
        return
    connection = await session.connection()
    import asyncpg  # type: ignore[import-untyped]

    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():  # SQLAlchemy begins it at the first statement
        await session.execute(select(literal(1)))
    table = _table(model)
    columns = list(rows[0])
    try:
        await driver.copy_records_to_table(
            table.name, columns=columns, records=[tuple(row[c] for c in columns) for row in rows]
        )
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(f"COPY {table.name}", None, error) from error
    except asyncpg.PostgresError as error:
        raise DBAPIError(f"COPY {table.name}", None, error) from error


# The unit of work's statements, built once: ``InlineSession.execute_many`` compiles each
# once by identity.


def _dialect_insert(sqlite: bool, table: Table) -> Any:
    return (sqlite_insert if sqlite else postgresql_insert)(table)


@cache
def _insert_into(model: type[Base]) -> Any:
    return insert(_table(model))


@cache
def _insert_booking_ids(sqlite: bool) -> Any:
    return _dialect_insert(sqlite, _table(BookingIdRow)).on_conflict_do_nothing()


@cache
def _upsert_positions(sqlite: bool) -> Any:
    columns = _table(ConsumerPositionRow).c
    statement = _dialect_insert(sqlite, _table(ConsumerPositionRow))
    return statement.on_conflict_do_update(
        index_elements=["consumer", "topic", "partition"],
        set_={
            "next_offset": statement.excluded.next_offset,
            "updated_at": statement.excluded.updated_at,
        },
        # A zombie's late batch never moves a position back.
        where=columns.next_offset < statement.excluded.next_offset,
    )


@cache
def _upsert_closes(sqlite: bool) -> Any:
    statement = _dialect_insert(sqlite, _table(MonthCloseRow))
    return statement.on_conflict_do_update(
        index_elements=["scope_id"],
        set_={
            name: statement.excluded[name]
            for name in ("closed_through", "next_close_at", "updated_at")
        },
    )


@cache
def _upsert_usage(sqlite: bool) -> Any:
    statement = _dialect_insert(sqlite, _table(UsageMonthlyRow))
    return statement.on_conflict_do_update(
        index_elements=["key"],
        set_={name: statement.excluded[name] for name in ("value", "final", "updated_at")},
    )


@cache
def _upsert_states(
    table: type[RoomRow] | type[UsageStateRow], sqlite: bool, names: tuple[str, ...]
) -> Any:
    """Insert or update a state (the rows' columns ``names``), the update only over the
    version before the row's; rooms add the row's ``decisions`` to the stored count."""
    columns = _table(table).c
    key = _state_key(table)
    upsert = _dialect_insert(sqlite, _table(table))
    changes: dict[str, Any] = {
        name: upsert.excluded[name] for name in names if name not in (key.name, "decisions")
    }
    if "decisions" in names:
        changes["decisions"] = columns.decisions + upsert.excluded.decisions
    return upsert.on_conflict_do_update(
        index_elements=[key.name],
        set_=changes,
        where=columns.version == upsert.excluded.version - 1,
    )


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as runs of consecutive ids: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for ident in ids:
        if runs and ident == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], ident)
        else:
            runs.append((ident, ident))
    return runs


def _table(model: type[Base]) -> Table:
    """The Core table of a model: bulk inserts through it skip the ORM's bookkeeping."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _state_key(table: type[RoomRow] | type[UsageStateRow]) -> Any:
    columns = _table(table).c
    return columns.room_id if table is RoomRow else columns.scope_id


class Database:
    """Engine plus a factory of units of work.

    SQLite has one writer at a time: within a process every write transaction waits its
    turn on one lock (a queue in front of the database) instead of meeting
    ``database is locked`` after the busy timeout; across processes SQLite's own busy
    wait applies, and every transaction is short.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self._sqlite = is_sqlite(settings.database_url)
        self._writer = asyncio.Lock()
        self._lock_file: TextIO | None = None
        # SQLite writers begin IMMEDIATE (the write lock up front); reads go through an
        # engine whose transactions never take it, so the relay's polling and the clock
        # never wait for a consumer's batch, nor make it wait.
        self.reader = make_engine(settings, read_only=True) if self._sqlite else self.engine
        self._inline_writer = (
            make_inline_engine(settings, read_only=False) if self._sqlite else None
        )
        self._inline_reader = make_inline_engine(settings, read_only=True) if self._sqlite else None
        database = make_url(settings.database_url).database if self._sqlite else None
        self._wal_file = database if database and database != ":memory:" else None
        """The SQLite file whose WAL the service checkpoints (``_checkpoint_soon``)."""
        self._checkpointing: asyncio.Task[None] | None = None
        self._last_checkpoint = 0.0

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Held around every write transaction on SQLite; a no-op on PostgreSQL.

        In the process, an asyncio lock; across processes (``spaces run`` runs the
        statistics apart), a file lock taken in a thread: the kernel hands it over the
        moment it is released, where SQLite's own busy handler polls with sleeps of up
        to 100 ms.
        """
        if not self._sqlite:
            yield
            return
        asked = time.perf_counter()
        async with self._writer:
            if self._lock_file is None:
                database = make_url(self.settings.database_url).database or "spaces"
                path = Path(f"{database}.writer.lock")
                path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = path.open("a")  # noqa: ASYNC230 - once per process
            handle = self._lock_file
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no thread hop
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            observe_writer_lock_wait(time.perf_counter() - asked)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        if self._wal_file is not None:
            self._checkpoint_soon(self._wal_file)

    def _checkpoint_soon(self, path: str) -> None:
        """After a write: checkpoint the WAL in a thread, at most every
        ``CHECKPOINT_INTERVAL_S`` (a write meanwhile is in the next one).

        Outside the writer lock, so no writer waits for it (``WAL_AUTOCHECKPOINT_PAGES``).
        A checkpointer of another process at the same time finds SQLite busy and leaves
        the pages to the other one."""
        loop = asyncio.get_running_loop()
        task = self._checkpointing
        if task is None or task.done() or task.get_loop() is not loop:  # (a loop that ended)
            self._checkpointing = loop.create_task(self._checkpoint(path))

    async def _checkpoint(self, path: str) -> None:
        try:
            await asyncio.sleep(self._last_checkpoint + CHECKPOINT_INTERVAL_S - time.monotonic())
            self._last_checkpoint = started = time.monotonic()
            await asyncio.to_thread(_passive_checkpoint, path)
            observe_checkpoint(time.monotonic() - started)
        except sqlite3.Error as error:  # busy: another process's checkpoint copies them
            log.debug("checkpoint skipped", extra={"error": str(error)})
        except OSError as error:  # the next write tries again; SQLite's own is the net
            log.warning("checkpoint failed", extra={"error": str(error)})
        finally:
            if self._checkpointing is asyncio.current_task():
                self._checkpointing = None

    async def checkpoint_finished(self) -> None:
        """Wait for the checkpoint due, if any (tests)."""
        task = self._checkpointing
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)

    async def migrate(self) -> None:
        async with self.writing():
            await migrate(self.engine)

    @asynccontextmanager
    async def unit_of_work(self, consumer: str) -> AsyncIterator[UnitOfWork]:
        """Reads while inside; the writes commit, all together, on leaving normally.

        PostgreSQL: one transaction (row locks taken by reads are held to the commit).
        SQLite: the reads see a snapshot and take no lock; the writes are one short
        transaction under the writer lock.
        """
        if not self._sqlite:
            async with (
                AsyncSession(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                uow = UnitOfWork(session, consumer)
                yield uow
                await uow.flush(session)
            return
        assert self._inline_reader is not None
        with Session(self._inline_reader, expire_on_commit=False) as reading:
            uow = UnitOfWork(InlineSession(reading), consumer)
            yield uow
            reading.rollback()  # ends the read snapshot
        async with self.writing(), self._write_session() as writing:
            await uow.flush(writing)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the writer engine. On SQLite its transactions take the write lock
        (``BEGIN IMMEDIATE``), so use it inside ``writing`` only: a transaction held
        outside it would make an inline writer of the same event loop wait for a lock
        that cannot be released meanwhile. Only reading? ``read_session``."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads: on SQLite it never takes or waits for the write lock."""
        async with AsyncSession(self.reader, expire_on_commit=False) as session:
            yield session

    async def mark_published(self, ids: list[int]) -> None:
        if not ids:
            return
        now = utcnow()
        outbox = _table(OutboxRow).c
        # The relay sends rows in id order: the ids are a few runs of consecutive ids, and
        # a range per run is cheaper to bind than one parameter per id.
        runs = _runs(sorted(ids))
        async with self.writing(), self._write_session() as session:
            for start in range(0, len(runs), 200):
                await session.execute(
                    update(_table(OutboxRow))
                    .where(
                        or_(*(outbox.id.between(lo, hi) for lo, hi in runs[start : start + 200]))
                    )
                    .values(published=True, published_at=now)
                )

    @asynccontextmanager
    async def _write_session(self) -> AsyncIterator[AnySession]:
        """A write transaction (inside ``writing``): inline on SQLite, see ``InlineSession``."""
        if self._inline_writer is None:
            async with self.session() as session, session.begin():
                yield session
            return
        with Session(self._inline_writer, expire_on_commit=False) as inline, inline.begin():
            yield InlineSession(inline)

    @property
    def ids_follow_commits(self) -> bool:
        """Whether a row committed later always has a greater id.

        True on SQLite: writers take turns (``writing``) and ``AUTOINCREMENT`` gives each
        row the greatest id ever plus one. Not on PostgreSQL: a transaction that drew an
        id from the sequence may commit after one that drew a greater id.
        """
        return self._sqlite

    async def unpublished(self, limit: int, after: int = 0) -> list[PendingMessage]:
        """The oldest ``limit`` unpublished rows with an id greater than ``after``."""
        query = self._unpublished_query(limit, after)
        if self._inline_reader is not None:  # the relay's poll: inline, see ``InlineSession``
            with self._inline_reader.connect() as connection:
                return self._unpublished(connection.execute(query))
        async with self.read_session() as session:
            return self._unpublished(await session.execute(query))

    @staticmethod
    def _unpublished_query(limit: int, after: int = 0) -> Any:
        # Core columns: the ORM's row loading cost more than the query.
        outbox = _table(OutboxRow).c
        return (
            select(outbox.id, outbox.uid, outbox.topic, outbox.key, outbox.value)
            .where(outbox.published.is_(False), outbox.id > after)
            .order_by(outbox.id)
            .limit(limit)
        )

    @staticmethod
    def _unpublished(rows: Result[Any]) -> list[PendingMessage]:
        return [PendingMessage(*row) for row in rows.all()]

    async def outbox_backlog(self, cap: int = 100_000) -> int:
        """Outbox rows not published yet, counted up to ``cap`` (the ``/metrics`` gauge).

        Reads only ``ix_outbox_unpublished``; the cap keeps a sample cheap however far
        the relay is behind."""
        async with self.read_session() as session:
            pending = (
                select(OutboxRow.id).where(OutboxRow.published.is_(False)).limit(cap).subquery()
            )
            return int(await session.scalar(select(text("count(*)")).select_from(pending)) or 0)

    async def outbox_transactional_id(self) -> str:
        """The ``transactional.id`` of this outbox (see ``OutboxIdentity``)."""
        async with self.read_session() as session:
            found = await session.scalar(
                select(OutboxIdentity.transactional_id).where(OutboxIdentity.id == 1)
            )
        if found is None:
            raise RuntimeError("outbox_identity is empty: run the migrations (0005)")
        return found

    @asynccontextmanager
    async def exclusive(
        self, name: str, stop: asyncio.Event | None = None, poll_s: float = 0.5
    ) -> AsyncIterator[bool]:
        """Hold the lock ``name`` of this database, across processes, while inside.

        Waits while another process holds it: a second outbox relay is a standby that
        takes over when the first stops or dies (PostgreSQL releases an advisory lock
        with its connection; the OS releases a file lock with its process). Yields
        False, holding nothing, if ``stop`` is set while waiting.
        """
        stopped = stop or asyncio.Event()
        if is_sqlite(self.settings.database_url):
            database = make_url(self.settings.database_url).database or "spaces"
            path = Path(f"{database}.{name}.lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:  # noqa: ASYNC230 - a lock file, opened once
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if stopped.is_set():
                            yield False
                            return
                        await asyncio.sleep(poll_s)
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock = text("SELECT pg_try_advisory_lock(:key)")
            while not (await conn.execute(lock, {"key": key})).scalar():
                if stopped.is_set():
                    yield False
                    return
                await asyncio.sleep(poll_s)
            try:
                yield True
            finally:
                # The connection may be the reason we stop (it dropped, and the lock with it).
                with suppress(DBAPIError):
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    async def prune(self, now: datetime) -> tuple[int, int]:
        """Forget consumed ids and published outbox rows past their retention.

        A redelivery can only come from Kafka, which keeps inputs for days, not the
        30 days ids are remembered; a published outbox row is only needed until it is
        in the log. Returns (ids forgotten, outbox rows deleted).
        """
        id_horizon = now - timedelta(days=self.settings.processed_retention_days)
        outbox_horizon = now - timedelta(days=self.settings.outbox_retention_days)
        async with self.writing(), self.session() as session, session.begin():
            ids = await session.execute(
                delete(ProcessedInput).where(ProcessedInput.processed_at < id_horizon)
            )
            rows = await session.execute(
                delete(OutboxRow).where(
                    OutboxRow.published.is_(True), OutboxRow.published_at < outbox_horizon
                )
            )
        return int(getattr(ids, "rowcount", 0)), int(getattr(rows, "rowcount", 0))

    async def dispose(self) -> None:
        task, self._checkpointing = self._checkpointing, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()  # SQLite checkpoints as the last connection closes
            with suppress(asyncio.CancelledError):
                await task
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()
        for inline in (self._inline_reader, self._inline_writer):
            if inline is not None:
                inline.dispose()
