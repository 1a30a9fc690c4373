"""Property tests of the capacity rules over random event sequences.

One exclusive room (``club``) and one shared room (``lounge``), each with a session,
get a random mix of bookings, cancels, enrollments, check-ins and check-outs,
clock ticks, capacity changes and reconfigurations over a couple of days in
Asia/Seoul, with ``now`` moving forward. Inputs for a room nobody configured
(``nowhere``) are mixed in. After every input the invariants below must hold.

At the end, the fast ways the rules answer (conflicting bookings in one sweep, the index
of holds by start, when a party may come in) are checked against their plain quadratic
definitions; and a booked party that comes in its arrival window is shown never to be
turned away, whatever the walk-ins do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.capacity import (
    Booking,
    Hold,
    Policy,
    Room,
    Session,
    conflicting_bookings,
    decide,
    max_concurrent,
)
from domain.capacity.clock import TICKED_AT_LEAST_EVERY, next_tick_due
from domain.capacity.holds import Overlaps, Overload
from domain.rebuild import apply as rebuild
from domain.rebuild import comparable, seen_booking_id
from schemas.decisions import (
    BookingConfirmed,
    BookingReleased,
    CapacityChanged,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    Decision,
    EnrollmentCancelled,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    RoomConfiguredDecision,
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
    "room.capacity_changed": {"capacity.changed", "capacity.rejected"},
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
    "checkout": {"checkout.recorded", "checkout.rejected"},
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
        st.sampled_from(["00:00", "08:00", "09:00", "10:00"]),
        st.sampled_from(["02:00", "18:00", "22:00", "24:00"]),
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


hours = st.sampled_from(
    [
        *(
            (opens, closes)
            for opens in ("08:00", "09:00")
            for closes in ("21:00", "22:00", "24:00")
        ),
        ("09:00", "02:00"),  # overnight
        ("00:00", "24:00"),  # around the clock
    ]
)
setups = hours.flatmap(
    lambda pair: st.builds(
        Setup,
        exclusive_capacity=st.integers(1, 15),
        shared_capacity=st.integers(1, 10),
        opens=st.just(pair[0]),
        closes=st.just(pair[1]),
        club_seats=st.integers(1, 6),
        lounge_seats=st.integers(1, 6),
    )
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
    seen: dict[str, set[str]] = field(default_factory=dict)
    """The booking ids each configured room answered, as the room authority remembers them
    (in a table apart from the room's state, which forgets ended bookings)."""
    rebuilt_seen: dict[str, set[str]] = field(default_factory=dict)
    """The same memory rebuilt from the decisions alone."""

    def apply(self, event: AnyInput) -> list[Decision]:
        room = self.rooms.get(event.room_id)
        twin = self.twins.get(event.room_id)
        seen = self.seen.setdefault(event.room_id, set())
        checked_in = (
            {b.booking_id for b in room.bookings.values() if b.checked_in} if room else set()
        )
        occupancy_before = room.occupancy if room else 0
        # (e) every input gets its decision; v1.1 rejects a check-out or capacity change of a
        # room nobody configured (``Unprocessable`` is left for no input at all).
        after, decisions = decide(room, event, self.now, POLICY, seen)
        if decisions and decisions[0].type in {"checkout.rejected", "capacity.rejected"}:
            assert room is None and getattr(decisions[0], "reason", None) == "unknown_room"
        # Deciding the same input on the restored copy gives the very same decisions.
        _, twin_decisions = decide(twin, event, self.now, POLICY, set(seen))
        assert twin_decisions == decisions
        if isinstance(event, BookingRequested) and room is not None:
            # (i) a booking id is answered once: any later request with it is a duplicate.
            primary = decisions[0]
            assert (getattr(primary, "reason", None) == "duplicate_booking_id") == (
                event.booking_id in seen
            )
            seen.add(event.booking_id)

        self.check_decisions(event, decisions, after, occupancy_before, checked_in)
        self.rooms[event.room_id] = after
        for decision in decisions:
            self.rebuilt[event.room_id] = rebuild(self.rebuilt.get(event.room_id), decision)
            if (ident := seen_booking_id(decision)) is not None:
                self.rebuilt_seen.setdefault(event.room_id, set()).add(ident)
        # (h) ... and the memory of the booking ids answered.
        assert self.rebuilt_seen.get(event.room_id, set()) == seen
        if after is not None:
            # (h) the decisions log alone rebuilds the room (replay), but for clock bookkeeping.
            rebuilt = self.rebuilt.get(event.room_id)
            assert rebuilt is not None
            assert comparable(rebuilt, self.now) == comparable(after, self.now)
        if after is not None:
            check_room(after, self.now)
            # (g) the state survives a JSON round trip at every step.
            restored = Room.from_json(after.to_json())
            assert restored == after
            self.twins[event.room_id] = restored
            if isinstance(event, ClockTick):
                self.check_after_tick(after, event.occurred_at)
            self.check_tick_due(after)
        return decisions

    def check_tick_due(self, room: Room) -> None:
        """(l) The clock ticks a room only once it is due: a tick at any instant before
        ``next_tick_due`` decides and changes nothing, and one at it changes something
        (unless it is only the daily net)."""
        due = next_tick_due(Room.from_json(room.to_json()), self.now, POLICY)
        before = room.to_json()
        instants = {self.now, self.now + (due - self.now) / 2, due - timedelta(microseconds=1)}
        for at in sorted(t for t in instants if self.now <= t < due):
            copy = Room.from_json(before)
            tick = ClockTick(event_id=uuid4(), occurred_at=at, room_id=room.room_id)
            _, decisions = decide(copy, tick, self.now, POLICY)
            assert decisions == [] and copy.to_json() == before, (at, due, decisions)
        if due < self.now + TICKED_AT_LEAST_EVERY:
            copy = Room.from_json(before)
            tick = ClockTick(event_id=uuid4(), occurred_at=due, room_id=room.room_id)
            _, decisions = decide(copy, tick, self.now, POLICY)
            assert decisions or copy.to_json() != before, ("nothing was due", due)

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
            # Seats freed: a confirmed enrollment cancelled, or the room's capacity raised.
            assert (
                isinstance(primary, EnrollmentCancelled) and primary.was == "confirmed"
            ) or isinstance(primary, CapacityChanged | RoomConfiguredDecision), primary
            assert all(d.type == "enrollment.promoted" for d in follow_ups)
        for decision in decisions:
            if isinstance(decision, EnrollmentConfirmed | EnrollmentPromoted):
                # (j) a seat given never takes a session past the seats in force.
                assert room is not None
                session = room.sessions[decision.session_id]
                assert session.seats_taken <= min(session.capacity, room.capacity)

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
            # A walk-in gets in only while no party may come in for a booking or session ...
            if (
                isinstance(primary, CheckinAdmitted)
                and event.model_dump(
                    include={"member_id", "booking_id", "session_id"}, exclude_none=True
                )
                == {}
            ):
                assert not any(h.starts_at <= at < h.ends_at for h in room.holds())
                assert not room.arrived_bookings(at, POLICY.early_arrival)
                assert not room.arrived_sessions(at, POLICY.early_arrival)
        if isinstance(event, Checkin) and room is not None:
            at = event.occurred_at
            # ... and a booker is never turned away as "reserved" in their arrival window
            # (from early_arrival before the start, once the holds before it are over).
            if isinstance(primary, CheckinDenied) and primary.reason == "reserved":
                assert not any(
                    b.holds_room
                    and b.member_id == event.member_id
                    and room.arrival_opens(b, POLICY.early_arrival) <= at < b.ends_at
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


def check_room(room: Room, now: datetime) -> None:
    # (f)
    assert room.occupancy >= 0
    # (k) after any decision, no waitlisted party of a session to come fits its free seats.
    for session in room.sessions.values():
        if now < session.ends_at:
            free = session.free_seats(room.capacity)
            assert all(e.party_size > free for e in session.waitlist), (free, session)
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
        st.tuples(
            st.sampled_from(["enroll", "enroll", "unenroll", "capacity"]),
            st.sampled_from(MEMBERS),
            st.integers(1, 3),
        ),
        max_size=40,
    ),
)
def test_enrollments_cancels_and_capacity_changes_seat_every_party_that_fits(
    seats: int, requests: list[tuple[str, str, int]]
) -> None:
    """A session under a storm of enrollments, cancels and capacity cuts: a party that fits
    the free seats gets a seat, waitlist or not; one that does not waits at the end of the
    line; seats freed go, in waitlist order, to every waiting party that fits; and the
    seats in force are never more than the room holds."""
    world = World()
    set_up(world, Setup(20, 20, "09:00", "22:00", seats, 1))
    room = world.rooms[EXCLUSIVE]
    assert room is not None
    for kind, member, number in requests:
        session = room.sessions["s-club"]
        enrolled = {e.member_id: e.party_size for e in session.enrolled}
        waiting = [(e.member_id, e.party_size) for e in session.waitlist]
        free = session.free_seats(room.capacity)
        op: tuple[Any, ...] = {
            "enroll": ("enroll", "s-club", member, number),
            "unenroll": ("unenroll", "s-club", member, None),
            "capacity": ("capacity", EXCLUSIVE, number * 2),
        }[kind]
        primary, *follow_ups = world.apply(build(op, world.now, world.rooms))
        promoted = [getattr(d, "member_id", None) for d in follow_ups]
        if primary.type == "enrollment.confirmed":
            assert number <= free
        elif primary.type == "enrollment.waitlisted":
            assert number > free
            assert session.waitlist[-1].member_id == member
        elif primary.type in {"enrollment.cancelled", "capacity.changed"}:
            if isinstance(primary, CapacityChanged):
                in_force = min(session.capacity, primary.capacity)
                free = max(0, in_force - sum(enrolled.values()))
            elif member in enrolled:
                # (After a capacity cut the seats taken may be above the seats in force.)
                in_force = min(session.capacity, room.capacity)
                free = max(0, in_force - sum(enrolled.values()) + enrolled[member])
            expected = []
            leaving = member if kind == "unenroll" else None
            for waiting_member, waiting_party in waiting:
                if waiting_member != leaving and waiting_party <= free:
                    expected.append(waiting_member)
                    free -= waiting_party
            assert promoted == expected
        else:
            assert promoted == []
        assert session.seats_taken <= session.capacity
        assert all(e.party_size > session.free_seats(room.capacity) for e in session.waitlist)


