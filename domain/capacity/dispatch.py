"""``decide``: which rule an input goes to.

The one entry point of the rules: it takes a room, one input event and the time it is
decided, routes the input to its concept's module and returns the decisions it causes.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from domain.capacity.bookings import cancel_booking, request_booking
from domain.capacity.checkins import checkin, checkout
from domain.capacity.clock import tick
from domain.capacity.configuration import change_capacity, configure_room
from domain.capacity.decider import Decider, Unprocessable
from domain.capacity.room import Policy, Room
from domain.capacity.sessions import cancel_enrollment, enroll, schedule_session
from schemas.decisions import Decision
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

_DEFAULT_POLICY = Policy()


def decide(
    room: Room | None,
    event: AnyInput,
    now: datetime,
    policy: Policy = _DEFAULT_POLICY,
    seen_booking_ids: Container[str] = frozenset(),
) -> tuple[Room | None, list[Decision]]:
    """Apply one input to a room; returns the room's new state and the decisions made.

    ``room`` is None while the room is unknown. ``now`` is when the input is
    decided; it must be timezone-aware. ``seen_booking_ids`` answers whether a booking id
    was answered in this room before, beyond the bookings its state still holds (the
    caller's memory of every id; see ``domain.capacity.bookings``). Every input that names
    a room gets its primary decision (an unknown room's check-out or capacity change is
    rejected ``unknown_room``); ``Unprocessable`` remains for an input type with no rule.
    """
    if isinstance(event, RoomConfigured):
        return configure_room(room, event, now)
    if isinstance(event, ClockTick):
        d = Decider(event.event_id, None, room, now)
        if room is not None:
            tick(room, event.occurred_at, d, policy)
        return room, d.out
    d = Decider(event.event_id, event.event_id, room, now)
    match event:
        case RoomCapacityChanged():
            change_capacity(room, event, d)
        case SessionScheduled():
            schedule_session(room, event, d)
        case BookingRequested():
            request_booking(room, event, d, seen_booking_ids)
        case BookingCancelRequested():
            cancel_booking(room, event, d)
        case EnrollmentRequested():
            enroll(room, event, d)
        case EnrollmentCancelRequested():
            cancel_enrollment(room, event, d)
        case Checkin():
            checkin(room, event, d, policy)
        case Checkout():
            checkout(room, event, d)
        case _:  # pragma: no cover - the union above is exhaustive
            raise Unprocessable(f"no rule for input type {event.type!r}")
    return room, d.out
