"""The clock (``clock.tick``): what the passing of time decides.

No-shows are released, everyone still inside is checked out once per closing (a room
open around the clock never closes), and history older than ``KEEP_HISTORY`` is forgotten
(its booking ids stay answered: the room authority remembers them apart). Ticks come
every 30 seconds for every room, so a tick with nothing to do looks only at the earliest
pending no-show and the earliest ending booking and session, not at every booking.
"""

from __future__ import annotations

from datetime import datetime

from domain.capacity.decider import Decider
from domain.capacity.room import KEEP_HISTORY, Policy, Room
from schemas.decisions import BookingReleased, CheckoutRecorded


def tick(room: Room, at: datetime, d: Decider, policy: Policy) -> None:
    for booking in room.release_no_shows(at, policy.no_show_grace):
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
    if closing is not None and (room.last_closing is None or room.last_closing < closing):
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
    room.forget_ended(at - KEEP_HISTORY)
