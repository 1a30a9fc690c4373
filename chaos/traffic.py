"""The chaos traffic: mixed inputs whose decisions do not depend on timing, only on inputs.

Decisions are made at each input's ``occurred_at`` (``SPACES_DECIDE_AT=event``), and a
room's inputs on one topic are decided in offset order. Across its three topics the room
authority orders them by record timestamp, but only as well as it can: after a crash, a
rebalance or a broker failure it may take a record of one topic before an older one of
another it has not fetched yet (``TimeAlignedBuffer`` waits at most a second). So the
traffic is built so that what a room's inputs on different topics decide never depends on
their order:

- **kiosk rooms** (open around the clock): check-ins and check-outs, and booking requests
  and cancels for days at least ``FUTURE_DAYS`` ahead, far beyond the walk-in look-ahead
  (a day), so bookings and check-ins never meet; no capacity change, so every check-in's
  ``capacity`` is the configured one;
- **capacity rooms**: booking requests and cancels and capacity changes between a low and
  a high capacity, and only requests whose answer is the same under both capacities (fits
  the low one, or overflows the high one), so the confirmed bookings always fit the low
  capacity and a capacity change never lists a conflict;
- **hours rooms** (09:00-22:00): bookings only, some outside the opening hours;
- **unknown rooms**, never configured: every input answered ``unknown_room``;
- a few **unreadable** records (not JSON), dead-lettered by position;
- **clock ticks** for any configured room (``TICK_SHARE`` of the inputs), signed as the
  service's scheduler signs them: the clock ticks only the rooms due, and none of these rooms
  is due during a run (no closing, no no-show, nothing two days old), so the driver ticks
  them as the clock did every ``SPACES_CLOCK_INTERVAL_S`` before. They decide nothing, and
  each must still go through crashes and rebalances without changing anything.

Every room is configured before any other input is sent (the driver waits for the
``room.configured`` decisions). Booking ids are never reused and bookings never cross a
midnight, so the rules issue 9 is changing (booking ids, overnight rooms, the arrival
window) are not exercised. Kiosk and front-end retries re-send an input's exact bytes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from chaos.reference import Booking as ModelBooking
from chaos.reference import InputTopics, Landed, booking_problem
from chaos.reference import Room as ModelRoom
from infra.kafka import encode, partition_for
from producers.client import record_timestamp_ms
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    RoomCapacityChanged,
    RoomConfigured,
)

TIMEZONE = "Asia/Seoul"
ROOMS_PER_CENTER = 20
FUTURE_DAYS = (3, 40)
"""Bookings of kiosk rooms start this many local days after the run's first day."""
MEMBERS = 3000
UNKNOWN_ROOMS = 5
TICK_SHARE = 0.05
"""Of the inputs: signed clock ticks (about what the clock sent when it ticked every room)."""
Signer = Callable[[bytes, bytes], list[tuple[str, bytes]]]
"""The scheduler's signature headers for a record's key and value."""
Role = Literal["capacity", "bookings", "checkins"]
Kind = Literal["kiosk", "capacity", "hours"]


@dataclass(frozen=True)
class Outgoing:
    """One record to send: the topic's role, key, exact bytes and record timestamp."""

    role: Role
    key: bytes
    value: bytes
    timestamp_ms: int
    event_id: str | None
    """None for an unreadable record."""
    kind: str
    retryable: bool = False
    """Whether the sender retries it (a kiosk or a front end that got no answer)."""
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class RoomPlan:
    room_id: str
    center_id: str
    kind: Kind
    capacity: int
    booking_mode: Literal["exclusive", "shared"]
    opens: str
    closes: str
    other_capacity: int = 0
    """Capacity rooms: the capacity the next change sets (low and high alternate)."""


