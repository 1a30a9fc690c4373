"""People at the door: check-ins (``checkin``) and check-outs (``checkout``).

A check-in is judged at the moment the people stood at the door: closed, reserved
(exclusive rooms), room full, else admitted; the bookings and sessions under way then
come from the room's index, not from a scan of every booking.
"""

from __future__ import annotations

from typing import Any

from domain.capacity.decider import Decider
from domain.capacity.room import Policy, Room, Session
from schemas.decisions import (
    CheckinAdmitted,
    CheckinDenied,
    CheckinDenyReason,
    CheckoutRecorded,
)
from schemas.inputs import Checkin, Checkout


def checkin(room: Room | None, event: Checkin, d: Decider, policy: Policy) -> None:
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

    bookings = room.active_bookings(at, policy.early_arrival)
    sessions = room.active_sessions(at, policy.early_arrival)
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


def checkout(room: Room, event: Checkout, d: Decider) -> None:
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