# --- conflicting bookings and the hold index, against their plain definitions -----------

HALF_HOUR = timedelta(minutes=30)


def conflicting_bookings_reference(room: Room, now: datetime) -> list[str]:
    """``conflicting_bookings`` as first written: quadratic, but plainly the rule."""
    conflicts: list[str] = []
    holds = room.holds()
    for booking in sorted(room.bookings.values(), key=lambda b: (b.starts_at, b.booking_id)):
        if not booking.holds_room or booking.ends_at <= now:
            continue
        if not room.within_opening_hours(booking.starts_at, booking.ends_at):
            conflicts.append(booking.booking_id)
            continue
        others = [h for h in holds if h.ident != booking.booking_id]
        if booking.party_size > room.capacity:
            conflicts.append(booking.booking_id)
        elif room.booking_mode == "shared":
            if max_concurrent(holds, booking.starts_at, booking.ends_at) > room.capacity:
                conflicts.append(booking.booking_id)
        elif any(h.overlaps(booking.starts_at, booking.ends_at) for h in others):
            conflicts.append(booking.booking_id)
    return conflicts


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """A half hour from 07:00 to 17:00, mostly on one day so that edges often coincide;
    in Seoul time or in UTC."""
    day = draw(st.sampled_from([0, 0, 0, 1]))
    at = DAY0 + timedelta(days=day, hours=7) + draw(st.integers(0, 20)) * HALF_HOUR
    return at.astimezone(UTC) if draw(st.booleans()) else at


def minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


lengths = st.integers(1, 8).map(lambda halves: halves * HALF_HOUR)
statuses = st.sampled_from(["confirmed", "confirmed", "cancelled", "released"])


@st.composite
def small_rooms(draw: st.DrawFn) -> Room:
    """A room in any state, not only states the rules reach: overlaps, overbooking, ..."""
    room = Room(
        "r",
        "mapo-1",
        "r",
        capacity=draw(st.integers(1, 8)),
        booking_mode=draw(st.sampled_from(["shared", "exclusive"])),
        opens=draw(st.sampled_from(["00:00", "08:00", "09:00"])),
        closes=draw(st.sampled_from(["18:00", "22:00", "24:00"])),
        timezone="Asia/Seoul",
    )
    # "session:s0" is a valid booking id, and so is the ident of session s0's hold.
    ids = st.sampled_from([*BOOKING_IDS, "session:s0", "session:s1"])
    for booking_id in draw(st.lists(ids, unique=True, max_size=10)):
        starts = draw(moments())
        room.bookings[booking_id] = Booking(
            booking_id,
            draw(members),
            draw(parties),
            starts,
            starts + draw(lengths),
            status=draw(statuses),
            checked_in=draw(st.booleans()),
        )
    for session_id in draw(st.lists(st.sampled_from(["s0", "s1", "s2"]), unique=True)):
        starts = draw(moments())
        room.sessions[session_id] = Session(
            session_id, "스마트폰 교실", starts, starts + draw(lengths), draw(st.integers(1, 6))
        )
    return room


