"""When the statistics publish their aggregates: at most once per interval, at once when no
more decisions come, and after a crash when the decisions come again.

``process_batch`` + ``UsageStatistics`` on SQLite (and PostgreSQL when configured), without
Kafka; what the consume loop does with ``settled`` is in ``tests/test_batch_loop.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import consumers.statistics as statistics_module
from consumers.statistics import UsageStatistics, close_months
from infra.db import ConsumerPositionRow, Database, OutboxRow
from infra.settings import Settings
from schemas.decisions import CheckinAdmitted, CheckinDenied, Decision, RoomConfiguredDecision
from service_layer.processing import process_batch
from tests.records import Rec

SEOUL = ZoneInfo("Asia/Seoul")


def decisions(rooms: int = 4, parties: int = 5) -> list[Decision]:
    """Each room configured, then parties admitted (one denied) in turn across the rooms."""
    t = datetime(2026, 11, 10, 9, 0, tzinfo=SEOUL)
    out: list[Decision] = []
    for r in range(rooms):
        out.append(
            RoomConfiguredDecision(
                event_id=uuid.uuid4(),
                caused_by=uuid.uuid4(),
                room_id=f"seosan.club-{r}",
                center_id="seosan",
                decided_at=t,
                name=f"Club room {r}",
                capacity=15,
                booking_mode="shared",
                opens="09:00",
                closes="22:00",
                timezone="Asia/Seoul",
            )
        )
    for p in range(parties):
        for r in range(rooms):
            common = {
                "event_id": uuid.uuid4(),
                "caused_by": uuid.uuid4(),
                "room_id": f"seosan.club-{r}",
                "center_id": "seosan",
                "decided_at": t + timedelta(minutes=10 * p + r),
                "kiosk_id": "k",
                "party_size": 3,
                "capacity": 15,
            }
            if p == parties - 1:
                out.append(CheckinDenied(**common, occupancy=12, reason="room_full"))
            else:
                out.append(CheckinAdmitted(**common, occupancy=3 * (p + 1), member_id=f"m-{p}"))
    return out


def settings_for(database_url: str, interval_ms: int) -> Settings:
    return Settings(database_url=database_url, statistics_publish_interval_ms=interval_ms)


async def fold(db: Database, statistics: UsageStatistics, records: list[Rec]) -> None:
    async with db.unit_of_work(statistics.group) as uow:
        await process_batch(uow, statistics.settings, statistics, records, {})
    statistics.committed()


async def fold_in_threes(db: Database, statistics: UsageStatistics, records: list[Rec]) -> None:
    for start in range(0, len(records), 3):
        await fold(db, statistics, records[start : start + 3])


async def aggregates(db: Database, topic: str) -> list[tuple[str, dict[str, object]]]:
    """(key, value) of each aggregate in the outbox, in order, without ``updated_at``."""
    async with db.session() as session:
        rows = await session.execute(
            select(OutboxRow.key, OutboxRow.value)
            .where(OutboxRow.topic == topic)
            .order_by(OutboxRow.id)
        )
        out = []
        for key, value in rows:
            data = json.loads(value)
            data.pop("updated_at")
            out.append((str(key), data))
        return out


def latest(sent: list[tuple[str, dict[str, object]]]) -> dict[str, dict[str, object]]:
    return dict(sent)


def decision_records() -> list[Rec]:
    """``decisions()`` as records of one partition of ``decisions``, offsets from 0."""
    return [Rec("decisions", i, d) for i, d in enumerate(decisions())]


async def reference(tmp_path: object, records: list[Rec]) -> dict[str, dict[str, object]]:
    """What a statistics consumer publishing every batch leaves on ``usage-monthly`` (on
    a SQLite file of its own, whichever database is under test)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/reference.db"
    db = Database(settings_for(url, 0))
    await db.migrate()
    try:
        statistics = UsageStatistics(settings_for(url, 0))
        for start in range(0, len(records), 3):
            await fold(db, statistics, records[start : start + 3])
            while statistics.more_to_write():  # as the loop does
                await fold(db, statistics, [])
            assert statistics.settled()
        return latest(await aggregates(db, statistics.settings.topics.usage_monthly))
    finally:
        await db.dispose()


async def test_a_backlog_publishes_each_aggregate_once_as_the_last_batch_left_it(
    db: Database, database_url: str, tmp_path: object
) -> None:
    records = decision_records()
    statistics = UsageStatistics(settings_for(database_url, 60_000))
    topic = statistics.settings.topics.usage_monthly
    for start in range(0, len(records), 3):
        await fold(db, statistics, records[start : start + 3])
        # Well inside the interval: states stored, nothing sent.
        assert await aggregates(db, topic) == []
        assert not statistics.settled()
    await fold(db, statistics, [])  # the loop, idle
    assert statistics.settled()
    sent = await aggregates(db, topic)
    keys = [key for key, _ in sent]
    assert len(keys) == len(set(keys)) == 4 + 1  # each room's November, and the center's
    assert latest(sent) == await reference(tmp_path, records)
    async with db.session() as session:
        stored = await session.scalar(select(ConsumerPositionRow.next_offset))
    assert stored == len(records)  # the positions went with the aggregates


