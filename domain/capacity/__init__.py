"""The capacity rules: one room's state and every decision about it.

Plain Python, no Kafka and no SQL, so the rules can be tested fast and
exhaustively. ``decide`` takes a room, one input event and the time it is decided
and returns the decisions it causes; the caller stores the new state and the
decisions together. The rules are written down in ``docs/rules.md``.

One module per concept:

- ``room``: the state (``Room``, ``Booking``, ``Session``, JSON), opening hours (through
  ``domain.opening_hours``), the questions about holds, answered through an index by start,
  and when a booked party or a session's attendees may come in (``Room.arrival_opens``);
- ``holds``: intervals that hold the room and the sorted/sweep algorithms over them;
- ``decider``: decision ids and common fields, ``Unprocessable``;
- ``dispatch``: ``decide``, routing each input to one of
- ``configuration`` (configure, capacity changes, conflicting bookings and sessions),
  ``bookings`` (booking ids answered once, ``seen_booking_ids``), ``sessions`` (sessions,
  enrollments, a fair waitlist), ``checkins`` (protected bookings) and ``clock`` (ticks).
"""

from domain.capacity.configuration import configure, conflicting_bookings, conflicting_sessions
from domain.capacity.decider import Unprocessable
from domain.capacity.dispatch import decide
from domain.capacity.holds import Hold, max_concurrent
from domain.capacity.room import (
    KEEP_HISTORY,
    Booking,
    Enrollment,
    HoldProblem,
    Policy,
    Room,
    Session,
    zone,
)

__all__ = [
    "KEEP_HISTORY",
    "Booking",
    "Enrollment",
    "Hold",
    "HoldProblem",
    "Policy",
    "Room",
    "Session",
    "Unprocessable",
    "configure",
    "conflicting_bookings",
    "conflicting_sessions",
    "decide",
    "max_concurrent",
    "zone",
]
