"""Property tests of the capacity rules over random event sequences.

One exclusive room (``club``) and one shared room (``lounge``), each with a session,
get a random mix of bookings, cancels, enrollments, check-ins and check-outs,
clock ticks, capacity changes and reconfigurations over a couple of days in
Asia/Seoul, with ``now`` moving forward. Inputs for a room nobody configured
(``nowhere``) are mixed in. After every input the invariants below must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.capacity import Policy, Room, Unprocessable, decide, max_concurrent
from domain.rebuild import apply as rebuild
from domain.rebuild import comparable
from schemas.decisions import (
    BookingConfirmed,
    BookingReleased,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    Decision,
    EnrollmentCancelled,
    SessionScheduledDecision,
)
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomCapacityChanged,
    RoomConfigured,
    SessionScheduled,
)

KST = ZoneInfo("Asia/Seoul")
DAY0 = datetime(2026, 11, 20, tzinfo=KST)
START = DAY0 + timedelta(hours=7)
POLICY = Policy()

EXCLUSIVE, SHARED, GHOST = "club", "lounge", "nowhere"
HOME = {"s-club": EXCLUSIVE, "s-new-club": EXCLUSIVE, "s-lounge": SHARED, "s-new-lounge": SHARED}
MEMBERS = [f"m{i}" for i in range(10)]
BOOKING_IDS = [f"b{i}" for i in range(8)]

PRIMARY: dict[str, set[str]] = {
    "room.configured": {"room.configured"},
    "room.capacity_changed": {"capacity.changed"},
    "session.scheduled": {"session.scheduled", "session.rejected"},
    "booking.requested": {"booking.confirmed", "booking.rejected"},
    "booking.cancel_requested": {"booking.cancelled", "booking.rejected"},
    "enrollment.requested": {
        "enrollment.confirmed",
        "enrollment.waitlisted",
        "enrollment.rejected",
    },
    "enrollment.cancel_requested": {"enrollment.cancelled", "enrollment.rejected"},
    "checkin": {"checkin.admitted", "checkin.denied"},
    "checkout": {"checkout.recorded"},
}

# --- strategies -------------------------------------------------------------------------

rooms = st.sampled_from([EXCLUSIVE, EXCLUSIVE, SHARED, SHARED, GHOST])
members = st.sampled_from(MEMBERS[:4])
parties = st.integers(1, 6)
picks = st.integers(0, 99)
"""Which of the existing bookings, enrollees or sessions an input refers to."""
intervals = st.tuples(st.integers(-4, 32), st.integers(1, 12))
"""Start in quarter hours from now (some in the past, some outside opening hours), length."""
session_ids = st.sampled_from(["s-club", "s-club", "s-lounge", "s-lounge", *sorted(HOME)])

book = st.tuples(st.just("book"), rooms, st.sampled_from(BOOKING_IDS), members, parties, intervals)
checkin = st.tuples(
    st.just("checkin"),
    rooms,
    parties,
    st.sampled_from(["walk-in", "member", "booker", "attendee", "session"]),
    picks,
    st.integers(0, 20),
)
enroll = st.tuples(st.just("enroll"), session_ids, st.sampled_from(MEMBERS), st.integers(1, 3))
unenroll = st.tuples(st.just("unenroll"), session_ids, st.sampled_from(MEMBERS), st.none() | picks)
tick = st.tuples(st.just("tick"), rooms)
ops = st.one_of(
    book,
    checkin,
    enroll,
    tick,
    st.tuples(st.just("checkout"), rooms, parties),
    st.tuples(st.just("cancel"), rooms, st.sampled_from(BOOKING_IDS), members, st.booleans()),
    unenroll,
    book,
    checkin,
    enroll,
    tick,
    st.tuples(st.just("schedule"), st.sampled_from(sorted(HOME)), st.integers(1, 8), intervals),
    st.tuples(st.just("capacity"), rooms, st.integers(1, 15)),
    st.tuples(
        st.just("reconfigure"),
        st.sampled_from([EXCLUSIVE, SHARED]),
        st.integers(1, 20),
        st.sampled_from(["08:00", "09:00", "10:00"]),
        st.sampled_from(["18:00", "22:00", "24:00"]),
    ),
)
steps = st.lists(st.tuples(st.integers(0, 40), ops), min_size=20, max_size=80)


@dataclass(frozen=True)
class Setup:
    exclusive_capacity: int
    shared_capacity: int
    opens: str
    closes: str
    club_seats: int
    lounge_seats: int


setups = st.builds(
    Setup,
    exclusive_capacity=st.integers(1, 15),
    shared_capacity=st.integers(1, 10),
    opens=st.sampled_from(["08:00", "09:00"]),
    closes=st.sampled_from(["21:00", "22:00", "24:00"]),
    club_seats=st.integers(1, 6),
    lounge_seats=st.integers(1, 6),
)

# --- building inputs --------------------------------------------------------------------


def configured(
    room_id: str, capacity: int, opens: str, closes: str, now: datetime
) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid4(),
        occurred_at=now,
        room_id=room_id,
        center_id="mapo-1",
        name=room_id,
        capacity=capacity,
        booking_mode="exclusive" if room_id == EXCLUSIVE else "shared",
        opens=opens,
        closes=closes,
    )


def scheduled(
    session_id: str, seats: int, starts: datetime, ends: datetime, now: datetime
) -> SessionScheduled:
    return SessionScheduled(
        event_id=uuid4(),
        occurred_at=now,
        room_id=HOME[session_id],
        session_id=session_id,
        title="스마트폰 교실",
        starts_at=starts,
        ends_at=ends,
        capacity=seats,
    )


def interval(now: datetime, offset: int, length: int) -> tuple[datetime, datetime]:
    quarter = now - timedelta(minutes=now.minute % 15, seconds=now.second)
    starts = quarter + timedelta(minutes=15 * offset)
    return starts, starts + timedelta(minutes=15 * length)


def build(op: tuple[Any, ...], now: datetime, rooms: dict[str, Room | None]) -> AnyInput:
    """The input an op stands for; references to existing things are resolved in ``rooms``."""
    kind, *args = op
    common: dict[str, Any] = {"event_id": uuid4(), "occurred_at": now}
    match kind:
        case "book":
            room_id, booking_id, member, party, (offset, length) = args
            starts, ends = interval(now, offset, length)
            return BookingRequested(
                **common,
                room_id=room_id,
                booking_id=booking_id,
                member_id=member,
                party_size=party,
                starts_at=starts,
                ends_at=ends,
            )
        case "cancel":
            room_id, booking_id, member, by_owner = args
            room = rooms.get(room_id)
            if by_owner and room is not None and room.bookings:
                owned = list(room.bookings.values())[
                    BOOKING_IDS.index(booking_id) % len(room.bookings)
                ]
                booking_id, member = owned.booking_id, owned.member_id
            return BookingCancelRequested(
                **common, room_id=room_id, booking_id=booking_id, member_id=member
            )
        case "schedule":
            session_id, seats, (offset, length) = args
            starts, ends = interval(now, offset, length)
            return scheduled(session_id, seats, starts, ends, now)
        case "enroll":
            session_id, member, party = args
            return EnrollmentRequested(
                **common,
                room_id=HOME[session_id],
                session_id=session_id,
                member_id=member,
                party_size=party,
            )
        case "unenroll":
            session_id, member, pick = args
            room = rooms.get(HOME[session_id])
            session = room.sessions.get(session_id) if room else None
            everyone = [e.member_id for e in session.enrolled + session.waitlist] if session else []
            if pick is not None and everyone:
                member = everyone[pick % len(everyone)]
            return EnrollmentCancelRequested(
                **common, room_id=HOME[session_id], session_id=session_id, member_id=member
            )
        case "checkin":
            room_id, party, who, pick, lag = args
            at = now - timedelta(minutes=lag)
            ids: dict[str, str | None] = {}
            room = rooms.get(room_id)
            if who == "member":
                ids["member_id"] = MEMBERS[pick % 4]
            elif room is not None and who == "booker" and room.bookings:
                booking = list(room.bookings.values())[pick % len(room.bookings)]
                ids["member_id"] = booking.member_id
                ids["booking_id"] = booking.booking_id if pick % 2 else None
            elif room is not None and who in {"attendee", "session"} and room.sessions:
                session = list(room.sessions.values())[pick % len(room.sessions)]
                everyone = [e.member_id for e in session.enrolled + session.waitlist]
                if who == "session":
                    ids["session_id"] = session.session_id
                elif everyone:
                    ids["member_id"] = everyone[pick % len(everyone)]
            return Checkin(
                event_id=uuid4(),
                occurred_at=at,
                room_id=room_id,
                kiosk_id="door",
                party_size=party,
                **ids,
            )
        case "checkout":
            room_id, party = args
            return Checkout(**common, room_id=room_id, kiosk_id="door", party_size=party)
        case "tick":
            (room_id,) = args
            return ClockTick(**common, room_id=room_id)
        case "capacity":
            room_id, capacity = args
            return RoomCapacityChanged(
                **common, room_id=room_id, capacity=capacity, reason="distancing"
            )
        case "reconfigure":
            room_id, capacity, opens, closes = args
            return configured(room_id, capacity, opens, closes, now)
    raise AssertionError(kind)


# --- the world and its invariants -------------------------------------------------------


@dataclass
class World:
    now: datetime = START
    rooms: dict[str, Room | None] = field(default_factory=dict)
    twins: dict[str, Room | None] = field(default_factory=dict)
    """Each room restored from its JSON after the previous step; must decide the same."""
    decision_ids: set[UUID] = field(default_factory=set)
    reconfigured: set[str] = field(default_factory=set)
    rebuilt: dict[str, Room | None] = field(default_factory=dict)
    """Each room rebuilt from its decisions alone, as ``spaces replay`` does."""

    def apply(self, event: AnyInput) -> list[Decision]:
        room = self.rooms.get(event.room_id)
        twin = self.twins.get(event.room_id)
        checked_in = (
            {b.booking_id for b in room.bookings.values() if b.checked_in} if room else set()
        )
        occupancy_before = room.occupancy if room else 0
        try:
            after, decisions = decide(room, event, self.now, POLICY)
        except Unprocessable:
            # (e) only inputs the contract has no decision for: about a room nobody configured.
            assert room is None
            assert event.type in {"room.capacity_changed", "checkout"}
            return []
        # Deciding the same input on the restored copy gives the very same decisions.
        _, twin_decisions = decide(twin, event, self.now, POLICY)
        assert twin_decisions == decisions

        self.check_decisions(event, decisions, after, occupancy_before, checked_in)
        self.rooms[event.room_id] = after
        for decision in decisions:
            self.rebuilt[event.room_id] = rebuild(self.rebuilt.get(event.room_id), decision)
        if after is not None:
            # (h) the decisions log alone rebuilds the room (replay), but for clock bookkeeping.
            rebuilt = self.rebuilt.get(event.room_id)
            assert rebuilt is not None
            assert comparable(rebuilt, self.now) == comparable(after, self.now)
        if after is not None:
            check_room(after)
            # (g) the state survives a JSON round trip at every step.
            restored = Room.from_json(after.to_json())
            assert restored == after
            self.twins[event.room_id] = restored
            if isinstance(event, ClockTick):
                self.check_after_tick(after, event.occurred_at)
        return decisions

    def check_decisions(
        self,
        event: AnyInput,
        decisions: list[Decision],
        room: Room | None,
        occupancy_before: int,
        checked_in: set[str],
    ) -> None:
        for decision in decisions:
            assert decision.event_id not in self.decision_ids, "decision ids are unique"
            self.decision_ids.add(decision.event_id)
            assert decision.room_id == event.room_id
            assert decision.decided_at == self.now
            # (f) occupancy is never negative.
            occupancy = getattr(decision, "occupancy", 0)
            assert occupancy >= 0

        if isinstance(event, ClockTick):
            assert all(d.caused_by is None for d in decisions)
            assert {d.type for d in decisions} <= {"booking.released", "checkout.recorded"}
            for decision in decisions:
                if isinstance(decision, BookingReleased):
                    assert decision.booking_id not in checked_in, "a checked-in booking released"
                if isinstance(decision, CheckoutRecorded):
                    assert decision.kiosk_id is None and decision.occupancy == 0
            return

        # (e) exactly one primary decision, of the input's kind, caused by the input.
        assert decisions, f"no decision for {event.type}"
        primary, *follow_ups = decisions
        assert primary.type in PRIMARY[event.type], (event.type, primary.type)
        assert all(d.caused_by == event.event_id for d in decisions)
        if follow_ups:
            assert isinstance(primary, EnrollmentCancelled) and primary.was == "confirmed"
            assert all(d.type == "enrollment.promoted" for d in follow_ups)

        assert room is not None or primary.type not in {
            "booking.confirmed",
            "session.scheduled",
            "checkin.admitted",
        }
        if isinstance(primary, CheckinAdmitted):
            # (a) admission never takes the room past the capacity in force.
            assert room is not None
            assert primary.capacity == room.capacity
            assert primary.occupancy == room.occupancy == occupancy_before + primary.party_size
            assert room.occupancy <= room.capacity
        if isinstance(primary, CheckinDenied):
            assert room is None or room.occupancy == occupancy_before
        if isinstance(event, Checkin) and room is not None and room.booking_mode == "exclusive":
            at = event.occurred_at
            # A walk-in gets in only while nobody holds the room ...
            if (
                isinstance(primary, CheckinAdmitted)
                and event.model_dump(
                    include={"member_id", "booking_id", "session_id"}, exclude_none=True
                )
                == {}
            ):
                assert not any(h.starts_at <= at < h.ends_at for h in room.holds())
            # ... and the booker is never turned away as "reserved" during their booking.
            if isinstance(primary, CheckinDenied) and primary.reason == "reserved":
                assert not any(
                    b.holds_room
                    and b.member_id == event.member_id
                    and b.starts_at - POLICY.early_arrival <= at < b.ends_at
                    for b in room.bookings.values()
                )
        # (c) in a shared room a confirmed hold never makes the persons held exceed capacity.
        if (
            room is not None
            and room.booking_mode == "shared"
            and isinstance(primary, BookingConfirmed | SessionScheduledDecision)
        ):
            peak = max_concurrent(room.holds(), primary.starts_at, primary.ends_at)
            assert peak <= room.capacity, (peak, room.capacity)

    def check_after_tick(self, room: Room, at: datetime) -> None:
        for booking in room.bookings.values():
            if booking.status == "confirmed" and not booking.checked_in:
                assert at < booking.starts_at + POLICY.no_show_grace, "a no-show was kept"
        if room.room_id not in self.reconfigured and not room.is_open(at):
            assert room.occupancy == 0, "someone was left inside after closing"


def check_room(room: Room) -> None:
    # (f)
    assert room.occupancy >= 0
    # (b) no two confirmed holds of an exclusive room overlap.
    if room.booking_mode == "exclusive":
        holds = sorted(room.holds(), key=lambda h: (h.starts_at, h.ends_at))
        for earlier, later in pairwise(holds):
            assert earlier.ends_at <= later.starts_at, (earlier, later)
    # (d) enrolled seats never exceed a session's seats; nobody is in a session twice.
    for session in room.sessions.values():
        assert session.seats_taken <= session.capacity
        everyone = [e.member_id for e in session.enrolled + session.waitlist]
        assert len(everyone) == len(set(everyone))


def set_up(world: World, setup: Setup) -> None:
    for room_id, capacity in (
        (EXCLUSIVE, setup.exclusive_capacity),
        (SHARED, setup.shared_capacity),
    ):
        [decision] = world.apply(configured(room_id, capacity, setup.opens, setup.closes, START))
        assert decision.type == "room.configured"
    afternoon = DAY0 + timedelta(hours=14)
    for session_id, seats, starts in (
        ("s-club", min(setup.club_seats, setup.exclusive_capacity), afternoon),
        ("s-lounge", min(setup.lounge_seats, setup.shared_capacity), afternoon + timedelta(days=1)),
    ):
        event = scheduled(session_id, seats, starts, starts + timedelta(hours=2), START)
        [decision] = world.apply(event)
        assert decision.type == "session.scheduled"


@settings(max_examples=200, deadline=None)
@given(setup=setups, sequence=steps)
def test_random_event_sequences_keep_every_invariant(
    setup: Setup, sequence: list[tuple[int, tuple[Any, ...]]]
) -> None:
    world = World()
    set_up(world, setup)
    for advance, op in sequence:
        world.now += timedelta(minutes=advance)
        if op[0] == "reconfigure":
            world.reconfigured.add(op[1])
        world.apply(build(op, world.now, world.rooms))


@settings(max_examples=200, deadline=None)
@given(
    seats=st.integers(1, 8),
    requests=st.lists(
        st.tuples(st.booleans(), st.sampled_from(MEMBERS), st.integers(1, 3)), max_size=40
    ),
)
def test_enrollments_and_cancels_fill_seats_first_come_first_served(
    seats: int, requests: list[tuple[bool, str, int]]
) -> None:
    """A session under a storm of enrollments and cancels: a newcomer never overtakes the
    waitlist, and seats freed by a confirmed enrollment go, in waitlist order, to every
    waiting enrollment that fits."""
    world = World()
    set_up(world, Setup(20, 20, "09:00", "22:00", seats, 1))
    room = world.rooms[EXCLUSIVE]
    assert room is not None
    for is_cancel, member, party in requests:
        session = room.sessions["s-club"]
        enrolled = {e.member_id: e.party_size for e in session.enrolled}
        waiting = [(e.member_id, e.party_size) for e in session.waitlist]
        free = session.capacity - session.seats_taken
        op: tuple[Any, ...] = (
            ("unenroll", "s-club", member, None)
            if is_cancel
            else ("enroll", "s-club", member, party)
        )
        primary, *follow_ups = world.apply(build(op, world.now, world.rooms))
        promoted = [getattr(d, "member_id", None) for d in follow_ups]
        if primary.type == "enrollment.confirmed":
            assert not waiting and party <= free
        elif primary.type == "enrollment.waitlisted":
            assert waiting or party > free
            assert session.waitlist[-1].member_id == member
        elif primary.type == "enrollment.cancelled" and member in enrolled:
            free += enrolled[member]
            expected = []
            for waiting_member, waiting_party in waiting:
                if waiting_party <= free:
                    expected.append(waiting_member)
                    free -= waiting_party
            assert promoted == expected
            assert all(e.party_size > free for e in session.waitlist)
        else:
            assert promoted == []
