"""People at the door: check-ins (``checkin``) and check-outs (``checkout``).

A check-in is judged at the moment the people stood at the door: closed, reserved
(exclusive rooms), room full, else admitted. A confirmed booking's party is protected:
from its arrival window on (``Room.arrival_opens``: up to ``early_arrival`` before the
start, once the holds before it are over) an exclusive room is theirs, and in any room the
places of the persons still to come are kept. People who came for no booking may stay until
closing, so they get only the places no booked party will need before then; that is what
makes sure a booked party arriving in its window is never turned away. The bookings and
sessions under way come from the room's index, not from a scan of every booking.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.capacity.decider import Decider
from domain.capacity.room import Booking, Policy, Room, Session
from schemas.decisions import (
    CheckinAdmitted,
    CheckinDenied,
    CheckinDenyReason,
    CheckoutRecorded,
    CheckoutRejected,
)
from schemas.inputs import Checkin, Checkout

_LOOK_AHEAD = timedelta(days=1)
"""How far the places of bookings to come are kept from walk-ins in a room that never closes."""


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
    tolerance = policy.kiosk_clock_tolerance
    if tolerance is not None and event.occurred_at - d.now > tolerance:
        # A kiosk clock running ahead would be judged at a time that has not come: it
        # could take tomorrow's booked places or find the room closed. Refused, answered.
        return deny("clock_skew")
    at = event.occurred_at
    # Opening hours are judged when the people stood at the door; a late check-in from
    # before the last closing check-out describes people who have already left.
    opening = room.opening_at(at)
    if opening is None or (room.last_closing is not None and at <= room.last_closing):
        return deny("closed")

    early = policy.early_arrival
    bookings = room.arrived_bookings(at, early)
    sessions = room.arrived_sessions(at, early)
    # The booking named on the check-in first; else the member's booking under way now.
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

    own_session = next((s for s in sessions if attends(s)), None)
    # Exclusive: while a booking's or session's party may be in, the room is theirs.
    theirs = own_booking is not None or own_session is not None
    if room.booking_mode == "exclusive" and not theirs and (bookings or sessions):
        return deny("reserved")
    # Of the party, those the own booking still expects take places kept for them.
    booked = min(event.party_size, own_booking.expected) if own_booking else 0
    kept = sum(b.expected for b in bookings) - booked
    if room.occupancy + event.party_size + kept > room.capacity:
        return deny("room_full")
    unbooked = event.party_size - booked
    if own_session is not None and own_booking is None:
        until = own_session.ends_at  # attendees leave with their session
    else:
        until = room.joined_end(opening[1], at + _LOOK_AHEAD)  # anyone else: until closing
    if unbooked and not _leaves_room_for_bookings(room, at, unbooked, bookings, until, early):
        return deny("room_full")

    room.occupancy += event.party_size
    if own_booking is not None:
        own_booking.checked_in = True
        own_booking.arrived += booked
        # The decision names the booking this check-in attended (the kiosk may have named
        # none), so the log alone says which bookings were honoured (replay relies on it).
        fields["attended_booking_id"] = own_booking.booking_id
    d.add(
        CheckinAdmitted(
            **d.common(room.room_id), **fields, occupancy=room.occupancy, capacity=room.capacity
        )
    )
    return None


def _leaves_room_for_bookings(
    room: Room,
    at: datetime,
    persons: int,
    bookings: list[Booking],
    until: datetime,
    early: timedelta,
) -> bool:
    """Whether ``persons`` who came for no booking, staying until ``until`` (attendees until
    their session ends, anyone else until closing), leave every
    booked party its places: besides the others inside who came for no booking, and the
    parties of the bookings under way or to come then (``Room.booked_peak``)."""
    booked_inside = sum(b.arrived for b in bookings)
    unbooked_inside = max(0, room.occupancy - booked_inside)
    places_left = room.capacity - unbooked_inside - persons
    return places_left >= 0 and room.booked_peak_within(at, max(until, at), early, places_left)


def checkout(room: Room | None, event: Checkout, d: Decider) -> None:
    if room is None:
        d.add(
            CheckoutRejected(
                **d.common(event.room_id),
                kiosk_id=event.kiosk_id,
                party_size=event.party_size,
                member_id=event.member_id,
                reason="unknown_room",
            )
        )
        return
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
