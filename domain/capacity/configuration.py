"""A room's rules: configuring it, changing its capacity, and what no longer fits after.

Both ``room.configured`` (for a known room) and ``room.capacity_changed`` keep every
booking and list the confirmed ones the new rules no longer allow
(``conflicting_bookings``) for staff to sort out; nothing is cancelled automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.capacity.decider import Decider
from domain.capacity.holds import Overlaps, Overload
from domain.capacity.room import Booking, Room
from schemas.decisions import CapacityChanged, Decision, RoomConfiguredDecision
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
    )
    if new:
        # Closings before the room existed had nobody inside: without this the first clock
        # tick would check out everyone admitted since, at the previous day's closing.
        room.last_closing = room.latest_closing(now)
    d = Decider(event.event_id, event.event_id, room, now)
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
    a reconfiguration, outside the opening hours, or overlapping another hold in an
    exclusive room. Sorted by (starts_at, booking_id). One sweep over all the holds'
    edges answers for every booking: O(n log n) for n holds.
    """
    holds = room.holds()
    too_many: Callable[[Booking], bool]
    if room.booking_mode == "shared":
        # Every booking during which, at some instant, the persons held exceed the capacity.
        overload = Overload(holds, room.capacity)

        def too_many(b: Booking) -> bool:
            return overload.during(b.starts_at, b.ends_at)

    else:
        # Made exclusive while bookings or sessions overlap: every booking overlapping another.
        overlaps = Overlaps(holds)

        def too_many(b: Booking) -> bool:
            return overlaps.besides(b.booking_id, b.starts_at, b.ends_at)

    pending = sorted(
        (b for b in room.bookings.values() if b.holds_room and now < b.ends_at),
        key=lambda b: (b.starts_at, b.booking_id),
    )
    return [
        b.booking_id
        for b in pending
        if not room.within_opening_hours(b.starts_at, b.ends_at)
        or b.party_size > room.capacity
        or too_many(b)
    ]


def change_capacity(room: Room, event: RoomCapacityChanged, d: Decider) -> None:
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
