"""The unit of work: what a batch reads while it is decided, and every write it makes, in
one transaction at its commit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Table, insert, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.engine import AnySession, InlineSession, JsonText, to_json_text
from infra.db.tables import (
    Base,
    BookingIdRow,
    ConsumerPositionRow,
    MonthCloseRow,
    OutboxRow,
    ProcessedInput,
    RoomRow,
    UsageMonthlyRow,
    UsageStateRow,
    _table,
    new_outbox_uid,
    utcnow,
)


class StaleState(Exception):
    """A state changed in the database since this consumer loaded it.

    Only a consumer that lost its partitions without noticing (a zombie) or a second
    writer can cause it: the transaction rolls back, the cached states are dropped and
    the batch is decided again from what the database holds.
    """


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
        query per 500 ids, as ``already_processed``.

        An id ``<order>/<event_id>`` (the statistics', ``decision_identity``) is also
        found under its bare ``<event_id>``: how the statistics stored their rows before
        leading them with the time. A decision they counted then, read again after the
        upgrade (a crash before its offset was committed), must not count twice.
        """
        ids = list(event_ids)
        processed = _table(ProcessedInput).c
        found: dict[str, tuple[str | None, str, int, int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            named = {ident.rpartition("/")[2]: ident for ident in chunk if "/" in ident}
            if named:
                chunk = chunk + list(named)
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
                found[named.get(event_id, event_id)] = (digest, topic, partition, offset)
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


def _state_key(table: type[RoomRow] | type[UsageStateRow]) -> Any:
    columns = _table(table).c
    return columns.room_id if table is RoomRow else columns.scope_id
