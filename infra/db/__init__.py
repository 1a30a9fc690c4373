"""SQLAlchemy 2 (async) tables, engine and the unit of work.

The unit of work is what makes processing effectively-once: a batch's new room
states, the ids of the inputs it consumed and the messages it must publish (the
outbox) are committed in one database transaction, before Kafka offsets are.
SQLite (the embedded default) and PostgreSQL (production, CI) are both served.

One concept per module (each imports only those above it):

- ``tables``: ``Base`` and the ORM rows (rooms, consumed ids, booking ids, outbox, usage
  states and months, month closes, consumer positions), ``utcnow``, ``new_outbox_uid``;
- ``engine``: the engines (``make_engine``, ``make_inline_engine``), SQLite's pragmas and
  WAL checkpoint, ``InlineSession``, the JSON columns' serializer, ``migrate``;
- ``unit_of_work``: ``UnitOfWork`` and its bulk writes (``StaleState``, ``StoredState``);
- ``database``: ``Database`` (the writer lock, units of work, the outbox's queries, the
  cross-process locks, pruning) and ``PendingMessage``.

The names the rest of the service uses are re-exported here.
"""

import domain  # noqa: F401  first: compiled modules or their sources (domain/_compiled.py)
from infra.db.database import Database, PendingMessage
from infra.db.engine import WAL_AUTOCHECKPOINT_PAGES, JsonText, is_sqlite, make_engine
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
    utcnow,
)
from infra.db.unit_of_work import StaleState, UnitOfWork

__all__ = [
    "WAL_AUTOCHECKPOINT_PAGES",
    "Base",
    "BookingIdRow",
    "ConsumerPositionRow",
    "Database",
    "JsonText",
    "MonthCloseRow",
    "OutboxRow",
    "PendingMessage",
    "ProcessedInput",
    "RoomRow",
    "StaleState",
    "UnitOfWork",
    "UsageMonthlyRow",
    "UsageStateRow",
    "is_sqlite",
    "make_engine",
    "utcnow",
]