async def test_a_crash_before_publishing_publishes_when_the_decisions_come_again(
    db: Database, database_url: str, tmp_path: object
) -> None:
    records = decision_records()
    first = UsageStatistics(settings_for(database_url, 60_000))
    topic = first.settings.topics.usage_monthly
    await fold_in_threes(db, first, records)
    assert not first.settled()  # the loop committed no offset to Kafka
    # The process dies. Its successor reads the decisions since the last committed
    # offset (all of them) again: each was counted, and none is counted twice, but each
    # room's and the center's aggregates go out.
    second = UsageStatistics(settings_for(database_url, 60_000))
    await fold_in_threes(db, second, records)
    await fold(db, second, [])
    assert second.settled()
    assert latest(await aggregates(db, topic)) == await reference(tmp_path, records)


async def test_under_steady_load_the_interval_publishes_what_the_batches_since_changed(
    db: Database, database_url: str
) -> None:
    records = decision_records()
    statistics = UsageStatistics(settings_for(database_url, 200))
    topic = statistics.settings.topics.usage_monthly
    await fold(db, statistics, records[:3])  # rooms 0-2 configured
    assert await aggregates(db, topic) == []
    await asyncio.sleep(0.25)
    await fold(db, statistics, records[3:6])  # room 3 configured, parties in rooms 0-1
    assert statistics.settled()
    sent = await aggregates(db, topic)
    # Both batches' changes, each aggregate once, though the second batch changed no
    # aggregate of room 2.
    assert sorted(key for key, _ in sent) == sorted(
        [f"room:seosan.club-{r}:2026-11" for r in range(4)] + ["center:seosan:2026-11"]
    )
    await fold(db, statistics, records[6:9])  # inside the next interval: held back
    assert len(await aggregates(db, topic)) == len(sent)
    assert not statistics.settled()


async def test_publishing_every_batch_when_the_interval_is_0(
    db: Database, database_url: str
) -> None:
    records = decision_records()
    statistics = UsageStatistics(settings_for(database_url, 0))
    await fold(db, statistics, records[:3])
    assert statistics.settled()
    assert len(await aggregates(db, statistics.settings.topics.usage_monthly)) == 3 + 1


async def test_a_large_publishing_goes_in_short_transactions_and_the_positions_with_the_last(
    db: Database, database_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that one writer at a time (SQLite) is not held long by the statistics: the kiosk
    path's batches wait for each short transaction, not for all of them."""
    monkeypatch.setattr(statistics_module, "AGGREGATES_PER_TRANSACTION", 2)
    records = decision_records()
    statistics = UsageStatistics(settings_for(database_url, 60_000))
    topic = statistics.settings.topics.usage_monthly
    await fold_in_threes(db, statistics, records)
    assert not statistics.more_to_write()  # nothing published inside the interval
    written = []
    await fold(db, statistics, [])  # the loop, idle: publishes the 5 aggregates
    written.append(len(await aggregates(db, topic)))
    while statistics.more_to_write():  # as the loop does, at once
        assert not statistics.settled()  # no offset goes to Kafka before the last one
        assert await stored_position(db) is None
        await fold(db, statistics, [])
        written.append(len(await aggregates(db, topic)))
    assert written == [2, 4, 5]
    assert statistics.settled()
    assert await stored_position(db) == len(records)
    sent = await aggregates(db, topic)
    assert len({key for key, _ in sent}) == len(sent)  # each once
    assert latest(sent) == await reference(tmp_path, records)


async def test_a_crash_between_the_transactions_of_a_publishing_sends_the_rest_later(
    db: Database, database_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics_module, "AGGREGATES_PER_TRANSACTION", 2)
    records = decision_records()
    first = UsageStatistics(settings_for(database_url, 60_000))
    topic = first.settings.topics.usage_monthly
    await fold_in_threes(db, first, records)
    await fold(db, first, [])
    assert first.more_to_write() and len(await aggregates(db, topic)) == 2
    # The process dies with 3 aggregates unwritten and no offset committed: its successor
    # reads every decision again, counts none twice, and publishes every aggregate.
    second = UsageStatistics(settings_for(database_url, 60_000))
    await fold_in_threes(db, second, records)
    await fold(db, second, [])
    while second.more_to_write():
        await fold(db, second, [])
    assert second.settled()
    assert latest(await aggregates(db, topic)) == await reference(tmp_path, records)


async def test_a_month_closed_between_the_transactions_of_a_publishing_stays_closed(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each transaction of a publishing checks the stored versions of the states it
    publishes (only those), so a room or center the month close wrote after the first
    transaction is read again: no aggregate goes out older than the close's final one."""
    monkeypatch.setattr(statistics_module, "AGGREGATES_PER_TRANSACTION", 2)
    records = decision_records()
    statistics = UsageStatistics(settings_for(database_url, 60_000))
    topic = statistics.settings.topics.usage_monthly
    await fold_in_threes(db, statistics, records)
    await fold(db, statistics, [])  # the loop, idle: 2 of the 5 aggregates
    assert statistics.more_to_write() and len(await aggregates(db, topic)) == 2
    closed_at = datetime(2026, 12, 2, tzinfo=UTC)
    assert await close_months(statistics.settings, db, "2026-11", closed_at) == 5
    while statistics.more_to_write():
        await fold(db, statistics, [])
    assert statistics.settled()
    sent = latest(await aggregates(db, topic))
    assert len(sent) == 4 + 1
    assert {key for key, value in sent.items() if not value["final"]} == set()


async def stored_position(db: Database) -> int | None:
    async with db.session() as session:
        return await session.scalar(select(ConsumerPositionRow.next_offset))
