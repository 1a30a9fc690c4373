"""The tables: the rooms' and the statistics' states, the inputs consumed, the booking ids
answered, the outbox and the consumers' positions, as SQLAlchemy ORM rows."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    tick_due_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    """When a clock tick can next change the room (``next_tick_due``); the clock ticks
    only the rooms due. None: not known yet (a row written before migration 0008)."""


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


def _table(model: type[Base]) -> Table:
    """The Core table of a model: bulk inserts through it skip the ORM's bookkeeping."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