def plan_rooms(count: int, seed: int) -> list[RoomPlan]:
    """``count`` rooms in centers of 20: 70 % kiosk rooms, 15 % capacity, 15 % hours."""
    rng = random.Random(seed)
    plans = []
    for i in range(count):
        center = f"chaos-c{i // ROOMS_PER_CENTER + 1:03d}"
        room_id = f"{center}.r{i % ROOMS_PER_CENTER + 1:02d}"
        roll = rng.random()
        mode: Literal["exclusive", "shared"] = "exclusive" if rng.random() < 0.3 else "shared"
        if roll < 0.70:
            capacity = rng.choice((4, 6, 8, 10, 12, 15))
            plans.append(RoomPlan(room_id, center, "kiosk", capacity, mode, "00:00", "24:00"))
        elif roll < 0.85:
            low = rng.randint(6, 12)
            high = low + rng.randint(3, 8)
            hours = ("09:00", "22:00") if rng.random() < 0.5 else ("00:00", "24:00")
            plans.append(RoomPlan(room_id, center, "capacity", low, mode, *hours, high))
        else:
            capacity = rng.choice((6, 10, 15, 20))
            plans.append(RoomPlan(room_id, center, "hours", capacity, mode, "09:00", "22:00"))
    return plans


def unknown_rooms() -> list[str]:
    return [f"chaos-unknown.r{i + 1:02d}" for i in range(UNKNOWN_ROOMS)]


def outgoing(event: AnyInput, role: Role, retryable: bool) -> Outgoing:
    return Outgoing(
        role=role,
        key=event.room_id.encode(),
        value=encode(event.model_dump(mode="json")),
        timestamp_ms=record_timestamp_ms(event),
        event_id=str(event.event_id),
        kind=event.type,
        retryable=retryable,
    )


def configurations(plans: list[RoomPlan], at: datetime) -> list[Outgoing]:
    return [
        outgoing(
            RoomConfigured(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=plan.room_id,
                center_id=plan.center_id,
                name=f"Chaos {plan.kind} room {plan.room_id}",
                capacity=plan.capacity,
                booking_mode=plan.booking_mode,
                opens=plan.opens,
                closes=plan.closes,
                timezone=TIMEZONE,
            ),
            "capacity",
            retryable=False,
        )
        for plan in plans
    ]


@dataclass
class _RoomState:
    plan: RoomPlan
    inside: int = 0
    """Kiosk rooms: persons inside as the generator expects (for a realistic mix)."""
    requested: list[tuple[str, str]] = field(default_factory=list)
    """(booking_id, member_id) of every booking requested."""
    model: ModelRoom | None = None
    """Capacity rooms: the bookings confirmed, exactly (their answers never depend on the
    capacity in force, so the order of capacity changes cannot change them)."""


