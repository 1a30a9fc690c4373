"""The clock (``clock.tick``): what the passing of time decides.

No-shows are released, everyone still inside is checked out once per closing (a room
open around the clock never closes), and history older than ``KEEP_HISTORY`` is forgotten
(its booking ids stay answered: the room authority remembers them apart). A room is ticked
once a tick can change it (``next_tick_due``) and at least once a day; a tick with nothing
to do looks only at the earliest pending no-show and the earliest ending booking and
session, not at every booking.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.capacity.decider import Decider
from domain.capacity.room import KEEP_HISTORY, Policy, Room
from schemas.decisions import BookingReleased, CheckoutRecorded

TICKED_AT_LEAST_EVERY = timedelta(days=1)
"""The longest a room goes without a tick, whatever it holds: a net under ``next_tick_due``
(and what makes the clock tick a room whose due time was never written)."""


def next_tick_due(room: Room, after: datetime, policy: Policy) -> datetime:
    """The earliest instant a tick can change ``room``: a tick before it finds nothing.

    That is the first of: the next no-show's deadline, the first closing since the last
    one (its check-out, or with nobody inside its bookkeeping: a late check-in from before
    it is refused), and the first end of a booking or session plus ``KEEP_HISTORY`` (it
    is forgotten then); and at the latest ``after + TICKED_AT_LEAST_EVERY``. The clock
    ticks a room only from then on, so the ticks of a nation's rooms cost what the rooms
    hold, not one input per room every ``clock_interval_s``. It may be at or before
    ``after``: the room is due now.
    """
    due = [after + TICKED_AT_LEAST_EVERY]
    no_show = room.next_no_show_deadline(policy.no_show_grace)
    if no_show is not None:
        due.append(no_show)
    if room.last_closing is None:
        if not room.never_closes():
            due.append(after)  # a closing has passed that the room has not recorded
    elif (closing := room.next_closing_after(room.last_closing)) is not None:
        due.append(closing)
    ended = room.first_end()
    if ended is not None:
        due.append(ended + KEEP_HISTORY)
    return min(due)


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