@settings(max_examples=300, deadline=None)
@given(room=small_rooms(), now=moments())
def test_conflicting_bookings_agree_with_their_quadratic_definition(
    room: Room, now: datetime
) -> None:
    assert conflicting_bookings(room, now) == conflicting_bookings_reference(room, now)


@st.composite
def some_holds(draw: st.DrawFn) -> list[Hold]:
    """Holds with distinct idents but, maybe, two sharing one (a booking ``session:x``
    and session x's hold, the most a room can have)."""
    idents = draw(st.lists(st.sampled_from(BOOKING_IDS), unique=True, max_size=8))
    if idents and draw(st.booleans()):
        idents.append(idents[0])
    found: list[Hold] = []
    for ident in idents:
        starts = draw(moments())
        found.append(Hold(ident, draw(st.integers(1, 4)), starts, starts + draw(lengths)))
    return draw(st.permutations(found))


@settings(max_examples=300, deadline=None)
@given(holds=some_holds(), capacity=st.integers(0, 8), starts_at=moments(), length=lengths)
def test_the_sweeps_agree_with_max_concurrent_and_overlaps(
    holds: list[Hold], capacity: int, starts_at: datetime, length: timedelta
) -> None:
    ends_at = starts_at + length
    overloaded = max_concurrent(holds, starts_at, ends_at) > capacity
    assert Overload(holds, capacity).during(starts_at, ends_at) == overloaded
    overlaps = Overlaps(holds)
    for ident in {"nobody", *(h.ident for h in holds)}:
        others = [h for h in holds if h.ident != ident]
        expected = any(h.overlaps(starts_at, ends_at) for h in others)
        assert overlaps.besides(ident, starts_at, ends_at) == expected


def test_a_booking_named_like_a_sessions_hold_is_judged_as_the_definition_does() -> None:
    """``session:s0`` is a valid booking id, and the ident of session s0's hold: the rule
    leaves both out when asking whether other holds overlap that booking."""
    room = Room("r", "mapo-1", "r", 8, "exclusive", "00:00", "24:00", "Asia/Seoul")
    at = DAY0 + timedelta(hours=10)
    room.bookings["session:s0"] = Booking("session:s0", "m1", 1, at, at + timedelta(hours=2))
    room.sessions["s0"] = Session("s0", "스마트폰 교실", at, at + timedelta(hours=3), 4)
    room.bookings["b0"] = Booking("b0", "m2", 1, at + timedelta(hours=1), at + minutes(90))
    assert conflicting_bookings_reference(room, at) == ["session:s0", "b0"]
    assert conflicting_bookings(room, at) == ["session:s0", "b0"]


