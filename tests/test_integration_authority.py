"""Issue 3 on the real broker: capacity, sessions, redelivery and dead letters.

Each test runs the room authority, the relay (and the statistics) in-process
against the broker that ``infra/`` started, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from infra import tick_signature
from infra.kafka import make_producer
from infra.settings import Settings
from producers.client import DecisionClient
from schemas.inputs import (
    BookingRequested,
    Checkin,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomConfigured,
    SessionScheduled,
)
from tests.stack import produce, read_topic, running

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")


def now() -> datetime:
    return datetime.now(SEOUL)


def club_room(room_id: str, capacity: int = 15) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room_id,
        center_id="seosan",
        name="동아리방 1 (Club room 1)",
        capacity=capacity,
        booking_mode="exclusive",
        opens="00:00",
        closes="24:00",
    )


def walk_in(room_id: str, kiosk: str) -> Checkin:
    return Checkin(
        event_id=uuid.uuid4(), occurred_at=now(), room_id=room_id, kiosk_id=kiosk, party_size=1
    )


async def test_twenty_checkins_from_two_kiosks_admit_exactly_fifteen(
    stack_settings: Settings,
) -> None:
    room = "seosan.club-1"
    async with running(stack_settings, ("authority", "relay")):
        async with DecisionClient(stack_settings, rooms=[room]) as admin:
            configured = await admin.request(club_room(room))
            assert configured.type == "room.configured"
        async with (
            DecisionClient(stack_settings, rooms=[room]) as kiosk_a,
            DecisionClient(stack_settings, rooms=[room]) as kiosk_b,
        ):
            requests = [kiosk_a.request(walk_in(room, "kiosk-a")) for _ in range(10)]
            requests += [kiosk_b.request(walk_in(room, "kiosk-b")) for _ in range(10)]
            decisions = await asyncio.gather(*requests)

    outcome = Counter(d.type for d in decisions)
    assert outcome == {"checkin.admitted": 15, "checkin.denied": 5}
    denied = [d for d in decisions if d.type == "checkin.denied"]
    assert {getattr(d, "reason", None) for d in denied} == {"room_full"}
    assert max(getattr(d, "occupancy", 0) for d in decisions) == 15
    # The occupancy topic (the room's latest figure after each batch) ends at 15 of 15.
    occupancy = await read_topic(stack_settings, stack_settings.topics.occupancy, expect=2)
    for _ in range(20):
        if occupancy[-1]["occupancy"] == 15:
            break
        occupancy = await read_topic(stack_settings, stack_settings.topics.occupancy, expect=2)
    assert occupancy[-1]["occupancy"] == 15 and occupancy[-1]["capacity"] == 15
    assert all(a["occupancy"] <= b["occupancy"] for a, b in itertools.pairwise(occupancy))


async def test_session_of_twenty_with_twenty_five_enrollments_and_a_promotion(
    stack_settings: Settings,
) -> None:
    room = "gwangju.cityhall-2"
    starts = (now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    async with (
        running(stack_settings, ("authority", "relay")),
        DecisionClient(stack_settings, rooms=[room]) as client,
    ):
        await client.request(club_room(room, capacity=30))
        scheduled = await client.request(
            SessionScheduled(
                event_id=uuid.uuid4(),
                occurred_at=now(),
                room_id=room,
                session_id="village-edu-1",
                title="마을교육 (Village education)",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
                capacity=20,
            )
        )
        assert scheduled.type == "session.scheduled"
        enrollments = [
            EnrollmentRequested(
                event_id=uuid.uuid4(),
                occurred_at=now(),
                room_id=room,
                session_id="village-edu-1",
                member_id=f"m-{i:04d}",
            )
            for i in range(25)
        ]
        # Sent one after another: seats are first come, first served.
        answers = [await client.request(e) for e in enrollments]
        outcome = Counter(a.type for a in answers)
        assert outcome == {"enrollment.confirmed": 20, "enrollment.waitlisted": 5}
        assert [a.type for a in answers[:20]] == ["enrollment.confirmed"] * 20

        cancel = EnrollmentCancelRequested(
            event_id=uuid.uuid4(),
            occurred_at=now(),
            room_id=room,
            session_id="village-edu-1",
            member_id="m-0003",
        )
        cancelled = await client.request(cancel)
        assert cancelled.type == "enrollment.cancelled"
        caused = await client.wait_for_consequences(cancel.event_id, 2, timeout=10)
    promoted = [d for d in caused if d.type == "enrollment.promoted"]
    assert len(promoted) == 1
    assert getattr(promoted[0], "member_id", None) == "m-0020"  # the oldest waitlisted
    assert len(caused) == 2


async def test_redelivered_inputs_are_decided_once(stack_settings: Settings) -> None:
    room = "seosan.club-2"
    configure = club_room(room)
    checkins = [walk_in(room, "kiosk-r") for _ in range(5)]
    async with running(stack_settings, ("authority", "relay")):
        # Every input sent three times: a kiosk retrying with the same event_id.
        await produce(stack_settings, [configure, configure, configure])
        await produce(stack_settings, checkins * 3)
        decisions = await read_topic(stack_settings, stack_settings.topics.decisions, expect=6)
        await asyncio.sleep(1.0)  # any duplicate would have been published by now
        decisions = await read_topic(stack_settings, stack_settings.topics.decisions, expect=6)
    per_input = Counter(d["caused_by"] for d in decisions)
    assert len(decisions) == 6
    assert set(per_input.values()) == {1}
    assert max(d.get("occupancy", 0) for d in decisions) == 5


async def test_unreadable_input_goes_to_dead_letters_and_processing_goes_on(
    stack_settings: Settings,
) -> None:
    room = "seosan.bookcafe"
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        topic = stack_settings.topics.checkins
        await producer.send_and_wait(topic, key=room.encode(), value=b"{not json")
        await producer.send_and_wait(
            topic,
            key=room.encode(),
            value=b'{"type": "checkin", "event_id": "x", "room_id": "seosan.bookcafe"}',
        )
        await producer.send_and_wait(
            topic, key=b"another-room", value=walk_in(room, "k").model_dump_json().encode()
        )
    finally:
        await producer.stop()
    await produce(stack_settings, [club_room(room), walk_in(room, "kiosk-1")])
    async with running(stack_settings, ("authority", "relay")):
        letters = await read_topic(stack_settings, stack_settings.topics.dead_letters, expect=3)
        decisions = await read_topic(stack_settings, stack_settings.topics.decisions, expect=2)
    assert len(letters) == 3
    originals = {base64.b64decode(letter["original"]) for letter in letters}
    assert b"{not json" in originals
    assert all(letter["topic"] == stack_settings.topics.checkins for letter in letters)
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "contract violation" in reasons and "does not match room_id" in reasons
    assert [d["type"] for d in decisions] == ["room.configured", "checkin.admitted"]


async def test_poison_times_are_dead_lettered_naming_the_field_and_the_room_goes_on(
    stack_settings: Settings,
) -> None:
    """Issue 7, finding 1: a year-9999 booking, a year-1 check-in and a year-1 tick raised
    ``OverflowError`` inside the rules (then: dead-lettered as "could not be decided", or
    decided). They are contract violations now, refused at the edge with the field named,
    and the room goes on."""
    room = "seosan.allday"
    ancient = walk_in(room, "k").model_dump(mode="json") | {
        "occurred_at": "0001-01-01T00:00:00+09:00"
    }
    far_future = BookingRequested(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room,
        booking_id="b-9999",
        member_id="m-1",
        party_size=2,
        starts_at=now() + timedelta(days=1),
        ends_at=now() + timedelta(days=1, hours=2),
    ).model_dump(mode="json") | {
        "starts_at": "9999-12-31T20:00:00+09:00",
        "ends_at": "9999-12-31T22:00:00+09:00",
    }
    tick = {
        "type": "clock.tick",
        "event_id": str(uuid.uuid4()),
        "occurred_at": "0001-01-01T00:00:00+09:00",
        "room_id": room,
    }
    topics = stack_settings.topics
    await produce(stack_settings, [club_room(room)])
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        for topic, value in (
            (topics.checkins, ancient),
            (topics.bookings, far_future),
            (topics.capacity, tick),
        ):
            data = json.dumps(value).encode()
            await producer.send_and_wait(
                topic,
                key=room.encode(),
                value=data,
                headers=tick_signature.headers_for(stack_settings, room.encode(), data),
            )
    finally:
        await producer.stop()
    after = walk_in(room, "kiosk-1")
    await produce(stack_settings, [after])
    async with running(stack_settings, ("authority", "relay")):
        for _ in range(30):  # until the walk-in after the poison is answered
            decisions = await read_topic(stack_settings, topics.decisions, expect=2)
            by_cause = {d["caused_by"]: d for d in decisions}
            if str(after.event_id) in by_cause:
                break
        letters = await read_topic(stack_settings, topics.dead_letters, expect=3)
    reasons = {
        json.loads(base64.b64decode(letter["original"]))["event_id"]: letter["reason"]
        for letter in letters
    }
    assert reasons.keys() == {ancient["event_id"], far_future["event_id"], tick["event_id"]}
    assert "occurred_at" in reasons[ancient["event_id"]]
    assert "starts_at" in reasons[far_future["event_id"]]
    assert "occurred_at" in reasons[tick["event_id"]]
    assert all(r.startswith("contract violation") and "2000-2100" in r for r in reasons.values())
    assert [d["type"] for d in decisions] == ["room.configured", "checkin.admitted"]
    assert by_cause[str(after.event_id)]["type"] == "checkin.admitted"


async def test_a_kiosk_retry_is_answered_once(stack_settings: Settings) -> None:
    room = "seosan.office"
    await produce(stack_settings, [club_room(room)])
    checkin = walk_in(room, "kiosk-offline")
    async with DecisionClient(stack_settings, rooms=[room]) as kiosk:
        # Nobody decides yet: the kiosk times out and sends the same event again.
        pending = asyncio.create_task(kiosk.request(checkin, timeout=1.0, attempts=20))
        sent = await read_topic(stack_settings, stack_settings.topics.checkins, expect=2)
        assert len(sent) >= 2 and {s["event_id"] for s in sent} == {str(checkin.event_id)}
        async with running(stack_settings, ("authority", "relay")):
            answer = await pending
            decisions = await read_topic(stack_settings, stack_settings.topics.decisions, expect=2)
    assert answer.type == "checkin.admitted"
    assert [d["caused_by"] for d in decisions].count(str(checkin.event_id)) == 1
    assert len(decisions) == 2