class Traffic:
    """A seeded stream of mixed inputs (see the module docstring for the mix)."""

    def __init__(
        self, plans: list[RoomPlan], seed: int, start: datetime, sign: Signer | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.sign = sign
        """Signs clock ticks; None: no ticks in the traffic."""
        self.rooms = [_RoomState(plan) for plan in plans]
        for state in self.rooms:
            if state.plan.kind == "capacity":
                plan = state.plan
                state.model = ModelRoom(
                    plan.room_id,
                    plan.center_id,
                    plan.room_id,
                    plan.capacity,
                    plan.booking_mode,
                    plan.opens,
                    plan.closes,
                    TIMEZONE,
                )
        self.unknown = unknown_rooms()
        self.first_day = start.astimezone(ZoneInfo(TIMEZONE)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.last: datetime = start
        self.bookings = 0

    def _now(self, now: datetime) -> datetime:
        """Strictly increasing times: a room's inputs never share an instant."""
        self.last = max(now, self.last + timedelta(microseconds=1))
        return self.last

    def next(self, now: datetime) -> Outgoing:
        at = self._now(now)
        roll = self.rng.random()
        if roll < 0.001:
            return self._unreadable(at)
        if roll < 0.011:
            return self._unknown_room(at)
        if self.sign is not None and roll < 0.011 + TICK_SHARE:
            return self._tick(at)
        state = self.rooms[self.rng.randrange(len(self.rooms))]
        if state.plan.kind == "kiosk":
            if self.rng.random() < 0.8:
                return self._kiosk(state, at)
            return self._booking_traffic(state, at)
        if state.plan.kind == "capacity":
            made = self._capacity_traffic(state, at)
            if made is not None:
                return made
            return self._change_capacity(state, at)
        return self._booking_traffic(state, at)

    def _any_room(self) -> str:
        return self.rooms[self.rng.randrange(len(self.rooms))].plan.room_id

    def _member(self) -> str:
        return f"m-{self.rng.randrange(MEMBERS):04d}"

    def _unreadable(self, at: datetime) -> Outgoing:
        room = self._any_room()
        return Outgoing(
            role="checkins",
            key=room.encode(),
            value=b"chaos: this is not JSON {",
            timestamp_ms=int(at.timestamp() * 1000),
            event_id=None,
            kind="unreadable",
        )

    def _tick(self, at: datetime) -> Outgoing:
        assert self.sign is not None
        room = self._any_room()
        tick = outgoing(
            ClockTick(event_id=uuid.uuid4(), occurred_at=at, room_id=room), "capacity", False
        )
        return replace(tick, headers=tuple(self.sign(tick.key, tick.value)))

    def _unknown_room(self, at: datetime) -> Outgoing:
        room = self.rng.choice(self.unknown)
        member = self._member()
        roll = self.rng.random()
        event: AnyInput
        if roll < 0.4:
            event = Checkin(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=room,
                kiosk_id="chaos-kiosk",
                party_size=1,
                member_id=member,
            )
            return outgoing(event, "checkins", retryable=True)
        if roll < 0.6:
            event = Checkout(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=room,
                kiosk_id="chaos-kiosk",
                party_size=1,
            )
            return outgoing(event, "checkins", retryable=True)
        if roll < 0.7:
            event = RoomCapacityChanged(
                event_id=uuid.uuid4(), occurred_at=at, room_id=room, capacity=5, reason="chaos"
            )
            return outgoing(event, "capacity", retryable=False)
        if roll < 0.9:
            starts = self.first_day + timedelta(days=5, hours=10)
            event = BookingRequested(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=room,
                booking_id=self._booking_id(),
                member_id=member,
                party_size=2,
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
            )
            return outgoing(event, "bookings", retryable=True)
        event = BookingCancelRequested(
            event_id=uuid.uuid4(),
            occurred_at=at,
            room_id=room,
            booking_id=self._booking_id(),
            member_id=member,
        )
        return outgoing(event, "bookings", retryable=True)

    def _kiosk(self, state: _RoomState, at: datetime) -> Outgoing:
        plan = state.plan
        member = self._member() if self.rng.random() < 0.6 else None
        leaving = state.inside > 0 and self.rng.random() < 0.15 + 0.8 * state.inside / plan.capacity
        if leaving:
            party = self.rng.randint(1, 3)
            if self.rng.random() < 0.05:
                party = state.inside + self.rng.randint(1, 3)  # miscounted: never below 0
            state.inside = max(0, state.inside - party)
            event: AnyInput = Checkout(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=plan.room_id,
                kiosk_id=f"{plan.room_id}.kiosk",
                party_size=party,
                member_id=member,
            )
        else:
            party = self.rng.choices((1, 2, 3, 4, 6), weights=(40, 30, 15, 10, 5))[0]
            if state.inside + party <= plan.capacity:
                state.inside += party
            event = Checkin(
                event_id=uuid.uuid4(),
                occurred_at=at,
                room_id=plan.room_id,
                kiosk_id=f"{plan.room_id}.kiosk",
                party_size=party,
                member_id=member,
            )
        return outgoing(event, "checkins", retryable=True)

    def _booking_id(self) -> str:
        self.bookings += 1
        return f"bk-{self.bookings:07d}-{self.rng.randrange(16**6):06x}"

    def _future_interval(self, plan: RoomPlan) -> tuple[datetime, datetime]:
        """A whole-hour interval days ahead, within one local day (and within the opening
        hours of a room that has them, most of the time)."""
        day = self.first_day + timedelta(days=self.rng.randint(*FUTURE_DAYS))
        length = self.rng.choice((1, 1, 2, 2, 3))
        if plan.opens == "00:00":
            first = self.rng.randint(0, 24 - length)
        elif self.rng.random() < 0.15:
            first = self.rng.choice((6, 7, 23 - length))  # starts before 09:00 or ends at 23:00
        else:
            first = self.rng.randint(9, 22 - length)
        starts = day + timedelta(hours=first)
        return starts, starts + timedelta(hours=length)

    def _booking_traffic(self, state: _RoomState, at: datetime) -> Outgoing:
        """Kiosk and hours rooms: requests (some invalid, some in the past) and cancels."""
        plan = state.plan
        if state.requested and self.rng.random() < 0.3:
            return self._cancel(state, at)
        roll = self.rng.random()
        if roll < 0.04:
            starts = at - timedelta(hours=self.rng.randint(1, 48))
            ends = starts + timedelta(hours=1)
        elif roll < 0.07:
            starts, _ = self._future_interval(plan)
            ends = starts - timedelta(hours=self.rng.randint(0, 1))
        else:
            starts, ends = self._future_interval(plan)
        party = self.rng.choice((1, 2, 2, 3, 4, 6, 8))
        return self._request(state, at, party, starts, ends)

    def _request(
        self, state: _RoomState, at: datetime, party: int, starts: datetime, ends: datetime
    ) -> Outgoing:
        member = self._member()
        booking_id = self._booking_id()
        state.requested.append((booking_id, member))
        event = BookingRequested(
            event_id=uuid.uuid4(),
            occurred_at=at,
            room_id=state.plan.room_id,
            booking_id=booking_id,
            member_id=member,
            party_size=party,
            starts_at=starts,
            ends_at=ends,
        )
        return outgoing(event, "bookings", retryable=True)

    def _cancel(self, state: _RoomState, at: datetime) -> Outgoing:
        roll = self.rng.random()
        booking_id, member = state.requested[self.rng.randrange(len(state.requested))]
        if roll < 0.15:
            member = self._member()  # someone else's booking: unknown_booking
        elif roll < 0.25:
            booking_id = self._booking_id()  # never requested
        if state.model is not None:
            booking = state.model.bookings.get(booking_id)
            if booking is not None and booking.member_id == member:
                booking.status = "cancelled"
        event = BookingCancelRequested(
            event_id=uuid.uuid4(),
            occurred_at=at,
            room_id=state.plan.room_id,
            booking_id=booking_id,
            member_id=member,
        )
        return outgoing(event, "bookings", retryable=True)

    def _capacity_traffic(self, state: _RoomState, at: datetime) -> Outgoing | None:
        """A request or cancel whose answer is the same under the low and the high capacity,
        or None (then the caller changes the capacity instead)."""
        model = state.model
        assert model is not None
        if self.rng.random() < 0.15:
            return None
        if state.requested and self.rng.random() < 0.25:
            return self._cancel(state, at)
        plan = state.plan
        low, high = sorted((plan.capacity, plan.other_capacity))
        starts, ends = self._future_interval(plan)
        for party in (self.rng.randint(1, low), self.rng.randint(1, high + 3), high + 1):
            answers = set()
            for capacity in (low, high):
                model.capacity = capacity
                answers.add(booking_problem(model, party, starts, ends, at))
            if len(answers) == 1:
                (answer,) = answers
                made = self._request(state, at, party, starts, ends)
                if answer is None:
                    booking_id, member = state.requested[-1]
                    model.bookings[booking_id] = ModelBooking(
                        booking_id, member, party, starts, ends
                    )
                return made
        return None

    def _change_capacity(self, state: _RoomState, at: datetime) -> Outgoing:
        plan = state.plan
        plan.capacity, plan.other_capacity = plan.other_capacity, plan.capacity
        event = RoomCapacityChanged(
            event_id=uuid.uuid4(),
            occurred_at=at,
            room_id=plan.room_id,
            capacity=plan.capacity,
            reason="chaos",
        )
        return outgoing(event, "capacity", retryable=False)


def as_landed(
    items: list[Outgoing], topics: InputTopics, partitions: int, first_offset: int = 0
) -> list[Landed]:
    """The records ``items`` become once sent in this order (Kafka's default partitioner,
    offsets counted per partition): what the checker would read back."""
    names = {"capacity": topics.capacity, "bookings": topics.bookings, "checkins": topics.checkins}
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for item in items:
        topic = names[item.role]
        partition = partition_for(item.key.decode(), partitions)
        offset = offsets.get((topic, partition), first_offset)
        offsets[(topic, partition)] = offset + 1
        out.append(Landed(topic, partition, offset, item.timestamp_ms, item.key, item.value))
    return out
