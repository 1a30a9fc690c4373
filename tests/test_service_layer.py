"""The service layer with the real rules and a real database, without Kafka.

``process_batch`` + ``RoomAuthority`` on SQLite (and PostgreSQL when configured):
what a batch writes, what stays in memory, and the guard against a stale state.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from consumers.authority import RoomAuthority
from infra import tick_signature
from infra.db import Database, OutboxRow, ProcessedInput, RoomRow, StaleState
from infra.settings import Topics
from schemas.inputs import Checkin, ClockTick, RoomConfigured
from service_layer.processing import process_batch
from tests.records import Rec

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


def configured(room_id: str) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        room_id=room_id,
        center_id="seosan",
        name="Club room",
        capacity=15,
        booking_mode="shared",
        opens="09:00",
        closes="22:00",
    )


def walk_in(room_id: str) -> Checkin:
    return Checkin(
        event_id=uuid.uuid4(), occurred_at=NOW, room_id=room_id, kiosk_id="k", party_size=2
    )


async def decide(db: Database, authority: RoomAuthority, records: list[Rec]) -> None:
    async with db.unit_of_work(authority.group) as uow:
        await process_batch(uow, authority.settings, authority, records, {})
    authority.committed()


async def count(db: Database, column: object) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(column)) or 0)  # type: ignore[call-overload]


async def test_a_tick_with_nothing_to_do_writes_nothing(db: Database) -> None:
    topics = Topics()
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    await decide(db, authority, [Rec(topics.capacity, 0, configured("r1"))])
    before = (await count(db, OutboxRow), await count(db, ProcessedInput))
    async with db.session() as session:
        version = await session.scalar(select(RoomRow.version))
    tick = ClockTick(event_id=uuid.uuid4(), occurred_at=NOW, room_id="r1")
    await decide(db, authority, [Rec(topics.capacity, 1, tick)])
    assert (await count(db, OutboxRow), await count(db, ProcessedInput)) == before
    async with db.session() as session:
        assert await session.scalar(select(RoomRow.version)) == version


async def test_rooms_stay_in_memory_and_only_changed_rooms_are_written(db: Database) -> None:
    topics = Topics()
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    await decide(
        db,
        authority,
        [Rec(topics.capacity, 0, configured("r1")), Rec(topics.capacity, 1, configured("r2"))],
    )
    await decide(db, authority, [Rec(topics.checkins, 0, walk_in("r1"))])
    async with db.session() as session:
        versions = dict(list(await session.execute(select(RoomRow.room_id, RoomRow.version))))
        occupancy = await session.scalar(select(RoomRow.occupancy).where(RoomRow.room_id == "r1"))
    assert versions == {"r1": 2, "r2": 1}
    assert occupancy == 2
    room = authority.rooms["r1"]
    assert room is not None and room.occupancy == 2


async def test_a_room_changed_behind_its_owners_back_is_not_overwritten(db: Database) -> None:
    """A zombie (the old owner of a partition) and the new owner decide the same room."""
    topics = Topics()
    owner = RoomAuthority(db.settings, clock=lambda: NOW)
    zombie = RoomAuthority(db.settings, clock=lambda: NOW)
    await decide(db, owner, [Rec(topics.capacity, 0, configured("r1"))])
    await decide(db, zombie, [Rec(topics.checkins, 0, walk_in("r1"))])  # loads, then writes
    with pytest.raises(StaleState):
        await decide(db, owner, [Rec(topics.checkins, 1, walk_in("r1"))])
    owner.forget(everything=True)  # what the loop does before it retries
    await decide(db, owner, [Rec(topics.checkins, 1, walk_in("r1"))])
    async with db.session() as session:
        occupancy = await session.scalar(select(RoomRow.occupancy))
    assert occupancy == 4  # both admissions count: nothing was overwritten


async def outbox(db: Database, topic: str) -> list[dict[str, object]]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxRow.value).where(OutboxRow.topic == topic).order_by(OutboxRow.id)
        )
        return [json.loads(value) for value in rows]


async def test_an_event_id_reused_with_other_content_is_dead_lettered_once(db: Database) -> None:
    """Issue 7: the reuse was skipped as a duplicate; an exact re-send still is (silently)."""
    topics = Topics()
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    first = walk_in("r1")
    other = first.model_copy(update={"party_size": 5})
    batch = [Rec(topics.capacity, 0, configured("r1")), Rec(topics.checkins, 0, first)]
    batch.append(Rec(topics.checkins, 1, other))  # in the same batch
    await decide(db, authority, batch)
    # In a later batch: the exact re-send, the reuse again, and the reuse redelivered.
    later = [Rec(topics.checkins, 2, first), Rec(topics.checkins, 3, other)]
    await decide(db, authority, later)
    await decide(db, authority, [Rec(topics.checkins, 3, other)])
    letters = await outbox(db, topics.dead_letters)
    assert [
        (x["offset"], "already used for a different input" in str(x["reason"])) for x in letters
    ] == [
        (1, True),
        (3, True),
    ]
    assert f"{topics.checkins}[0]@0" in str(letters[0]["reason"])
    decisions = await outbox(db, topics.decisions)
    assert [d["caused_by"] for d in decisions].count(str(first.event_id)) == 1
    room = authority.rooms["r1"]
    assert room is not None and room.occupancy == 2


async def test_unsigned_forged_and_future_ticks_are_refused_with_a_reason(db: Database) -> None:
    topics = Topics()
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    await decide(db, authority, [Rec(topics.capacity, 0, configured("r1"))])
    unsigned = Rec(
        topics.capacity, 1, ClockTick(event_id=uuid.uuid4(), occurred_at=NOW, room_id="r1")
    )
    unsigned.headers = []
    forged = Rec(
        topics.capacity, 2, ClockTick(event_id=uuid.uuid4(), occurred_at=NOW, room_id="r1")
    )
    forged.headers = [(tick_signature.HEADER, b"0" * 64)]
    ahead = NOW + timedelta(seconds=6)
    future = Rec(
        topics.capacity, 3, ClockTick(event_id=uuid.uuid4(), occurred_at=ahead, room_id="r1")
    )
    within = Rec(
        topics.capacity,
        4,
        ClockTick(event_id=uuid.uuid4(), occurred_at=NOW + timedelta(seconds=5), room_id="r1"),
    )
    assert isinstance(authority.parse(within), ClockTick)
    for record, why in ((unsigned, "signature"), (forged, "signature"), (future, "6s ahead")):
        reason = authority.parse(record)
        assert isinstance(reason, str) and why in reason, reason
