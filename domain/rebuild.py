"""Rebuild a room's state from the ``decisions`` log alone (``spaces replay``).

The decisions are the system's record of what it decided; applying them in
order must give the state the room authority holds. Two things are not in the
log and are left out of the comparison: the clock's bookkeeping of the last
closing (a tick that checks nobody out decides nothing) and bookings and
sessions the authority already pruned (ended more than ``KEEP_HISTORY`` ago).

The room authority's memory of the booking ids it answered (kept apart from the
room's state, which forgets) is in the log too: ``seen_booking_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.capacity import KEEP_HISTORY, Booking, Enrollment, Room, Session, configure
from schemas.decisions import (
    AnyDecision,
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingRejectReason,
    BookingReleased,
    CapacityChanged,
    CheckinAdmitted,
    CheckoutRecorded,
    EnrollmentCancelled,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    EnrollmentWaitlisted,
    RoomConfiguredDecision,
    SessionScheduledDecision,
)


def apply(room: Room | None, decision: AnyDecision) -> Room | None:
    """The room after ``decision``; decisions that change nothing return it unchanged."""
    if isinstance(decision, RoomConfiguredDecision):
        return configure(
            room,
            decision.room_id,
            decision.center_id or (room.center_id if room else ""),
            decision.name,
            decision.capacity,
            decision.booking_mode,
            decision.opens,
            decision.closes,
            decision.timezone,
            decision.center_name,
        )
    if room is None:
        return None
    match decision:
        case CapacityChanged():
            room.capacity = decision.capacity
        case SessionScheduledDecision():
            room.sessions[decision.session_id] = Session(
                session_id=decision.session_id,
                title=decision.title,
                starts_at=decision.starts_at,
                ends_at=decision.ends_at,
                capacity=decision.capacity,
            )
        case BookingConfirmed():
            room.bookings[decision.booking_id] = Booking(
                booking_id=decision.booking_id,
                member_id=decision.member_id,
                party_size=decision.party_size,
                starts_at=decision.starts_at,
                ends_at=decision.ends_at,
            )
        case BookingCancelled() | BookingReleased():
            booking = room.bookings.get(decision.booking_id)
            if booking is not None:
                booking.status = "cancelled" if decision.type == "booking.cancelled" else "released"
        case EnrollmentConfirmed() | EnrollmentWaitlisted():
            session = room.sessions.get(decision.session_id)
            if session is not None:
                queue = (
                    session.enrolled
                    if decision.type == "enrollment.confirmed"
                    else (session.waitlist)
                )
                queue.append(Enrollment(decision.member_id, decision.party_size))
        case EnrollmentCancelled() | EnrollmentPromoted():
            session = room.sessions.get(decision.session_id)
            found = session.find(decision.member_id) if session else None
            if session is not None and found is not None:
                queue, enrollment = found
                queue.remove(enrollment)
                if decision.type == "enrollment.promoted":
                    session.enrolled.append(enrollment)
        case CheckinAdmitted():
            room.occupancy = decision.occupancy
            if decision.attended_booking_id in room.bookings:
                booking = room.bookings[decision.attended_booking_id]
                booking.checked_in = True
                # As the rule counts: the party's persons still expected, the rest unbooked.
                booking.arrived += min(decision.party_size, booking.expected)
        case CheckoutRecorded():
            room.occupancy = decision.occupancy
        case _:
            pass
    return room


_ANSWERS_TO_A_CANCEL: frozenset[BookingRejectReason] = frozenset(
    {"unknown_room", "unknown_booking", "booking_ended"}
)
"""``booking.rejected`` reasons that answer a cancel (or a request for a room that does not
exist, which remembers nothing): every other one answers a request of a configured room."""


def seen_booking_id(decision: AnyDecision) -> str | None:
    """The booking id a decision makes answered in its room for good, if any.

    A ``booking.requested`` for a configured room is answered ``booking.confirmed`` or
    ``booking.rejected`` (any reason but the ones above); from then on the id is a
    duplicate there (``duplicate_booking_id``), however long after.
    """
    if isinstance(decision, BookingConfirmed):
        return decision.booking_id
    if isinstance(decision, BookingRejected) and decision.reason not in _ANSWERS_TO_A_CANCEL:
        return decision.booking_id
    return None


def comparable(room: Room, now: datetime) -> dict[str, Any]:
    """What replay compares: the room without clock bookkeeping and pruned history."""
    cutoff = now - KEEP_HISTORY
    document = room.to_json()
    document.pop("last_closing")
    document["bookings"] = sorted(
        (b for b in document["bookings"] if datetime.fromisoformat(b["ends_at"]) > cutoff),
        key=lambda b: str(b["booking_id"]),
    )
    document["sessions"] = sorted(
        (s for s in document["sessions"] if datetime.fromisoformat(s["ends_at"]) > cutoff),
        key=lambda s: str(s["session_id"]),
    )
    return document
