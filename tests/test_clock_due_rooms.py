"""The clock ticks only the rooms due, and the room authority writes when each is due.

On a real database (SQLite, and PostgreSQL when configured), without Kafka: the room
authority through ``process_batch`` (as ``tests/test_booking_ids.py``), the clock with a
producer that keeps what it was given.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from consumers import clock as clock_module
from consumers.authority import RoomAuthority
from consumers.clock import Clock
from domain.capacity import Policy
from infra.db import Database, RoomRow
from schemas.inputs import ClockTick, RoomConfigured
from tests.test_booking_ids import NOW, configured, decide, request

GRACE = Policy().no_show_grace


def tick(at: datetime, room_id: str = "r1") -> ClockTick:
    return ClockTick(event_id=uuid.uuid4(), occurred_at=at, room_id=room_id)


async def stored(db: Database, room_id: str = "r1") -> tuple[int, datetime | None]:
    """The room's row: (version, tick_due_at in UTC)."""
    async with db.session() as session:
        version, due = (
            await session.execute(
                select(RoomRow.version, RoomRow.tick_due_at).where(RoomRow.room_id == room_id)
            )
        ).one()
    if due is not None and due.tzinfo is None:  # SQLite gives naive UTC back
        due = due.replace(tzinfo=UTC)
    return version, due


async def test_the_room_authority_writes_when_each_room_is_next_due(db: Database) -> None:
    at = NOW  # 09:00 in Seoul; the room is open 09:00-22:00
    authority = RoomAuthority(db.settings, clock=lambda: at)
    assert await decide(db, authority, [configured(at)]) == ["room.configured"]
    closing = NOW + timedelta(hours=13)
    assert await stored(db) == (1, closing)
    starts = NOW + timedelta(hours=1)
    await decide(db, authority, [request("b1", starts)])
    assert await stored(db) == (2, starts + GRACE)  # the no-show comes first now

    at = NOW + timedelta(minutes=10)  # before it: the tick finds nothing, writes nothing
    assert await decide(db, authority, [tick(at)]) == []
    assert await stored(db) == (2, starts + GRACE)

    at = starts + GRACE
    assert await decide(db, authority, [tick(at)]) == ["booking.released"]
    assert await stored(db) == (3, closing)


async def test_a_tick_that_finds_its_room_due_but_nothing_to_do_moves_the_due_time(
    db: Database,
) -> None:
    """The daily net of a room open around the clock with nothing held: the tick decides
    nothing, yet writes the room's next due time, or the clock would tick it again and
    again."""
    at = NOW
    authority = RoomAuthority(db.settings, clock=lambda: at)
    always_open = configured(at).model_copy(update={"opens": "00:00", "closes": "24:00"})
    assert isinstance(always_open, RoomConfigured)
    await decide(db, authority, [always_open])
    assert await stored(db) == (1, NOW + timedelta(days=1))
    at = NOW + timedelta(days=1, seconds=5)
    assert await decide(db, authority, [tick(at)]) == []
    assert await stored(db) == (2, at + timedelta(days=1))
    at += timedelta(seconds=30)  # due in a day: the next tick writes nothing
    assert await decide(db, authority, [tick(at)]) == []
    assert (await stored(db))[0] == 2
    # Another owner (after a rebalance) does not know what was written: it writes once.
    other = RoomAuthority(db.settings, clock=lambda: at)
    assert await decide(db, other, [tick(at)]) == []
    assert (await stored(db))[0] == 3
    assert await decide(db, other, [tick(at + timedelta(seconds=30))]) == []
    assert (await stored(db))[0] == 3


class KeptProducer:
    """Stands in for the producer: keeps the key of every record sent."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def send(self, topic: str, **record: Any) -> asyncio.Future[None]:
        self.keys.append(record["key"].decode())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def add_rooms(db: Database, dues: dict[str, datetime | None]) -> None:
    async with db.session() as session, session.begin():
        for room_id, due in dues.items():
            await session.execute(
                insert(RoomRow).values(
                    room_id=room_id,
                    center_id="c",
                    state={},
                    occupancy=0,
                    capacity=15,
                    decisions=1,
                    updated_at=NOW,
                    version=1,
                    tick_due_at=due,
                )
            )


async def test_the_clock_ticks_the_rooms_due_once_per_interval(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = NOW
    await add_rooms(
        db,
        {
            "r-due": now - timedelta(minutes=1),
            "r-due-long-ago": now - timedelta(days=2),
            "r-unknown": None,  # a row from before due times were kept
            "r-later": now + timedelta(hours=1),
        },
    )
    clock = Clock(db.settings, db)
    producer = KeptProducer()
    clock.producer = producer  # type: ignore[assignment]
    assert await clock.tick(now) == 3
    assert producer.keys == ["r-unknown", "r-due-long-ago", "r-due"]  # due longest first
    # Ticked: not again within the interval, though still due until the authority writes.
    assert await clock.tick(now + timedelta(seconds=3)) == 0
    clock.ticked = {room: at - clock.settings.clock_interval_s for room, at in clock.ticked.items()}
    monkeypatch.setattr(clock_module, "TICKS_PER_RUN", 2)
    assert await clock.tick(now + timedelta(hours=2)) == 2  # r-later is due now too
    assert producer.keys[3:] == ["r-unknown", "r-due-long-ago"]
    assert await clock.tick(now + timedelta(hours=2)) == 2
    assert producer.keys[5:] == ["r-due", "r-later"]
