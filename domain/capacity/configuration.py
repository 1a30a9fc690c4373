"""A room's rules: configuring it, changing its capacity, and what no longer fits after.

Both ``room.configured`` (for a known room) and ``room.capacity_changed`` keep every
booking, session and person inside. They list the confirmed bookings and the sessions the
new rules no longer allow (``conflicting_bookings``, ``conflicting_sessions``) and how many
persons inside are over the new capacity, for staff to sort out; nothing is cancelled
automatically. A session's seats are capped at the room's capacity from then on (and given
back when it is raised again: the waitlist moves up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.capacity.decider import Decider
from domain.capacity.holds import Overlaps, Overload
from domain.capacity.room import Room
from domain.capacity.sessions import promote_everywhere
from schemas.decisions import (
    CapacityChanged,
    CapacityRejected,
    Decision,
    RoomConfiguredDecision,
)
from schemas.inputs import BookingMode, RoomCapacityChanged, RoomConfigured


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
    center_name: str | None = None,
) -> Room:
    """The room with these rules in force: a new room, or the same room's state kept."""
    if room is None:
        room = Room(room_id, center_id, name, capacity, booking_mode, opens, closes, timezone)
        room.center_name = center_name
        return room
    room.center_id, room.name, room.capacity = center_id, name, capacity
    room.center_name = center_name
    room.booking_mode, room.opens, room.closes, room.timezone = (
        booking_mode,
        opens,
        closes,
        timezone,
    )
    return room


def configure_room(
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
        event.center_name,
    )
    if room.last_closing is None:
        # Closings before the room existed (or while it was open around the clock) had
        # nobody to check out: without this the first clock tick would check out everyone
        # admitted since, at the previous day's closing.
        room.last_closing = room.latest_closing(now)
    d = Decider(event.event_id, event.event_id, room, now)
    conflicts = None if new else _Conflicts(room)
    d.add(
        RoomConfiguredDecision(
            **d.common(room.room_id),
            name=room.name,
            capacity=room.capacity,
            booking_mode=room.booking_mode,
            opens=room.opens,
            closes=room.closes,
            timezone=room.timezone,
            conflicting_booking_ids=[] if new else conflicting_bookings(room, now, conflicts),
            conflicting_session_ids=[] if new else conflicting_sessions(room, now, conflicts),
            occupancy_over_capacity=max(0, room.occupancy - room.capacity),
            center_name=room.center_name,
        )
    )
    promote_everywhere(room, d)
    return room, d.out


class _Conflicts:
    """Which holds (bookings, sessions) the room's rules no longer allow, for many holds.

    Too many persons for the capacity (alone, or together in a shared room), or overlapping
    another hold in an exclusive room. One sweep over all the holds' edges answers for
    every hold: O(n log n) for n holds.
    """

    def __init__(self, room: Room) -> None:
        holds = room.holds()
        self.room = room
        self.too_many: Callable[[str, datetime, datetime], bool]
        if room.booking_mode == "shared":
            # Every hold during which, at some instant, the persons held exceed the capacity.
            overload = Overload(holds, room.capacity)
            self.too_many = lambda _ident, starts, ends: overload.during(starts, ends)
        else:
            # Made exclusive while bookings or sessions overlap: every hold overlapping another.
            self.too_many = Overlaps(holds).besides

    def conflict(self, ident: str, persons: int, starts_at: datetime, ends_at: datetime) -> bool:
        return (
            not self.room.within_opening_hours(starts_at, ends_at)
            or persons > self.room.capacity
            or self.too_many(ident, starts_at, ends_at)
        )


def conflicting_bookings(
    room: Room, now: datetime, conflicts: _Conflicts | None = None
) -> list[str]:
    """Confirmed bookings not yet over that the room's rules no longer allow.

    Too many persons for the capacity (alone, or together in a shared room), or, after
    a reconfiguration, outside the opening hours, or overlapping another hold in an
    exclusive room. Sorted by (starts_at, booking_id).
    """
    conflicts = conflicts or _Conflicts(room)
    pending = sorted(
        (b for b in room.bookings.values() if b.holds_room and now < b.ends_at),
        key=lambda b: (b.starts_at, b.booking_id),
    )
    return [
        b.booking_id
        for b in pending
        if conflicts.conflict(b.booking_id, b.party_size, b.starts_at, b.ends_at)
    ]


def conflicting_sessions(
    room: Room, now: datetime, conflicts: _Conflicts | None = None
) -> list[str]:
    """Sessions not yet over that the room's rules no longer fit, as for bookings: more
    seats than the capacity (they are capped), not enough room beside the other holds,
    outside the opening hours, or overlapping in an exclusive room. By (starts_at, id)."""
    conflicts = conflicts or _Conflicts(room)
    pending = sorted(
        (s for s in room.sessions.values() if now < s.ends_at),
        key=lambda s: (s.starts_at, s.session_id),
    )
    return [
        s.session_id
        for s in pending
        if conflicts.conflict(f"session:{s.session_id}", s.capacity, s.starts_at, s.ends_at)
    ]


def change_capacity(room: Room | None, event: RoomCapacityChanged, d: Decider) -> None:
    if room is None:
        d.add(
            CapacityRejected(
                **d.common(event.room_id), capacity=event.capacity, reason="unknown_room"
            )
        )
        return
    previous = room.capacity
    room.capacity = event.capacity
    conflicts = _Conflicts(room)
    d.add(
        CapacityChanged(
            **d.common(room.room_id),
            capacity=room.capacity,
            previous_capacity=previous,
            reason=event.reason,
            conflicting_booking_ids=conflicting_bookings(room, d.now, conflicts),
            conflicting_session_ids=conflicting_sessions(room, d.now, conflicts),
            occupancy_over_capacity=max(0, room.occupancy - room.capacity),
        )
    )
    promote_everywhere(room, d)
