"""Bookings: requesting one (``booking.requested``) and cancelling it.

A booking is confirmed when the room can hold its party for its interval
(``Room.hold_problem``: the same checks as for a session); only its booker can cancel it.
"""

from __future__ import annotations

from domain.capacity.decider import Decider
from domain.capacity.room import Booking, Room
from schemas.decisions import (
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingRejectReason,
)
from schemas.inputs import BookingCancelRequested, BookingRequested


def request_booking(room: Room | None, event: BookingRequested, d: Decider) -> None:
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
    problem = room.hold_problem(event.party_size, event.starts_at, event.ends_at, d.now)
    if problem is not None:
        return reject(problem)
    room.add_booking(
        Booking(
            booking_id=event.booking_id,
            member_id=event.member_id,
            party_size=event.party_size,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
        )
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


def cancel_booking(room: Room | None, event: BookingCancelRequested, d: Decider) -> None:
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
