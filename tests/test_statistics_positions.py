"""The statistics count each decision once by its position in ``decisions``, not by a row
per decision id: a redelivered record below the stored position is skipped, and a member
that lost the partition without noticing (a zombie) cannot count what the new owner
counted, because each position write is a compare-and-set.

Real rules, real fold, a real database; no Kafka (the records are what the relay sent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.authority import RoomAuthority
from consumers.statistics import UsageStatistics
from infra.db import (
    ConsumerPositionRow,
    Database,
    OutboxRow,
    ProcessedInput,
    StaleState,
    UsageMonthlyRow,
)
from infra.settings import Settings, Topics
from service_layer.processing import process_batch
from tests.test_service_layer import NOW, Rec, configured, walk_in

DECISIONS = Topics().decisions


class Sent:
    """A record of ``decisions`` as the statistics read it."""

    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        self.topic = DECISIONS
        self.partition = partition
        self.offset = offset
        self.timestamp = 0
        self.key: bytes | None = b"r1"
        self.value: bytes | None = value
        self.headers: list[tuple[str, bytes]] = []


async def _database(url: str) -> Database:
    database = Database(Settings(database_url=url))
    await database.migrate()
    return database


@pytest.fixture
async def db(database_url: str) -> Any:
    database = await _database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Any:
    database = await _database(f"sqlite+aiosqlite:///{tmp_path / 'spaces.db'}")
    yield database
    await database.dispose()


async def decisions_for_walk_ins(db: Database, walk_ins: int) -> list[Sent]:
    """Room r1 configured, then ``walk_ins`` parties of 2 admitted: the decisions as sent."""
    topics = Topics()
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    inputs = [Rec(topics.capacity, 0, configured("r1"))]
    inputs += [Rec(topics.checkins, i, walk_in("r1")) for i in range(walk_ins)]
    async with db.unit_of_work(authority.group) as uow:
        await process_batch(uow, authority.settings, authority, inputs, {})
    async with db.read_session() as session:
        values = await session.scalars(
            select(OutboxRow.value).where(OutboxRow.topic == DECISIONS).order_by(OutboxRow.id)
        )
        return [Sent(offset, value.encode()) for offset, value in enumerate(values)]


async def count(db: Database, statistics: UsageStatistics, records: list[Sent]) -> None:
    async with db.unit_of_work(statistics.group) as uow:
        await process_batch(uow, statistics.settings, statistics, records, {})
    statistics.committed()


async def visits_of_r1(db: Database) -> int:
    async with db.read_session() as session:
        values = list(
            await session.scalars(
                select(UsageMonthlyRow.value).where(UsageMonthlyRow.key.like("room:r1:%"))
            )
        )
    return sum(int(value["visits"]) for value in values)


async def position(db: Database, statistics: UsageStatistics) -> int | None:
    async with db.read_session() as session:
        return await session.scalar(
            select(ConsumerPositionRow.next_offset).where(
                ConsumerPositionRow.consumer == statistics.group,
                ConsumerPositionRow.topic == DECISIONS,
            )
        )


async def test_a_redelivered_decision_is_counted_once_and_no_id_is_stored(db: Database) -> None:
    sent = await decisions_for_walk_ins(db, 6)  # room.configured + 6 admissions
    assert len(sent) == 7
    first = UsageStatistics(db.settings, clock=lambda: NOW)
    await count(db, first, sent[:4])
    assert await visits_of_r1(db) == 3 * 2
    # A restart (nothing in memory) reads from an older committed offset: 0..3 again.
    restarted = UsageStatistics(db.settings, clock=lambda: NOW)
    await count(db, restarted, sent)
    assert await visits_of_r1(db) == 6 * 2
    assert await position(db, restarted) == 7
    async with db.read_session() as session:
        ids = await session.scalar(
            select(func.count())
            .select_from(ProcessedInput)
            .where(ProcessedInput.consumer == first.group)
        )
    assert ids == 0  # the position is the memory: no row per decision


async def test_a_position_write_is_a_compare_and_set(db: Database) -> None:
    group = Settings().statistics_group
    where = (DECISIONS, 0)

    async def write(offset: int, expected: dict[tuple[str, int], int]) -> None:
        async with db.unit_of_work(group) as uow:
            uow.save_positions({where: offset}, expected=expected)

    async def stored() -> dict[tuple[str, int], int]:
        async with db.unit_of_work(group) as uow:
            return await uow.load_positions([where, (DECISIONS, 1)])

    await write(5, {})  # the partition's first position
    assert await stored() == {where: 5}
    with pytest.raises(StaleState):
        await write(9, {})  # another member wrote the first one meanwhile
    with pytest.raises(StaleState):
        await write(9, {where: 3})  # moved since it was read
    await write(9, {where: 5})
    assert await stored() == {where: 9}
    await write(7, {where: 9})  # not past the stored one: everything was skipped
    assert await stored() == {where: 9}


async def test_a_zombie_and_the_new_owner_never_both_count_a_decision(
    sqlite_db: Database,
) -> None:
    """The owner reads, the zombie counts the same records and commits, then the owner's
    commit fails; after the retry the owner skips them. (SQLite: its reads take no lock,
    so the two can interleave in one task; on PostgreSQL the center's row lock orders
    them and the same compare-and-set applies.)"""
    db = sqlite_db
    sent = await decisions_for_walk_ins(db, 6)
    owner = UsageStatistics(db.settings, clock=lambda: NOW)
    zombie = UsageStatistics(db.settings, clock=lambda: NOW)
    with pytest.raises(StaleState):
        async with db.unit_of_work(owner.group) as uow:
            await process_batch(uow, owner.settings, owner, sent, {})
            await count(db, zombie, sent[:5])  # commits first
    owner.forget(everything=True)  # what the loop does before it retries
    await count(db, owner, sent)
    assert await visits_of_r1(db) == 6 * 2
    assert await position(db, owner) == 7