index_ops = st.one_of(
    st.tuples(st.just("book"), moments(), lengths, parties, st.none() | picks),
    st.tuples(st.just("schedule"), moments(), lengths, st.integers(1, 6)),
    st.tuples(st.just("cancel"), picks),
    st.tuples(st.just("check_in"), picks),
    st.tuples(st.just("overwrite"), moments(), lengths, picks),
    st.tuples(st.just("overwrite_session"), moments(), lengths, picks),
    st.tuples(st.just("plain_dicts")),
    st.tuples(st.just("from_json")),
    st.tuples(st.just("release"), moments(), st.sampled_from([0, 15, 60]).map(minutes)),
    st.tuples(st.just("forget"), moments()),
)
probes = st.lists(
    st.tuples(moments(), lengths, st.sampled_from([-15, 0, 15, 30]).map(minutes)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(room=small_rooms(), changes=st.lists(st.tuples(index_ops, probes), max_size=25))
def test_the_hold_index_answers_as_a_scan_of_every_hold(
    room: Room, changes: list[tuple[tuple[Any, ...], list[tuple[datetime, timedelta, timedelta]]]]
) -> None:
    """Holds overlapping an interval, bookings and sessions under way, no-shows and pruning,
    through changes made by the rules and behind the room's back (as ``domain.rebuild`` does)."""
    for n, ((kind, *args), questions) in enumerate(changes):
        bookings = list(room.bookings.values())
        match kind:
            case "book":
                starts, length, party, pick = args
                # Rules add only new ids; a known one replaces that booking.
                booking_id = f"n{n}"
                if pick is not None and bookings:
                    booking_id = bookings[pick % len(bookings)].booking_id
                room.add_booking(Booking(booking_id, "m1", party, starts, starts + length))
            case "schedule":
                starts, length, seats = args
                room.add_session(Session(f"n{n}", "교실", starts, starts + length, seats))
            case "cancel" if bookings:
                bookings[args[0] % len(bookings)].status = "cancelled"
            case "check_in" if bookings:
                bookings[args[0] % len(bookings)].checked_in = True
            case "overwrite":
                starts, length, pick = args
                booking_id = bookings[pick % len(bookings)].booking_id if bookings else "w"
                room.bookings[booking_id] = Booking(booking_id, "m2", 1, starts, starts + length)
            case "overwrite_session":
                starts, length, pick = args
                sessions = list(room.sessions) or ["w"]
                session_id = sessions[pick % len(sessions)]
                room.sessions[session_id] = Session(session_id, "교실", starts, starts + length, 2)
            case "plain_dicts":
                room.bookings, room.sessions = dict(room.bookings), dict(room.sessions)
            case "from_json":
                room = Room.from_json(room.to_json())
            case "release":
                at, grace = args
                due = sorted(
                    (
                        b
                        for b in bookings
                        if b.holds_room and not b.checked_in and b.starts_at + grace <= at
                    ),
                    key=lambda b: (b.starts_at, b.booking_id),
                )
                assert room.release_no_shows(at, grace) == due
                assert all(b.status == "released" for b in due)
            case "forget":
                (horizon,) = args
                kept_bookings = [b for b in bookings if b.ends_at > horizon]
                kept_sessions = [s for s in room.sessions.values() if s.ends_at > horizon]
                room.forget_ended(horizon)
                assert list(room.bookings.values()) == kept_bookings
                assert list(room.sessions.values()) == kept_sessions
        for at, length, early in questions:
            holds = room.holds()
            assert room.holds_overlapping(at, at + length) == [
                h for h in holds if h.overlaps(at, at + length)
            ]
            assert room.active_bookings(at, early) == [
                b
                for b in room.bookings.values()
                if b.holds_room and b.starts_at - early <= at < b.ends_at
            ]
            assert room.active_sessions(at, early) == [
                s for s in room.sessions.values() if s.starts_at - early <= at < s.ends_at
            ]
            windows = [
                Hold(b.booking_id, b.party_size, arrival_opens_reference(room, b, early), b.ends_at)
                for b in room.bookings.values()
                if b.holds_room
            ]
            assert room.booked_peak(at, at + length, early) == max_concurrent(
                windows, at, at + length
            )


# --- when a party may come in, and that it is never turned away then --------------------


def arrival_opens_reference(room: Room, hold: Booking | Session, early: timedelta) -> datetime:
    """``Room.arrival_opens`` as the rule reads: the earliest instant from ``early`` before
    the start on at which, until the start, the room is not held by another hold (exclusive)
    or the others held and this party fit together (shared); others that start no later
    than ``hold`` held from ``early`` before their start. Every instant checked."""
    starts = hold.starts_at
    earliest = starts - early
    if earliest >= starts:
        return starts
    others: list[tuple[datetime, datetime, int]] = [
        (b.starts_at - early, b.ends_at, b.party_size)
        for b in room.bookings.values()
        if b is not hold and b.holds_room and b.starts_at <= starts and b.ends_at > earliest
    ]
    others += [
        (s.starts_at - early, s.ends_at, s.capacity)
        for s in room.sessions.values()
        if s is not hold and s.starts_at <= starts and s.ends_at > earliest
    ]
    persons = hold.party_size if isinstance(hold, Booking) else hold.capacity

    def clear(at: datetime) -> bool:
        held = [p for a, z, p in others if a <= at < z]
        if room.booking_mode == "exclusive":
            return not held
        return sum(held) + persons <= room.capacity

    edges = sorted({earliest, starts, *(t for a, z, _ in others for t in (a, z))})
    candidates = [t for t in edges if earliest <= t <= starts]
    for u in candidates:
        if all(clear(t) for t in [u, *candidates] if u <= t < starts):
            return u
    return starts


@settings(max_examples=300, deadline=None)
@given(room=small_rooms(), early=st.sampled_from([0, 10, 15, 30, 45]).map(minutes))
def test_arrival_opens_agrees_with_its_definition(room: Room, early: timedelta) -> None:
    for booking in room.bookings.values():
        if booking.holds_room:
            assert room.arrival_opens(booking, early) == arrival_opens_reference(
                room, booking, early
            ), booking.booking_id
    for session in room.sessions.values():
        assert room.arrival_opens(session, early) == arrival_opens_reference(room, session, early)


@st.composite
def arrival_scenarios(draw: st.DrawFn) -> tuple[str, int, list[Any], list[Any]]:
    """A room, the bookings requested in the morning (start and length in quarter hours from
    opening, party) and what happens at the door (minutes to wait, then one of: walk-ins,
    walk-ins leaving, booked persons arriving, a clock tick)."""
    mode = draw(st.sampled_from(["exclusive", "shared"]))
    capacity = draw(st.integers(1, 12))
    parties = st.integers(1, capacity)
    requests = draw(
        st.lists(st.tuples(st.integers(0, 16), st.integers(1, 8), parties), max_size=10)
    )
    ops = st.one_of(
        st.tuples(st.just("walk_in"), parties),
        st.tuples(st.just("leave"), parties),
        st.tuples(st.just("arrive"), picks, parties),
        st.tuples(st.just("arrive"), picks, parties),
        st.tuples(st.just("tick")),
    )
    steps = draw(st.lists(st.tuples(st.sampled_from([0, 5, 10, 15, 30]), ops), max_size=60))
    return mode, capacity, requests, steps


@settings(max_examples=500, deadline=None)
@given(scenario=arrival_scenarios())
# The cases: walk-ins before the window (exclusive: 7 of 15 fit beside a party of 8),
# and in a shared room a party arriving in parts while walk-ins come.
@example(
    (
        "exclusive",
        15,
        [(2, 8, 8)],
        [(0, ("walk_in", 10)), (0, ("walk_in", 7)), (15, ("arrive", 0, 8))],
    )
)
@example(
    (
        "shared",
        10,
        [(4, 8, 6), (8, 4, 3)],
        [
            (30, ("walk_in", 2)),
            (30, ("arrive", 0, 2)),
            (0, ("walk_in", 3)),
            (30, ("arrive", 1, 3)),
            (15, ("arrive", 0, 4)),
        ],
    )
)
def test_a_booked_party_arriving_in_its_window_is_never_turned_away(
    scenario: tuple[str, int, list[tuple[int, int, int]], list[tuple[int, tuple[Any, ...]]]],
) -> None:
    """Bookings confirmed in the morning; then walk-ins come and go as they like, and booked
    parties come, in parts, at any time of their arrival window (``arrival_opens`` to the
    end; the reference above) and leave when their booking ends. No booked party that
    comes for the persons its booking still expects is ever denied, ``room_full`` or
    ``reserved``."""
    mode, capacity, requests, steps = scenario
    room_id = EXCLUSIVE if mode == "exclusive" else SHARED
    now = START
    room, _ = decide(None, configured(room_id, capacity, "09:00", "22:00", now), now)
    assert room is not None
    opening = DAY0 + timedelta(hours=9)
    for n, (offset, length, party) in enumerate(requests):
        starts = opening + timedelta(minutes=15 * offset)
        request = BookingRequested(
            event_id=uuid4(),
            occurred_at=now,
            room_id=room_id,
            booking_id=f"b{n}",
            member_id=f"m{n}",
            party_size=party,
            starts_at=starts,
            ends_at=min(starts + timedelta(minutes=15 * length), DAY0 + timedelta(hours=22)),
        )
        decide(room, request, now)
    confirmed = [b for b in room.bookings.values() if b.holds_room]
    walk_ins = 0
    inside: dict[str, int] = {}
    """Persons of each booking inside (they leave when it ends)."""
    now = opening

    def leave(persons: int, at: datetime) -> None:
        event = Checkout(
            event_id=uuid4(), occurred_at=at, room_id=room_id, kiosk_id="door", party_size=persons
        )
        [decision] = decide(room, event, now)[1]
        assert isinstance(decision, CheckoutRecorded)

    for advance, (kind, *args) in steps:
        now += timedelta(minutes=advance)
        if now >= DAY0 + timedelta(hours=22):
            break
        for booking in confirmed:
            if booking.ends_at <= now and inside.get(booking.booking_id):
                leave(inside.pop(booking.booking_id), booking.ends_at)
        match kind:
            case "walk_in":
                (party,) = args
                event = Checkin(
                    event_id=uuid4(),
                    occurred_at=now,
                    room_id=room_id,
                    kiosk_id="door",
                    party_size=party,
                )
                [decision] = decide(room, event, now)[1]
                if isinstance(decision, CheckinAdmitted):
                    walk_ins += party
            case "leave" if walk_ins:
                persons = min(args[0], walk_ins)
                leave(persons, now)
                walk_ins -= persons
            case "arrive":
                pick, part = args
                expected = [
                    b
                    for b in confirmed
                    if b.expected
                    and arrival_opens_reference(room, b, POLICY.early_arrival) <= now < b.ends_at
                ]
                if not expected:
                    continue
                booking = expected[pick % len(expected)]
                party = min(part, booking.expected)
                event = Checkin(
                    event_id=uuid4(),
                    occurred_at=now,
                    room_id=room_id,
                    kiosk_id="door",
                    party_size=party,
                    member_id=booking.member_id,
                    booking_id=booking.booking_id if pick % 2 else None,
                )
                [decision] = decide(room, event, now)[1]
                assert isinstance(decision, CheckinAdmitted), (decision, booking, room)
                assert decision.attended_booking_id == booking.booking_id
                inside[booking.booking_id] = inside.get(booking.booking_id, 0) + party
            case "tick":
                decide(room, ClockTick(event_id=uuid4(), occurred_at=now, room_id=room_id), now)
