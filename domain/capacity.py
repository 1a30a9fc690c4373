"""The capacity rules: one room's state and every decision about it.

Plain Python, no Kafka and no SQL, so the rules can be tested fast and
exhaustively. ``decide`` takes a room, one input event and the time it is decided
and returns the decisions it causes; the caller stores the new state and the
decisions together. The rules are written down in ``docs/rules.md``.

Decision ids are derived from the input's ``event_id`` (uuid5), so deciding the
same input twice would even produce the same ids; the consumer's idempotency
check makes sure it never publishes them twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from schemas.common import parse_hhmm
from schemas.decisions import (
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingRejectReason,
    BookingReleased,
    CapacityChanged,
    CheckinAdmitted,
    CheckinDenied,
    CheckinDenyReason,
    CheckoutRecorded,
    Decision,
    EnrollmentCancelled,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    EnrollmentRejected,
    EnrollmentRejectReason,
    EnrollmentWaitlisted,
    RoomConfiguredDecision,
    SessionRejected,
    SessionRejectReason,
    SessionScheduledDecision,
)
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingMode,
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

_DECISION_NAMESPACE = UUID("9b6f3c1e-6a51-4d1f-8a4e-5c0c2d7b9a10")
KEEP_HISTORY = timedelta(days=2)
"""Bookings and sessions that ended longer ago than this are dropped from the state."""


class Unprocessable(Exception):
    """An input the contract has no decision for (it goes to ``dead-letters``)."""


@dataclass(frozen=True)
class Policy:
    """Tunables of the rules; defaults match the contract."""

    no_show_grace: timedelta = timedelta(minutes=15)
    early_arrival: timedelta = timedelta(minutes=15)
    late_tolerance: timedelta = timedelta(minutes=10)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass
class Booking:
    booking_id: str
    member_id: str
    party_size: int
    starts_at: datetime
    ends_at: datetime
    status: Literal["confirmed", "cancelled", "released"] = "confirmed"
    checked_in: bool = False

    @property
    def holds_room(self) -> bool:
        return self.status == "confirmed"


@dataclass
class Enrollment:
    member_id: str
    party_size: int


@dataclass
class Session:
    session_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    enrolled: list[Enrollment] = field(default_factory=list)
    waitlist: list[Enrollment] = field(default_factory=list)

    @property
    def seats_taken(self) -> int:
        return sum(e.party_size for e in self.enrolled)

    def find(self, member_id: str) -> tuple[list[Enrollment], Enrollment] | None:
        for queue in (self.enrolled, self.waitlist):
            for enrollment in queue:
                if enrollment.member_id == member_id:
                    return queue, enrollment
        return None


@dataclass(frozen=True)
class _Hold:
    """Something that holds the room for an interval: a booking or a session."""

    ident: str
    persons: int
    starts_at: datetime
    ends_at: datetime

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at


def max_concurrent(holds: Iterable[_Hold], starts_at: datetime, ends_at: datetime) -> int:
    """Most persons held at any instant of ``[starts_at, ends_at)`` (a sweep over edges)."""
    edges: list[tuple[datetime, int]] = []
    for hold in holds:
        if hold.overlaps(starts_at, ends_at):
            edges.append((max(hold.starts_at, starts_at), hold.persons))
            edges.append((min(hold.ends_at, ends_at), -hold.persons))
    # At equal times ends (-) come before starts (+): intervals are half-open.
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


@dataclass
class Room:
    """One room's rules and state; the aggregate every decision about the room goes through."""

    room_id: str
    center_id: str
    name: str
    capacity: int
    booking_mode: BookingMode
    opens: str
    closes: str
    timezone: str
    occupancy: int = 0
    bookings: dict[str, Booking] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    last_closing: datetime | None = None
    """The last closing time at which everyone still inside was checked out."""

    # --- queries ------------------------------------------------------------------------

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(zone(self.timezone))

    def opening_window(self, day: date) -> tuple[datetime, datetime]:
        tz = zone(self.timezone)
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        opens = midnight + timedelta(minutes=parse_hhmm(self.opens))
        closes = midnight + timedelta(minutes=parse_hhmm(self.closes))
        # Re-anchor through the zone so a DST shift inside the day is honoured.
        return opens.astimezone(tz), closes.astimezone(tz)

    def is_open(self, instant: datetime) -> bool:
        opens, closes = self.opening_window(self.local(instant).date())
        return opens <= instant < closes

    def within_opening_hours(self, starts_at: datetime, ends_at: datetime) -> bool:
        opens, closes = self.opening_window(self.local(starts_at).date())
        return opens <= starts_at and ends_at <= closes

    def latest_closing(self, instant: datetime) -> datetime:
        """The most recent closing time at or before ``instant``."""
        day = self.local(instant).date()
        _, closes = self.opening_window(day)
        if closes <= instant:
            return closes
        return self.opening_window(day - timedelta(days=1))[1]

    def holds(self, *, exclude: str | None = None) -> list[_Hold]:
        holds = [
            _Hold(b.booking_id, b.party_size, b.starts_at, b.ends_at)
            for b in self.bookings.values()
            if b.holds_room and b.booking_id != exclude
        ]
        holds.extend(
            _Hold(f"session:{s.session_id}", s.capacity, s.starts_at, s.ends_at)
            for s in self.sessions.values()
            if s.session_id != exclude
        )
        return holds

    def _fits(
        self, persons: int, starts_at: datetime, ends_at: datetime
    ) -> Literal["over_capacity", "overlap"] | None:
        """Why an interval holding ``persons`` cannot be confirmed, or None if it can."""
        if persons > self.capacity:
            return "over_capacity"
        holds = self.holds()
        if self.booking_mode == "exclusive":
            if any(h.overlaps(starts_at, ends_at) for h in holds):
                return "overlap"
            return None
        if max_concurrent(holds, starts_at, ends_at) + persons > self.capacity:
            return "over_capacity"
        return None

    def _active_at(self, instant: datetime, early: timedelta) -> list[Booking]:
        return [
            b
            for b in self.bookings.values()
            if b.holds_room and b.starts_at - early <= instant < b.ends_at
        ]

    def _active_sessions(self, instant: datetime, early: timedelta) -> list[Session]:
        return [s for s in self.sessions.values() if s.starts_at - early <= instant < s.ends_at]

    # --- serialisation ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def booking(b: Booking) -> dict[str, Any]:
            return {
                "booking_id": b.booking_id,
                "member_id": b.member_id,
                "party_size": b.party_size,
                "starts_at": b.starts_at.isoformat(),
                "ends_at": b.ends_at.isoformat(),
                "status": b.status,
                "checked_in": b.checked_in,
            }

        def session(s: Session) -> dict[str, Any]:
            return {
                "session_id": s.session_id,
                "title": s.title,
                "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat(),
                "capacity": s.capacity,
                "enrolled": [[e.member_id, e.party_size] for e in s.enrolled],
                "waitlist": [[e.member_id, e.party_size] for e in s.waitlist],
            }

        return {
            "room_id": self.room_id,
            "center_id": self.center_id,
            "name": self.name,
            "capacity": self.capacity,
            "booking_mode": self.booking_mode,
            "opens": self.opens,
            "closes": self.closes,
            "timezone": self.timezone,
            "occupancy": self.occupancy,
            "bookings": [booking(b) for b in self.bookings.values()],
            "sessions": [session(s) for s in self.sessions.values()],
            "last_closing": self.last_closing.isoformat() if self.last_closing else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Room:
        ts = datetime.fromisoformat
        room = cls(
            room_id=data["room_id"],
            center_id=data["center_id"],
            name=data["name"],
            capacity=data["capacity"],
            booking_mode=data["booking_mode"],
            opens=data["opens"],
            closes=data["closes"],
            timezone=data["timezone"],
            occupancy=data["occupancy"],
            last_closing=ts(data["last_closing"]) if data["last_closing"] else None,
        )
        for b in data["bookings"]:
            room.bookings[b["booking_id"]] = Booking(
                booking_id=b["booking_id"],
                member_id=b["member_id"],
                party_size=b["party_size"],
                starts_at=ts(b["starts_at"]),
                ends_at=ts(b["ends_at"]),
                status=b["status"],
                checked_in=b["checked_in"],
            )
        for s in data["sessions"]:
            room.sessions[s["session_id"]] = Session(
                session_id=s["session_id"],
                title=s["title"],
                starts_at=ts(s["starts_at"]),
                ends_at=ts(s["ends_at"]),
                capacity=s["capacity"],
                enrolled=[Enrollment(m, p) for m, p in s["enrolled"]],
                waitlist=[Enrollment(m, p) for m, p in s["waitlist"]],
            )
        return room


class _Decider:
    """Numbers the decisions one input causes, so their ids are stable."""

    def __init__(self, source: UUID, caused_by: UUID | None, room: Room | None, now: datetime):
        self.source = source
        self.caused_by = caused_by
        self.room = room
        self.now = now
        self.out: list[Decision] = []

    def common(self, room_id: str) -> dict[str, Any]:
        return {
            "event_id": uuid5(_DECISION_NAMESPACE, f"{self.source}:{len(self.out)}"),
            "caused_by": self.caused_by,
            "room_id": room_id,
            "decided_at": self.now,
            "center_id": self.room.center_id if self.room else None,
        }

    def add(self, decision: Decision) -> None:
        self.out.append(decision)


def decide(
    room: Room | None, event: AnyInput, now: datetime, policy: Policy = Policy()
) -> tuple[Room | None, list[Decision]]:
    """Apply one input to a room; returns the room's new state and the decisions made.

    ``room`` is None while the room is unknown. ``now`` is when the input is
    decided; it must be timezone-aware. Raises ``Unprocessable`` for inputs the
    contract has no decision for (they go to dead-letters with the reason).
    """
    if isinstance(event, RoomConfigured):
        return _configure(room, event, now)
    if isinstance(event, ClockTick):
        d = _Decider(event.event_id, None, room, now)
        if room is not None:
            _tick(room, event.occurred_at, d, policy)
        return room, d.out
    d = _Decider(event.event_id, event.event_id, room, now)
    match event:
        case RoomCapacityChanged():
            if room is None:
                raise Unprocessable(
                    f"room.capacity_changed for unknown room {event.room_id!r}: "
                    "send room.configured for it first"
                )
            _change_capacity(room, event, d)
        case SessionScheduled():
            _schedule_session(room, event, d)
        case BookingRequested():
            _request_booking(room, event, d)
        case BookingCancelRequested():
            _cancel_booking(room, event, d)
        case EnrollmentRequested():
            _enroll(room, event, d)
        case EnrollmentCancelRequested():
            _cancel_enrollment(room, event, d)
        case Checkin():
            _checkin(room, event, d, policy)
        case Checkout():
            if room is None:
                raise Unprocessable(f"checkout for unknown room {event.room_id!r}")
            _checkout(room, event, d)
        case _:  # pragma: no cover - the union above is exhaustive
            raise Unprocessable(f"no rule for input type {event.type!r}")
    return room, d.out


# --- capacity -------------------------------------------------------------------------


def configure(
    room: Room | None,
    room_id: str,
    center_id: str,
    name: str,
    capacity: int,
    booking_mode: BookingMode,
    opens: str,
    closes: str,
    timezone: str,
) -> Room:
    """The room with these rules in force: a new room, or the same room's state kept."""
    if room is None:
        return Room(room_id, center_id, name, capacity, booking_mode, opens, closes, timezone)
    room.center_id, room.name, room.capacity = center_id, name, capacity
    room.booking_mode, room.opens, room.closes, room.timezone = (
        booking_mode,
        opens,
        closes,
        timezone,
    )
    return room


def _configure(
    room: Room | None, event: RoomConfigured, now: datetime
) -> tuple[Room, list[Decision]]:
    new = room is None
    room = configure(
        room,
        event.room_id,
        event.center_id,
        event.name,
        event.capacity,
        event.booking_mode,
        event.opens,
        event.closes,
        event.timezone,
    )
    if new:
        # Closings before the room existed had nobody inside: without this the first clock
        # tick would check out everyone admitted since, at the previous day's closing.
        room.last_closing = room.latest_closing(now)
    d = _Decider(event.event_id, event.event_id, room, now)
    d.add(
        RoomConfiguredDecision(
            **d.common(room.room_id),
            name=room.name,
            capacity=room.capacity,
            booking_mode=room.booking_mode,
            opens=room.opens,
            closes=room.closes,
            timezone=room.timezone,
            conflicting_booking_ids=[] if new else conflicting_bookings(room, now),
        )
    )
    return room, d.out


def conflicting_bookings(room: Room, now: datetime) -> list[str]:
    """Confirmed bookings not yet over that the room's rules no longer allow.

    Too many persons for the capacity (alone, or together in a shared room), or, after
    a reconfiguration, outside the opening hours.
    """
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
            conflicts.append(booking.booking_id)  # made exclusive while shared bookings overlap
    return conflicts


def _change_capacity(room: Room, event: RoomCapacityChanged, d: _Decider) -> None:
    previous = room.capacity
    room.capacity = event.capacity
    d.add(
        CapacityChanged(
            **d.common(room.room_id),
            capacity=room.capacity,
            previous_capacity=previous,
            reason=event.reason,
            conflicting_booking_ids=conflicting_bookings(room, d.now),
        )
    )


HoldProblem = Literal["in_the_past", "outside_opening_hours", "over_capacity", "overlap"]


def _hold_problem(
    room: Room, persons: int, starts_at: datetime, ends_at: datetime, now: datetime
) -> HoldProblem | None:
    """Why a new hold of the room (a booking or a session) cannot be confirmed, or None."""
    if starts_at < now:
        return "in_the_past"
    if not room.within_opening_hours(starts_at, ends_at):
        return "outside_opening_hours"
    return room._fits(persons, starts_at, ends_at)


def _schedule_session(room: Room | None, event: SessionScheduled, d: _Decider) -> None:
    def reject(reason: SessionRejectReason) -> None:
        d.add(
            SessionRejected(**d.common(event.room_id), session_id=event.session_id, reason=reason)
        )

    if room is None:
        return reject("unknown_room")
    if event.session_id in room.sessions:
        return reject("invalid")
    problem = _hold_problem(room, event.capacity, event.starts_at, event.ends_at, d.now)
    if problem is not None:
        return reject(problem)
    room.sessions[event.session_id] = Session(
        session_id=event.session_id,
        title=event.title,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        capacity=event.capacity,
    )
    d.add(
        SessionScheduledDecision(
            **d.common(room.room_id),
            session_id=event.session_id,
            title=event.title,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            capacity=event.capacity,
        )
    )
    return None


# --- bookings -------------------------------------------------------------------------


def _request_booking(room: Room | None, event: BookingRequested, d: _Decider) -> None:
    def reject(reason: BookingRejectReason) -> None:
        d.add(
            BookingRejected(
                **d.common(event.room_id),
                booking_id=event.booking_id,
                member_id=event.member_id,
                reason=reason,
            )
        )

    if room is None:
        return reject("unknown_room")
    if event.booking_id in room.bookings:
        return reject("invalid")
    problem = _hold_problem(room, event.party_size, event.starts_at, event.ends_at, d.now)
    if problem is not None:
        return reject(problem)
    room.bookings[event.booking_id] = Booking(
        booking_id=event.booking_id,
        member_id=event.member_id,
        party_size=event.party_size,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
    )
    d.add(
        BookingConfirmed(
            **d.common(room.room_id),
            booking_id=event.booking_id,
            member_id=event.member_id,
            party_size=event.party_size,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
        )
    )
    return None


def _cancel_booking(room: Room | None, event: BookingCancelRequested, d: _Decider) -> None:
    booking = room.bookings.get(event.booking_id) if room else None
    if room is None or booking is None or not booking.holds_room:
        d.add(
            BookingRejected(
                **d.common(event.room_id),
                booking_id=event.booking_id,
                member_id=event.member_id,
                reason="unknown_room" if room is None else "unknown_booking",
            )
        )
        return
    if booking.member_id != event.member_id:
        # Someone else's booking is, for the one asking, a booking that does not exist.
        d.add(
            BookingRejected(
                **d.common(room.room_id),
                booking_id=event.booking_id,
                member_id=event.member_id,
                reason="unknown_booking",
            )
        )
        return
    booking.status = "cancelled"
    d.add(
        BookingCancelled(
            **d.common(room.room_id),
            booking_id=booking.booking_id,
            member_id=booking.member_id,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
        )
    )


# --- sessions and enrollments ---------------------------------------------------------


def _enroll(room: Room | None, event: EnrollmentRequested, d: _Decider) -> None:
    def reject(reason: EnrollmentRejectReason) -> None:
        d.add(
            EnrollmentRejected(
                **d.common(event.room_id),
                session_id=event.session_id,
                member_id=event.member_id,
                reason=reason,
            )
        )

    session = room.sessions.get(event.session_id) if room else None
    if room is None or session is None:
        return reject("unknown_session")
    if session.find(event.member_id) is not None:
        return reject("already_enrolled")
    if session.ends_at <= d.now or event.party_size > session.capacity:
        return reject("invalid")
    enrollment = Enrollment(event.member_id, event.party_size)
    # First come, first served: nobody overtakes the waitlist.
    if not session.waitlist and session.seats_taken + event.party_size <= session.capacity:
        session.enrolled.append(enrollment)
        d.add(
            EnrollmentConfirmed(
                **d.common(room.room_id),
                session_id=session.session_id,
                member_id=event.member_id,
                party_size=event.party_size,
            )
        )
    else:
        session.waitlist.append(enrollment)
        d.add(
            EnrollmentWaitlisted(
                **d.common(room.room_id),
                session_id=session.session_id,
                member_id=event.member_id,
                party_size=event.party_size,
                waitlist_position=len(session.waitlist),
            )
        )
    return None


def _cancel_enrollment(room: Room | None, event: EnrollmentCancelRequested, d: _Decider) -> None:
    session = room.sessions.get(event.session_id) if room else None
    found = session.find(event.member_id) if session else None
    if room is None or session is None or found is None:
        d.add(
            EnrollmentRejected(
                **d.common(event.room_id),
                session_id=event.session_id,
                member_id=event.member_id,
                reason="unknown_enrollment",
            )
        )
        return
    queue, enrollment = found
    was: Literal["confirmed", "waitlisted"] = (
        "confirmed" if queue is session.enrolled else "waitlisted"
    )
    queue.remove(enrollment)
    d.add(
        EnrollmentCancelled(
            **d.common(room.room_id),
            session_id=session.session_id,
            member_id=event.member_id,
            was=was,
        )
    )
    if was == "confirmed":
        _promote(room, session, d)


def _promote(room: Room, session: Session, d: _Decider) -> None:
    """Freed seats go to the oldest waitlisted enrollments that fit, in order."""
    promoted = True
    while promoted:
        promoted = False
        for waiting in session.waitlist:
            if session.seats_taken + waiting.party_size <= session.capacity:
                session.waitlist.remove(waiting)
                session.enrolled.append(waiting)
                d.add(
                    EnrollmentPromoted(
                        **d.common(room.room_id),
                        session_id=session.session_id,
                        member_id=waiting.member_id,
                        party_size=waiting.party_size,
                    )
                )
                promoted = True
                break


# --- check-ins ------------------------------------------------------------------------


def _checkin(room: Room | None, event: Checkin, d: _Decider, policy: Policy) -> None:
    late = d.now - event.occurred_at > policy.late_tolerance
    fields: dict[str, Any] = {
        "kiosk_id": event.kiosk_id,
        "party_size": event.party_size,
        "member_id": event.member_id,
        "booking_id": event.booking_id,
        "session_id": event.session_id,
        "late": late,
    }

    def deny(reason: CheckinDenyReason) -> None:
        d.add(
            CheckinDenied(
                **d.common(event.room_id),
                **fields,
                occupancy=room.occupancy if room else 0,
                capacity=room.capacity if room else 0,
                reason=reason,
            )
        )

    if room is None:
        return deny("unknown_room")
    at = event.occurred_at
    # Opening hours are judged when the people stood at the door; a late check-in from
    # before the last closing check-out describes people who have already left.
    if not room.is_open(at) or (room.last_closing is not None and at <= room.last_closing):
        return deny("closed")

    bookings = room._active_at(at, policy.early_arrival)
    sessions = room._active_sessions(at, policy.early_arrival)
    # The booking named on the check-in first; else the member's booking active now.
    own_booking = next((b for b in bookings if b.booking_id == event.booking_id), None) or next(
        (b for b in bookings if event.member_id is not None and b.member_id == event.member_id),
        None,
    )

    def attends(session: Session) -> bool:
        # Attendees are the enrolled; a waitlisted member holds no seat. A check-in that
        # names the session but no member (a teacher, a group at the door) is let in.
        enrolled = event.member_id is not None and any(
            e.member_id == event.member_id for e in session.enrolled
        )
        named = session.session_id == event.session_id and event.member_id is None
        return enrolled or named

    own_session = next(
        (s for s in sessions if attends(s)),
        None,
    )
    if room.booking_mode == "exclusive" and own_booking is None and own_session is None:
        reserved_now = [b for b in bookings if b.starts_at <= at] + [
            s for s in sessions if s.starts_at <= at
        ]
        if reserved_now:
            return deny("reserved")
    # In a shared room, persons of bookings active now who have not arrived keep their places.
    held = 0
    if room.booking_mode == "shared":
        held = sum(
            b.party_size
            for b in bookings
            if not b.checked_in and b.starts_at <= at and b is not own_booking
        )
    if room.occupancy + event.party_size + held > room.capacity:
        return deny("room_full")

    room.occupancy += event.party_size
    if own_booking is not None:
        own_booking.checked_in = True
        # The decision names the booking this check-in attended (the kiosk may have named
        # none), so the log alone says which bookings were honoured (replay relies on it).
        fields["attended_booking_id"] = own_booking.booking_id
    d.add(
        CheckinAdmitted(
            **d.common(room.room_id), **fields, occupancy=room.occupancy, capacity=room.capacity
        )
    )
    return None


def _checkout(room: Room, event: Checkout, d: _Decider) -> None:
    room.occupancy = max(0, room.occupancy - event.party_size)
    d.add(
        CheckoutRecorded(
            **d.common(room.room_id),
            kiosk_id=event.kiosk_id,
            party_size=event.party_size,
            member_id=event.member_id,
            occupancy=room.occupancy,
            capacity=room.capacity,
        )
    )


# --- the clock ------------------------------------------------------------------------


def _tick(room: Room, at: datetime, d: _Decider, policy: Policy) -> None:
    for booking in sorted(room.bookings.values(), key=lambda b: (b.starts_at, b.booking_id)):
        if (
            booking.holds_room
            and not booking.checked_in
            and booking.starts_at + policy.no_show_grace <= at
        ):
            booking.status = "released"
            d.add(
                BookingReleased(
                    **d.common(room.room_id),
                    booking_id=booking.booking_id,
                    member_id=booking.member_id,
                    starts_at=booking.starts_at,
                    ends_at=booking.ends_at,
                )
            )
    closing = room.latest_closing(at)
    if room.last_closing is None or room.last_closing < closing:
        if room.occupancy > 0:
            everyone = room.occupancy
            room.occupancy = 0
            d.add(
                CheckoutRecorded(
                    **d.common(room.room_id),
                    kiosk_id=None,
                    party_size=everyone,
                    occupancy=0,
                    capacity=room.capacity,
                )
            )
        room.last_closing = closing
    horizon = at - KEEP_HISTORY
    room.bookings = {k: b for k, b in room.bookings.items() if b.ends_at > horizon}
    room.sessions = {k: s for k, s in room.sessions.items() if s.ends_at > horizon}
