"""Bookings: requesting one (``booking.requested``) and cancelling it.

A booking is confirmed when the room can hold its party for its interval
(``Room.hold_problem``: the same checks as for a session); only its booker can cancel it,
and only until it ends. A booking id is answered once: any later request with it, however
long after, is a duplicate. The room's state forgets bookings two days after they end, so
the ids it no longer holds come from outside (``seen_booking_ids``, the room authority's
table of every id answered).
"""

from __future__ import annotations

from collections.abc import Container

from domain.capacity.decider import Decider
from domain.capacity.room import Booking, Room
from schemas.decisions import (
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingRejectReason,
)
from schemas.inputs import BookingCancelRequested, BookingRequested


def request_booking(
    room: Room | None, event: BookingRequested, d: Decider, seen_booking_ids: Container[str]
) -> None:
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
    if event.booking_id in room.bookings or event.booking_id in seen_booking_ids:
        return reject("duplicate_booking_id")
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
    booking = room.bookings.get(event.booking_id)
    # Someone else's booking is, for the one asking, a booking that does not exist.
    if booking is None or not booking.holds_room or booking.member_id != event.member_id:
        return reject("unknown_booking")
    # Its hours were used (or released as a no-show): a cancel cannot take them back.
    if booking.ends_at <= d.now:
        return reject("booking_ended")
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
    return None
