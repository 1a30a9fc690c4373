"""Booking ids are never reused, across the room's forgetting and across owners (issue 9, 5).

``RoomAuthority`` + ``process_batch`` on a real database (SQLite, and PostgreSQL when
configured), without Kafka: the ids a room answered are kept apart from its state, read
once per batch and written with it. Also the split of the early-arrival setting (8b).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from consumers.authority import RoomAuthority, policy_from
from domain.capacity import KEEP_HISTORY
from infra.db import BookingIdRow, Database, OutboxRow
from infra.settings import Settings, Topics
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    ClockTick,
    RoomConfigured,
)
from service_layer.processing import Record, process_batch
from tests.records import Rec

NOW = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 09:00 in Seoul


def configured(at: datetime) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=at,
        room_id="r1",
        center_id="seosan",
        name="Club room",
        capacity=15,
        booking_mode="exclusive",
        opens="09:00",
        closes="22:00",
    )


def request(booking_id: str, starts: datetime, hours: int = 1) -> BookingRequested:
    return BookingRequested(
        event_id=uuid.uuid4(),
        occurred_at=starts,
        room_id="r1",
        booking_id=booking_id,
        member_id="m1",
        party_size=2,
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
    )


async def decide(db: Database, authority: RoomAuthority, events: list[AnyInput]) -> list[str]:
    """Decide one batch; the decisions it published, as ``type:reason``."""
    topics = Topics()
    topic = {"room.configured": topics.capacity, "clock.tick": topics.capacity}
    records: list[Record] = [
        Rec(topic.get(event.type, topics.bookings), n, event) for n, event in enumerate(events)
    ]
    async with db.session() as session:
        before = await session.scalar(select(OutboxRow.id).order_by(OutboxRow.id.desc()))
    async with db.unit_of_work(authority.group) as uow:
        await process_batch(uow, authority.settings, authority, records, {})
    authority.committed()
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxRow.value)
            .where(OutboxRow.topic == topics.decisions, OutboxRow.id > (before or 0))
            .order_by(OutboxRow.id)
        )
        decisions = [json.loads(value) for value in rows]
    return [f"{d['type']}:{d['reason']}" if "reason" in d else d["type"] for d in decisions]


async def test_a_booking_id_is_a_duplicate_after_the_room_forgot_the_booking(
    db: Database,
) -> None:
    at = NOW
    authority = RoomAuthority(db.settings, clock=lambda: at)
    starts = NOW + timedelta(hours=1)
    assert await decide(db, authority, [configured(at), request("b1", starts)]) == [
        "room.configured",
        "booking.confirmed",
    ]
    at = starts + timedelta(hours=1) + KEEP_HISTORY + timedelta(minutes=1)
    await decide(db, authority, [ClockTick(event_id=uuid.uuid4(), occurred_at=at, room_id="r1")])
    room = authority.rooms["r1"]
    assert room is not None and "b1" not in room.bookings  # the state forgot it
    again = request("b1", at + timedelta(hours=1))
    assert await decide(db, authority, [again]) == ["booking.rejected:duplicate_booking_id"]
    # Another owner (after a rebalance) reads the room afresh: still a duplicate.
    other = RoomAuthority(db.settings, clock=lambda: at)
    once_more = request("b1", at + timedelta(hours=2))
    assert await decide(db, other, [once_more]) == ["booking.rejected:duplicate_booking_id"]


async def test_a_rejected_booking_id_is_answered_too_even_in_the_same_batch(
    db: Database,
) -> None:
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    late_night = NOW + timedelta(hours=14)  # 23:00 in Seoul: the room is closed
    decisions = await decide(
        db,
        authority,
        [
            configured(NOW),
            request("b1", late_night),
            request("b1", NOW + timedelta(hours=2)),
            request("b2", NOW + timedelta(hours=3)),
        ],
    )
    assert decisions == [
        "room.configured",
        "booking.rejected:outside_opening_hours",
        "booking.rejected:duplicate_booking_id",
        "booking.confirmed",
    ]
    later = await decide(db, authority, [request("b1", NOW + timedelta(hours=5))])
    assert later == ["booking.rejected:duplicate_booking_id"]


async def test_a_request_for_a_room_not_configured_answers_no_id(db: Database) -> None:
    """``unknown_room`` answers nothing about the id: the room may be configured later."""
    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    starts = NOW + timedelta(hours=2)
    assert await decide(db, authority, [request("b1", starts)]) == ["booking.rejected:unknown_room"]
    assert await decide(db, authority, [configured(NOW), request("b1", starts)]) == [
        "room.configured",
        "booking.confirmed",
    ]


def test_early_arrival_and_the_no_show_grace_are_two_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = policy_from(Settings(early_arrival_minutes=5, no_show_grace_minutes=30))
    assert (policy.early_arrival, policy.no_show_grace) == (
        timedelta(minutes=5),
        timedelta(minutes=30),
    )
    # The old variable still sets the grace period, and only it.
    monkeypatch.setenv("SPACES_NO_SHOW_GRACE_MINUTES", "25")
    policy = policy_from(Settings())
    assert (policy.early_arrival, policy.no_show_grace) == (
        timedelta(minutes=15),
        timedelta(minutes=25),
    )
    monkeypatch.setenv("SPACES_EARLY_ARRIVAL_MINUTES", "10")
    assert policy_from(Settings()).early_arrival == timedelta(minutes=10)


async def test_the_decisions_log_rebuilds_the_booking_ids_answered(db: Database) -> None:
    """What ``spaces replay`` compares: the ids rebuilt from the log are the table's."""
    from entrypoints.replay import ReplayReport, rebuild

    authority = RoomAuthority(db.settings, clock=lambda: NOW)
    starts = NOW + timedelta(hours=2)
    cancel = BookingCancelRequested(
        event_id=uuid.uuid4(), occurred_at=NOW, room_id="r1", booking_id="b9", member_id="m1"
    )
    await decide(db, authority, [request("early", starts)])  # unknown room: no id
    await decide(
        db,
        authority,
        [
            configured(NOW),
            request("b1", starts),
            request("b2", starts),  # overlap: rejected, answered
            request("b1", starts + timedelta(hours=3)),  # duplicate
            BookingRequested.model_validate(
                request("b3", starts).model_dump() | {"ends_at": starts}
            ),  # invalid: answered
        ],
    )
    assert await decide(db, authority, [cancel]) == ["booking.rejected:unknown_booking"]
    async with db.session() as session:
        values = list(await session.scalars(select(OutboxRow.value)))
        stored = set(
            (await session.execute(select(BookingIdRow.room_id, BookingIdRow.booking_id))).all()
        )
    answered: set[tuple[str, str]] = set()
    rebuild([value.encode() for value in values], ReplayReport(), answered)
    assert stored == {("r1", "b1"), ("r1", "b2"), ("r1", "b3")}
    assert answered == stored
