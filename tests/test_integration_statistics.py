"""Issue 4 on the real broker: decisions in, ``usage-monthly`` out, read as a dashboard team would.

Also: a redelivered decision is counted once, a month close publishes ``final``,
and ``spaces replay`` rebuilds the room authority's state from the log.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer

from consumers.statistics import close_months
from entrypoints.replay import replay
from infra.db import Database
from infra.kafka import make_producer
from infra.settings import Settings
from schemas.decisions import (
    BookingConfirmed,
    CheckinAdmitted,
    CheckinDenied,
    Decision,
    RoomConfiguredDecision,
)
from schemas.inputs import Checkin, RoomConfigured
from tests.stack import produce, read_topic, running, wait_for

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
ROOM = "seosan.club-1"


def decision_log() -> list[Decision]:
    """November in Seoul: a room, a booking of 3 h, two admitted parties, one denial."""
    t = datetime(2026, 11, 10, 9, 0, tzinfo=SEOUL)
    common = {"room_id": ROOM, "center_id": "seosan", "decided_at": t}
    return [
        RoomConfiguredDecision(
            **common,
            event_id=uuid.uuid4(),
            caused_by=uuid.uuid4(),
            name="Club room 1",
            capacity=15,
            booking_mode="exclusive",
            opens="09:00",
            closes="22:00",
            timezone="Asia/Seoul",
        ),
        BookingConfirmed(
            **common,
            event_id=uuid.uuid4(),
            caused_by=uuid.uuid4(),
            booking_id="b-1",
            member_id="m-0001",
            party_size=8,
            starts_at=t + timedelta(hours=2),
            ends_at=t + timedelta(hours=5),
        ),
        CheckinAdmitted(
            **common,
            event_id=uuid.uuid4(),
            caused_by=uuid.uuid4(),
            kiosk_id="k",
            party_size=8,
            occupancy=8,
            capacity=15,
            member_id="m-0001",
            booking_id="b-1",
        ),
        CheckinAdmitted(
            **common,
            event_id=uuid.uuid4(),
            caused_by=uuid.uuid4(),
            kiosk_id="k",
            party_size=5,
            occupancy=13,
            capacity=15,
            member_id="m-0002",
        ),
        CheckinDenied(
            **common,
            event_id=uuid.uuid4(),
            caused_by=uuid.uuid4(),
            kiosk_id="k",
            party_size=4,
            occupancy=13,
            capacity=15,
            reason="room_full",
        ),
    ]


async def consume_usage(settings: Settings, expect_key: str, final: bool) -> dict[str, object]:
    """A plain aiokafka consumer in a group of its own, as a dashboard team would write it."""
    consumer = AIOKafkaConsumer(
        settings.topics.usage_monthly,
        bootstrap_servers=settings.bootstrap,
        group_id=f"dashboard-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # the relay writes in transactions
    )
    await consumer.start()
    latest: dict[str, dict[str, object]] = {}
    try:
        async with __import__("asyncio").timeout(60):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        latest[record.key.decode()] = json.loads(record.value)
                value = latest.get(expect_key)
                if value is not None and value["final"] is final and value["visits"] == 13:
                    return value
    finally:
        await consumer.stop()


async def test_decisions_in_usage_monthly_out(stack_settings: Settings) -> None:
    log = decision_log()
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        # Every decision delivered twice: it must be counted once.
        for decision in [*log, *log]:
            await producer.send_and_wait(
                stack_settings.topics.decisions,
                key=decision.room_id.encode(),
                value=decision.model_dump_json().encode(),
            )
    finally:
        await producer.stop()

    async with running(stack_settings, ("statistics", "relay")):
        room = await consume_usage(stack_settings, f"room:{ROOM}:2026-11", final=False)
        center = await consume_usage(stack_settings, "center:seosan:2026-11", final=False)
        db = Database(stack_settings)
        await close_months(stack_settings, db, "2026-11", datetime(2026, 12, 1, 0, 5, tzinfo=SEOUL))
        await db.dispose()
        closed = await consume_usage(stack_settings, f"room:{ROOM}:2026-11", final=True)

    assert room["scope"] == "room" and room["id"] == ROOM and room["month"] == "2026-11"
    assert room["visits"] == 13
    assert room["checkins_denied"] == 1
    assert room["bookings_confirmed"] == 1
    assert room["booked_hours"] == 3.0
    assert room["open_hours"] == 21 * 13  # configured on the 10th: 21 days of 09:00-22:00
    assert room["utilization"] == round(3.0 / (21 * 13), 4)
    assert room["unique_members"] == 2
    assert room["peak_occupancy"] == 13
    assert room["final"] is False
    assert center["scope"] == "center" and center["visits"] == 13
    assert closed["final"] is True and closed["visits"] == 13


async def test_replay_rebuilds_the_live_state(stack_settings: Settings, tmp_path: object) -> None:
    now = datetime.now(SEOUL)
    rooms = [
        RoomConfigured(
            event_id=uuid.uuid4(),
            occurred_at=now,
            room_id=f"jeonju.shared-{i}",
            center_id="jeonju",
            name=f"Shared space {i}",
            capacity=6,
            booking_mode="shared",
            opens="00:00",
            closes="24:00",
        )
        for i in range(3)
    ]
    checkins = [
        Checkin(
            event_id=uuid.uuid4(),
            occurred_at=now,
            room_id=rooms[i % 3].room_id,
            kiosk_id="kiosk-1",
            party_size=1 + i % 3,
        )
        for i in range(30)
    ]
    async with running(stack_settings, ("authority", "relay")):
        await produce(stack_settings, rooms)
        await produce(stack_settings, checkins)
        await read_topic(stack_settings, stack_settings.topics.decisions, expect=33)

        async def all_published() -> bool:
            return len(await read_topic(stack_settings, stack_settings.topics.decisions)) >= 33

        await wait_for(all_published)
    from pathlib import Path

    report = await replay(stack_settings, Path(str(tmp_path)) / "rebuilt.db")
    assert report.decisions == 33
    assert report.rooms_rebuilt == 3 and report.rooms_live == 3
    assert report.matches, report.summary()
