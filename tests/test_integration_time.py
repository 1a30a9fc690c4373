"""Issue 7 on the real broker: time is the system's own, and no input goes unanswered.

- only the service's scheduler moves a room's clock, never past the authority's clock;
- two schedulers by mistake change nothing;
- a kiosk whose clock runs hours ahead is answered ``clock_skew``;
- an ``event_id`` reused for another input is dead-lettered, an exact re-send is not;
- a check-out or capacity change for an unknown room gets a decision.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from consumers.clock import tick_for
from infra import tick_signature
from infra.kafka import make_producer
from infra.settings import Settings
from producers.client import DecisionClient
from schemas.inputs import (
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    RoomCapacityChanged,
    RoomConfigured,
)
from tests.stack import produce, read_topic, running

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")


def now() -> datetime:
    return datetime.now(SEOUL)


def all_day_room(room_id: str) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room_id,
        center_id="seosan",
        name="Club room",
        capacity=15,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
    )


def walk_in(room_id: str, at: datetime | None = None) -> Checkin:
    return Checkin(
        event_id=uuid.uuid4(),
        occurred_at=at or now(),
        room_id=room_id,
        kiosk_id="kiosk-1",
        party_size=1,
    )


async def send_raw(
    settings: Settings,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """As any producer on the network could: no signature unless given one."""
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


def original(letter: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.b64decode(letter["original"]))
    return value


async def decisions_until(
    settings: Settings, caused_by: uuid.UUID, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The decisions topic, once the decision ``caused_by`` caused is on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        decisions = await read_topic(settings, settings.topics.decisions, expect=1)
        if any(d["caused_by"] == str(caused_by) for d in decisions) or loop.time() > deadline:
            return decisions
        await asyncio.sleep(0.2)


async def test_a_tick_from_anyone_else_or_from_the_future_moves_no_clock(
    stack_settings: Settings,
) -> None:
    """Finding 2: a tick two days ahead released tomorrow's booking as a no-show.

    Unsigned, forged (signed with another key), or signed by a scheduler whose clock runs
    two days ahead: each is dead-lettered with its reason, and the room's time stands.
    """
    room = "seosan.club-2"
    tomorrow = (now() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    booking = BookingRequested(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room,
        booking_id="b-tomorrow",
        member_id="m-1",
        party_size=4,
        starts_at=tomorrow,
        ends_at=tomorrow + timedelta(hours=2),
    )
    ahead = now() + timedelta(days=2)
    unsigned = ClockTick(event_id=uuid.uuid4(), occurred_at=ahead, room_id=room)
    forged = ClockTick(event_id=uuid.uuid4(), occurred_at=ahead, room_id=room)
    from_the_future = ClockTick(event_id=uuid.uuid4(), occurred_at=ahead, room_id=room)
    key = room.encode()
    capacity = stack_settings.topics.capacity
    other_secret = stack_settings.model_copy(update={"clock_secret": "not-the-service"})
    async with running(stack_settings, ("authority", "relay")):
        async with DecisionClient(stack_settings, rooms=[room]) as client:
            assert (await client.request(all_day_room(room))).type == "room.configured"
            assert (await client.request(booking)).type == "booking.confirmed"
            assert (await client.request(walk_in(room))).type == "checkin.admitted"
            unsigned_value = unsigned.model_dump_json().encode()
            await send_raw(stack_settings, capacity, key, unsigned_value)
            forged_value = forged.model_dump_json().encode()
            await send_raw(
                stack_settings,
                capacity,
                key,
                forged_value,
                tick_signature.headers_for(other_secret, key, forged_value),
            )
            future_value = from_the_future.model_dump_json().encode()
            await send_raw(
                stack_settings,
                capacity,
                key,
                future_value,
                tick_signature.headers_for(stack_settings, key, future_value),
            )
            after = await client.request(walk_in(room))
        letters = await read_topic(stack_settings, stack_settings.topics.dead_letters, expect=3)
        decisions = await read_topic(stack_settings, stack_settings.topics.decisions, expect=4)
    assert after.type == "checkin.admitted" and getattr(after, "occupancy", None) == 2
    assert [d["type"] for d in decisions] == [
        "room.configured",
        "booking.confirmed",
        "checkin.admitted",
        "checkin.admitted",
    ]
    reasons = {original(letter)["event_id"]: letter["reason"] for letter in letters}
    assert "signature" in reasons[str(unsigned.event_id)]
    assert "signature" in reasons[str(forged.event_id)]
    assert "ahead of the room authority's clock" in reasons[str(from_the_future.event_id)]
    assert len(letters) == 3


async def test_two_schedulers_by_mistake_release_a_no_show_once(
    stack_settings: Settings,
) -> None:
    """Two schedulers of the same service (same secret, clocks a second apart) tick the
    same room: the no-show is released once, and nothing else is decided."""
    settings = stack_settings.model_copy(update={"no_show_grace_minutes": 0})
    room = "seosan.club-3"
    starts = now() + timedelta(seconds=2)
    booking = BookingRequested(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room,
        booking_id="b-soon",
        member_id="m-1",
        party_size=2,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
    )
    async with running(settings, ("authority", "relay")):
        async with DecisionClient(settings, rooms=[room]) as client:
            await client.request(all_day_room(room))
            assert (await client.request(booking)).type == "booking.confirmed"
        await asyncio.sleep(max(0.0, (starts - now()).total_seconds()) + 0.5)
        at = now()
        interval = settings.clock_interval_s
        first = [tick_for(room, at, interval), tick_for(room, at, interval)]
        second = [tick_for(room, at - timedelta(seconds=1), interval), tick_for(room, at, 1.0)]
        await asyncio.gather(produce(settings, first), produce(settings, second))
        marker = walk_in(room)
        await produce(settings, [marker])
        decisions = await decisions_until(settings, marker.event_id)
        letters = await read_topic(settings, settings.topics.dead_letters)
    assert [d["type"] for d in decisions] == [
        "room.configured",
        "booking.confirmed",
        "booking.released",
        "checkin.admitted",
    ]
    assert letters == []


async def test_a_kiosk_clock_hours_ahead_is_answered_clock_skew(
    stack_settings: Settings,
) -> None:
    """Finding (kiosk clock): a check-in stamped three hours ahead was judged at that
    time (admitted into a later hour); it is denied ``clock_skew`` now, and answered."""
    room = "seosan.club-4"
    async with (
        running(stack_settings, ("authority", "relay")),
        DecisionClient(stack_settings, rooms=[room]) as kiosk,
    ):
        await kiosk.request(all_day_room(room))
        skewed = await kiosk.request(walk_in(room, now() + timedelta(hours=3)))
        fine = await kiosk.request(walk_in(room, now() + timedelta(seconds=2)))
    assert (skewed.type, getattr(skewed, "reason", None)) == ("checkin.denied", "clock_skew")
    assert getattr(skewed, "occupancy", None) == 0
    assert fine.type == "checkin.admitted"


async def test_an_event_id_reused_for_another_input_is_dead_lettered_not_skipped(
    stack_settings: Settings,
) -> None:
    """Finding 6: the reuse was skipped with an INFO line. Now it is a dead letter with
    where the id was first used; an exact re-send (a kiosk retry) stays silent."""
    room = "seosan.club-5"
    checkin = walk_in(room)
    reuse = Checkout(
        event_id=checkin.event_id,
        occurred_at=now(),
        room_id=room,
        kiosk_id="kiosk-2",
        party_size=1,
    )
    async with running(stack_settings, ("authority", "relay")):
        async with DecisionClient(stack_settings, rooms=[room]) as kiosk:
            await kiosk.request(all_day_room(room))
            assert (await kiosk.request(checkin)).type == "checkin.admitted"
        # The same input again, re-encoded (a retry), then the same id on another input.
        await produce(stack_settings, [checkin, reuse])
        await send_raw(
            stack_settings,
            stack_settings.topics.checkins,
            room.encode(),
            json.dumps(json.loads(checkin.model_dump_json()), indent=2).encode(),
        )
        marker = walk_in(room)
        await produce(stack_settings, [marker])
        decisions = await decisions_until(stack_settings, marker.event_id)
        letters = await read_topic(stack_settings, stack_settings.topics.dead_letters, expect=1)
    assert [d["caused_by"] for d in decisions].count(str(checkin.event_id)) == 1
    assert decisions[-1]["type"] == "checkin.admitted" and decisions[-1]["occupancy"] == 2
    assert len(letters) == 1
    assert original(letters[0])["type"] == "checkout"
    assert "already used for a different input" in letters[0]["reason"]
    assert f"{stack_settings.topics.checkins}[" in letters[0]["reason"]


async def test_checkout_and_capacity_change_of_an_unknown_room_get_a_decision(
    stack_settings: Settings,
) -> None:
    """Finding 6: they were dead-lettered and the kiosk waited for an answer."""
    room = "seosan.nowhere"
    checkout = Checkout(
        event_id=uuid.uuid4(), occurred_at=now(), room_id=room, kiosk_id="k-1", party_size=2
    )
    change = RoomCapacityChanged(
        event_id=uuid.uuid4(), occurred_at=now(), room_id=room, capacity=10, reason="repairs"
    )
    async with (
        running(stack_settings, ("authority", "relay")),
        DecisionClient(stack_settings, rooms=[room]) as client,
    ):
        out = await client.request(checkout, timeout=5.0, attempts=1)
        changed = await client.request(change, timeout=5.0, attempts=1)
    assert (out.type, getattr(out, "reason", None)) == ("checkout.rejected", "unknown_room")
    assert (changed.type, getattr(changed, "reason", None)) == (
        "capacity.rejected",
        "unknown_room",
    )
    assert getattr(changed, "capacity", None) == 10
    assert await read_topic(stack_settings, stack_settings.topics.dead_letters) == []
