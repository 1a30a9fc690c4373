"""Occupancy next to bookings (issue 9): person-hours, capacity hours, occupancy utilization,
attendance and the no-show rate, the time of the peak, DST-correct and overnight open hours,
and rejections that leave the booking they name alone.

Hand-worked examples first, then a property: a random month of traffic at the door against an
obvious minute-by-minute computation written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.usage import CenterUsage, RoomUsage, fold, local_month
from schemas.decisions import (
    AnyDecision,
    BookingCancelled,
    BookingRejected,
    CapacityChanged,
    CheckinAdmitted,
    CheckoutRecorded,
)
from tests.test_usage import (
    CENTER,
    ROOM_A,
    ROOM_B,
    Usage,
    admitted,
    checkout,
    configured,
    confirmed,
    kst,
    released,
    run,
)

NEW_YORK = ZoneInfo("America/New_York")


def et(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def with_capacity(decision: Any, capacity: int) -> Any:
    return decision.model_copy(update={"capacity": capacity})


def closing(at: datetime, party: int, room: str = ROOM_A, capacity: int = 20) -> CheckoutRecorded:
    """The clock's check-out of everyone still inside, decided when the tick came."""
    return CheckoutRecorded(
        event_id=uuid4(),
        caused_by=None,
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        kiosk_id=None,
        party_size=party,
        occupancy=0,
        capacity=capacity,
    )


def for_booking(decision: CheckinAdmitted, booking: str) -> CheckinAdmitted:
    return decision.model_copy(update={"attended_booking_id": booking})


def capacity_changed(at: datetime, capacity: int, room: str = ROOM_A) -> CapacityChanged:
    return CapacityChanged(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        capacity=capacity,
        previous_capacity=20,
        reason="distancing",
    )


def rejected_as(booking: str, reason: Any, at: datetime) -> BookingRejected:
    return BookingRejected(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=ROOM_A,
        center_id=CENTER,
        decided_at=at,
        booking_id=booking,
        member_id="m1",
        reason=reason,
    )


# --- the book café: used all month, booked never ----------------------------------------


def book_cafe() -> Usage:
    """09:00-21:00, 30 places, no bookings: walk-ins only."""
    cafe = with_capacity(configured(kst(10, 20, 8), opens="09:00", closes="21:00"), 30)
    return run(
        cafe,
        with_capacity(admitted(kst(11, 2, 10), party=3, occupancy=3), 30),
        with_capacity(checkout(kst(11, 2, 12), party=3, occupancy=0), 30),  # 3 x 2 h
        with_capacity(admitted(kst(11, 28, 13, 30), party=20, occupancy=20), 30),  # book talk
        with_capacity(admitted(kst(11, 28, 14), party=10, occupancy=30), 30),  # 20 x 0.5 h
        with_capacity(checkout(kst(11, 28, 15), party=25, occupancy=5), 30),  # 30 x 1 h
        closing(kst(11, 28, 21, 1), party=5, capacity=30),  # 5 x 6 h, until 21:00
    )


def test_the_book_cafe_shows_how_full_it_was_though_nobody_booked() -> None:
    november = book_cafe().room("2026-11")
    assert (november.booked_hours, november.utilization) == (0.0, 0.0)
    assert november.open_hours == 30 * 12
    assert november.capacity_hours == 30 * 12 * 30
    assert november.person_hours == 6 + 10 + 30 + 30
    assert november.occupancy_utilization == round(76 / 10_800, 4) == 0.007
    assert (november.peak_occupancy, november.peak_hour) == (30, 14)
    assert november.peak_at == kst(11, 28, 14)
    assert november.no_show_rate is None  # no booking reached its start
    center = book_cafe().of_center("2026-11")
    assert (center.person_hours, center.capacity_hours) == (76.0, 10_800.0)
    assert center.occupancy_utilization == 0.007


def test_the_closing_check_out_counts_until_closing_even_when_the_tick_is_late() -> None:
    usage = run(
        configured(kst(10, 20, 8)),  # 09:00-22:00
        admitted(kst(11, 30, 21), party=2, occupancy=2),
    )
    usage.close("2026-11")
    # The clock was down overnight: the tick that checks them out comes in December.
    out = usage.fold([closing(kst(12, 1, 9, 30), party=2)])
    november = usage.room("2026-11")
    assert november.person_hours == 2.0  # 21:00-22:00, not until 09:30
    assert (november.final, november.revision, november.revised_after_close) == (True, 1, True)
    assert [m.person_hours for m in out if m.month == "2026-12"] == [0.0, 0.0]  # nobody inside


def test_a_stay_across_midnight_splits_its_person_hours_over_the_local_months() -> None:
    usage = run(
        configured(et(10, 1, 8), opens="00:00", closes="24:00", tz="America/New_York"),
        admitted(et(10, 31, 23), party=2, occupancy=2),
        checkout(et(11, 1, 3), party=2, occupancy=0),  # 03:00 EST, after the fall-back
    )
    assert usage.room("2026-10").person_hours == 2 * 1.0
    assert usage.room("2026-11").person_hours == 2 * 4.0  # 00:00 EDT to 03:00 EST: 4 h


def test_a_check_in_decided_before_the_last_one_adds_no_person_hours() -> None:
    usage = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2, 12), party=2, occupancy=2),
        admitted(kst(11, 2, 11), party=1, occupancy=3),  # late: dated an hour earlier
        checkout(kst(11, 2, 13), party=3, occupancy=0),
    )
    november = usage.room("2026-11")
    assert november.person_hours == 3.0  # 3 persons from 12:00 (time never runs back) to 13:00


# --- capacity hours ---------------------------------------------------------------------


def test_capacity_hours_follow_a_change_of_capacity_from_its_day_on() -> None:
    usage = run(configured(kst(10, 20, 8)))  # 20 places, 13 h a day
    usage.fold([capacity_changed(kst(11, 16, 15), 10)])
    november = usage.room("2026-11")
    assert november.open_hours == 390
    assert november.capacity_hours == 15 * 13 * 20 + 15 * 13 * 10
    assert usage.of_center("2026-11").capacity_hours == november.capacity_hours
    usage.fold([configured(kst(11, 21, 8), closes="23:00")])  # 25 places from Nov 21
    november = usage.room("2026-11")
    assert november.capacity_hours == 15 * 13 * 20 + 5 * 13 * 10 + 10 * 14 * 20


def test_a_closed_month_keeps_its_capacity_hours() -> None:
    usage = run(configured(kst(10, 20, 8)))
    usage.close("2026-11")
    usage.fold([capacity_changed(kst(11, 25, 9), 5)])
    assert usage.rooms[ROOM_A].aggregate("2026-11", kst(12, 1)).capacity_hours == 390 * 20


# --- open hours: DST and overnight ------------------------------------------------------


def test_open_hours_are_real_hours_in_a_zone_with_dst() -> None:
    usage = run(
        configured(et(10, 1, 8), opens="00:00", closes="24:00", tz="America/New_York"),
        configured(et(10, 1, 8), room=ROOM_B, opens="09:00", closes="17:00", tz="America/New_York"),
    )
    assert usage.room("2026-10").open_hours == 31 * 24
    assert usage.rooms[ROOM_A].aggregate("2026-11", et(12, 1)).open_hours == 30 * 24 + 1
    assert usage.rooms[ROOM_B].aggregate("2026-11", et(12, 1)).open_hours == 30 * 8
    assert usage.center.aggregate("2026-11", et(12, 1)).open_hours == 30 * 24 + 1 + 30 * 8
    assert usage.rooms[ROOM_A].aggregate("2026-11", et(12, 1)).capacity_hours == 20 * (721)


def test_spring_forward_month_is_an_hour_short() -> None:
    usage = run(configured(et(2, 1, 8), opens="00:00", closes="24:00", tz="America/New_York"))
    assert usage.rooms[ROOM_A].aggregate("2026-03", et(4, 1)).open_hours == 31 * 24 - 1
    assert usage.center.aggregate("2026-03", et(4, 1)).open_hours == 31 * 24 - 1


def test_an_overnight_opening_counts_for_the_day_it_opens() -> None:
    usage = run(configured(kst(10, 20, 8), opens="18:00", closes="02:00"))
    room = usage.rooms[ROOM_A]
    # Nov 30's opening runs until 02:00 on Dec 1: all of its 8 h are November's.
    assert room.aggregate("2026-11", kst(12, 1)).open_hours == 30 * 8
    assert room.aggregate("2026-12", kst(12, 1)).open_hours == 31 * 8


def test_an_overnight_opening_over_the_fall_back_night() -> None:
    usage = run(configured(et(10, 1, 8), opens="18:00", closes="03:00", tz="America/New_York"))
    room = usage.rooms[ROOM_A]
    assert room.aggregate("2026-10", et(11, 1)).open_hours == 31 * 9 + 1  # Oct 31: 10 h
    assert room.aggregate("2026-11", et(12, 1)).open_hours == 30 * 9


def test_the_closing_check_out_of_an_overnight_room_counts_until_its_closing() -> None:
    usage = run(
        configured(kst(10, 20, 8), opens="18:00", closes="02:00"),
        admitted(kst(11, 30, 23), party=4, occupancy=4),
        closing(kst(12, 1, 2, 1), party=4),
    )
    assert usage.room("2026-11").person_hours == 4 * 1.0  # until midnight, in November
    assert usage.room("2026-12").person_hours == 4 * 2.0  # midnight to 02:00, not 02:01


# --- attendance and the no-show rate ----------------------------------------------------


def test_no_show_rate_is_no_shows_over_the_bookings_that_reached_their_start() -> None:
    usage = run(
        configured(kst(10, 20, 8)),
        confirmed("b1", "m1", kst(11, 3, 10), kst(11, 3, 12)),
        confirmed("b2", "m2", kst(11, 4, 10), kst(11, 4, 12)),
        confirmed("b3", "m3", kst(11, 5, 10), kst(11, 5, 12)),
        confirmed("b4", "m4", kst(11, 6, 10), kst(11, 6, 12)),
        confirmed("b5", "m5", kst(12, 1, 10), kst(12, 1, 12), at=kst(11, 20)),
        for_booking(admitted(kst(11, 3, 10), party=2, occupancy=2), "b1"),
        for_booking(admitted(kst(11, 3, 10, 30), party=1, occupancy=3), "b1"),  # once only
        released("b2", "m2", kst(11, 4, 10), kst(11, 4, 12)),
        BookingCancelled(  # before its start: never reached it
            event_id=uuid4(),
            caused_by=uuid4(),
            room_id=ROOM_A,
            center_id=CENTER,
            decided_at=kst(11, 1),
            booking_id="b3",
            member_id="m3",
            starts_at=kst(11, 5, 10),
            ends_at=kst(11, 5, 12),
        ),
        for_booking(admitted(kst(11, 6, 9, 50), party=2, occupancy=2), "b4"),
        for_booking(admitted(kst(11, 30, 23, 50), party=1, occupancy=3), "b5"),  # early
    )
    november = usage.room("2026-11")
    assert (november.bookings_attended, november.no_shows) == (2, 1)
    assert november.no_show_rate == round(1 / 3, 4) == 0.3333
    december = usage.room("2026-12")  # b5 starts in December: its attendance counts there
    assert (december.bookings_attended, december.no_show_rate) == (1, 0.0)
    assert usage.of_center("2026-11").no_show_rate == 0.3333
    assert usage.of_center("2026-11").bookings_attended == 2


def test_a_room_without_bookings_has_no_no_show_rate() -> None:
    assert (
        run(configured(kst(10, 20, 8)), admitted(kst(11, 2, 10), 1, 1)).room("2026-11").no_show_rate
        is None
    )


def test_attendance_of_a_booking_confirmed_again_moves_with_it() -> None:
    usage = run(
        configured(kst(10, 20, 8)),
        confirmed("b1", "m1", kst(11, 30, 10), kst(11, 30, 12)),
        for_booking(admitted(kst(11, 30, 9, 50), party=2, occupancy=2), "b1"),
        confirmed("b1", "m1", kst(12, 1, 10), kst(12, 1, 12), at=kst(11, 30, 11)),  # restated
    )
    assert usage.room("2026-11").bookings_attended == 0
    assert usage.room("2026-12").bookings_attended == 1


# --- the time of the peak ---------------------------------------------------------------


def test_peak_at_is_when_the_peak_was_first_reached() -> None:
    usage = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2, 10), party=5, occupancy=5),
        checkout(kst(11, 2, 11), party=5, occupancy=0),
        admitted(kst(11, 3, 15), party=5, occupancy=5),  # the same peak, later: not it
    )
    assert usage.room("2026-11").peak_at == kst(11, 2, 10)
    assert usage.of_center("2026-11").peak_at == kst(11, 2, 10)
    usage.fold([admitted(kst(11, 1, 9, 30), party=5, occupancy=5)])  # decided late, earlier
    assert usage.room("2026-11").peak_at == kst(11, 1, 9, 30)
    assert usage.room("2026-11").peak_hour == 9


def test_peak_hour_is_local_time_of_the_room() -> None:
    usage = run(
        configured(et(10, 1, 8), tz="America/New_York"),
        admitted(et(11, 10, 14, 20), party=3, occupancy=3),
    )
    november = usage.room("2026-11")
    assert november.peak_hour == 14
    assert november.peak_at is not None and november.peak_at.utcoffset() == timedelta(hours=-5)
    # the message on the wire keeps the local offset
    assert '"peak_at":"2026-11-10T14:20:00-05:00"' in november.model_dump_json()


def test_the_center_peak_is_when_the_rooms_together_peaked() -> None:
    usage = run(
        configured(kst(10, 20, 8)),
        configured(kst(10, 20, 8), room=ROOM_B),
        admitted(kst(11, 2, 10), party=3, occupancy=3),  # 3
        admitted(kst(11, 2, 11), party=4, occupancy=4, room=ROOM_B),  # 7
        checkout(kst(11, 2, 12), party=3, occupancy=0),  # 4
        admitted(kst(11, 2, 13), party=6, occupancy=6),  # 10
    )
    center = usage.of_center("2026-11")
    assert (center.peak_occupancy, center.peak_at, center.peak_hour) == (10, kst(11, 2, 13), 13)


# --- rejections name a booking but change it not (finding 5) --------------------------


@pytest.mark.parametrize("reason", ["duplicate_booking_id", "booking_ended"])
def test_a_rejection_naming_an_ended_booking_leaves_it_as_it_was(reason: str) -> None:
    """The room authority answers a reused booking id with ``duplicate_booking_id`` and a
    cancel after the end with ``booking_ended``: the booking it names keeps its count,
    hours and month; only the rejection is counted (in the month decided)."""
    usage = run(
        configured(kst(10, 20, 8)),
        confirmed("b1", "m1", kst(11, 10, 10), kst(11, 10, 12)),
        for_booking(admitted(kst(11, 10, 10), party=2, occupancy=2), "b1"),
    )
    before = usage.room("2026-11")
    out = usage.fold([rejected_as("b1", reason, kst(12, 15, 9))])
    assert [m.key for m in out] == ["room:room-a:2026-12", "center:center-1:2026-12"]
    assert usage.room("2026-12").bookings_rejected == 1
    after = usage.rooms[ROOM_A].aggregate("2026-11", before.updated_at)
    assert after == before
    # the booking is still the one confirmed: its cancel or release would still find it
    assert usage.rooms[ROOM_A]._active("b1") is not None
    out = usage.fold([rejected_as("b1", reason, kst(11, 10, 13))])  # also within its month
    november = usage.room("2026-11")
    assert november.bookings_rejected == 1
    assert (november.bookings_confirmed, november.booked_hours) == (1, 2.0)
    assert (november.bookings_cancelled, november.no_shows, november.bookings_attended) == (0, 0, 1)


# --- a month of traffic against an obvious computation ----------------------------------

HOURS = {"day": ("09:00", "21:00"), "whole day": ("00:00", "24:00"), "night": ("18:00", "02:00")}
STARTS = (date(2026, 10, 10), date(2026, 2, 20))
"""Spanning New York's fall-back (Nov 1) or spring-forward (Mar 8) and a month end."""
DAYS = 45
SEOUL_ROOM = ("09:00", "22:00", 12)


def minutes_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def window(day: date, opens: str, closes: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The opening that starts on ``day``, as UTC instants: local wall-clock times (read
    with fold=0, Python's default) converted one by one."""
    end_day = day if minutes_of(closes) > minutes_of(opens) else day + timedelta(days=1)
    if closes == "24:00":
        end_day, closes = day + timedelta(days=1), "00:00"

    def local(on: date, hhmm: str) -> datetime:
        hour, minute = divmod(minutes_of(hhmm), 60)
        return datetime(on.year, on.month, on.day, hour, minute, tzinfo=tz).astimezone(UTC)

    return local(day, opens), local(end_day, closes)


@dataclass(frozen=True)
class Visit:
    room: int
    day: int
    at: float
    """Where in the opening (0..1, away from its edges)."""
    kind: str
    party: int


visits = st.builds(
    Visit,
    room=st.sampled_from((0, 0, 0, 1)),
    day=st.integers(0, DAYS - 1),
    at=st.floats(0, 1),
    kind=st.sampled_from(("admit", "admit", "checkout")),
    party=st.integers(1, 5),
)


@dataclass
class Door:
    """One room's decisions, and what an observer standing at its door would write down."""

    room_id: str
    tz: ZoneInfo
    opens: str
    closes: str
    decisions: list[AnyDecision]
    occupied: list[tuple[datetime, int]]
    """(from when, persons inside) in time order; a closing drops to 0 at the closing."""


def traffic(
    room_id: str,
    tz: ZoneInfo,
    opens: str,
    closes: str,
    capacity: int,
    start: date,
    mine: list[Visit],
    closings: set[int],
    tick: int,
) -> Door:
    common: dict[str, Any] = {"room_id": room_id, "center_id": CENTER, "caused_by": None}
    door: dict[str, Any] = {"kiosk_id": "k", "capacity": capacity}
    events: list[tuple[datetime, str, int]] = []
    for visit in mine:
        begin, end = window(start + timedelta(days=visit.day), opens, closes, tz)
        usable = (end - begin) - timedelta(hours=2)  # an hour clear of each edge
        offset = int(visit.at * usable / timedelta(minutes=1))
        at = begin + timedelta(hours=1, minutes=offset)
        events.append((at, visit.kind, visit.party))
    for day in closings:
        _, end = window(start + timedelta(days=day), opens, closes, tz)
        events.append((end + timedelta(minutes=tick), "closing", 0))
    events.sort(key=lambda e: (e[0], e[1]))
    inside = 0
    decisions: list[AnyDecision] = []
    occupied: list[tuple[datetime, int]] = []
    for at, kind, party in events:
        if kind == "admit":
            inside += party
            decisions.append(
                CheckinAdmitted(
                    **common,
                    **door,
                    event_id=uuid4(),
                    decided_at=at,
                    party_size=party,
                    occupancy=inside,
                )
            )
            occupied.append((at, inside))
        elif kind == "checkout":
            inside = max(0, inside - party)
            decisions.append(
                CheckoutRecorded(
                    **common,
                    **door,
                    event_id=uuid4(),
                    decided_at=at,
                    party_size=party,
                    occupancy=inside,
                )
            )
            occupied.append((at, inside))
        elif inside:  # the clock checks out whoever is still inside; nobody: no decision
            decisions.append(
                CheckoutRecorded(
                    **common,
                    event_id=uuid4(),
                    decided_at=at,
                    kiosk_id=None,
                    capacity=capacity,
                    party_size=inside,
                    occupancy=0,
                )
            )
            occupied.append((at - timedelta(minutes=tick), 0))
            inside = 0
    return Door(room_id, tz, opens, closes, decisions, occupied)


def person_seconds_by_month(door: Door) -> dict[str, int]:
    """Minute by minute while anyone is inside: persons x 60 s, in the minute's local month."""
    seconds: dict[str, int] = {}
    for (since, inside), (until, _) in zip(door.occupied, door.occupied[1:], strict=False):
        minute = since
        while minute < until and inside:
            month = local_month(minute, door.tz.key)
            seconds[month] = seconds.get(month, 0) + inside * 60
            minute += timedelta(minutes=1)
    return seconds


def rules_by_month(
    door: Door, start: date, capacities: dict[int, int]
) -> dict[str, tuple[int, int]]:
    """Day by day from the configuration: (open minutes, capacity x open minutes) by month
    of the day each opening starts on."""
    out: dict[str, tuple[int, int]] = {}
    capacity = capacities[0]
    for day in range(DAYS + 40):
        capacity = capacities.get(day, capacity)
        local = start + timedelta(days=day)
        begin, end = window(local, door.opens, door.closes, door.tz)
        minutes = int((end - begin) / timedelta(minutes=1))
        month = f"{local.year:04d}-{local.month:02d}"
        open_minutes, capacity_minutes = out.get(month, (0, 0))
        out[month] = (open_minutes + minutes, capacity_minutes + capacity * minutes)
    return out


def peaks_by_month(door: Door) -> dict[str, tuple[int, datetime]]:
    peaks: dict[str, tuple[int, datetime]] = {}
    for decision in door.decisions:
        assert isinstance(decision, CheckinAdmitted | CheckoutRecorded)
        local = decision.decided_at.astimezone(door.tz)
        month = f"{local.year:04d}-{local.month:02d}"
        if decision.occupancy > peaks.get(month, (0, local))[0]:
            peaks[month] = (decision.occupancy, local)
    return peaks


@settings(max_examples=40, deadline=None)
@given(
    hours=st.sampled_from(sorted(HOURS)),
    start=st.sampled_from(STARTS),
    capacity=st.integers(5, 40),
    changes=st.dictionaries(st.integers(1, DAYS - 1), st.integers(5, 40), max_size=3),
    log=st.lists(visits, max_size=60),
    closings=st.sets(st.integers(0, DAYS - 1), max_size=DAYS),
    tick=st.integers(1, 59),
)
def test_occupancy_figures_equal_an_obvious_computation(
    hours: str,
    start: date,
    capacity: int,
    changes: dict[int, int],
    log: list[Visit],
    closings: set[int],
    tick: int,
) -> None:
    opens, closes = HOURS[hours]
    seoul = ZoneInfo("Asia/Seoul")
    configure_at = datetime(start.year, start.month, start.day, 6, tzinfo=NEW_YORK)
    ny_config = with_capacity(
        configured(configure_at, ROOM_A, opens, closes, tz="America/New_York"), capacity
    )
    seoul_config = with_capacity(
        configured(
            datetime(start.year, start.month, start.day, 6, tzinfo=seoul),
            ROOM_B,
            SEOUL_ROOM[0],
            SEOUL_ROOM[1],
        ),
        SEOUL_ROOM[2],
    )
    doors = [
        traffic(
            ROOM_A,
            NEW_YORK,
            opens,
            closes,
            capacity,
            start,
            [v for v in log if v.room == 0],
            closings,
            tick,
        ),
        traffic(
            ROOM_B,
            seoul,
            *SEOUL_ROOM[:2],
            SEOUL_ROOM[2],
            start,
            [v for v in log if v.room == 1],
            set(),
            tick,
        ),
    ]
    capacity_changes = [
        capacity_changed(datetime.combine(start + timedelta(days=d), time(8), NEW_YORK), c)
        for d, c in sorted(changes.items())
    ]
    decisions: list[AnyDecision] = [*doors[0].decisions, *doors[1].decisions, *capacity_changes]
    decisions.sort(key=lambda d: d.decided_at)

    rooms = {ROOM_A: RoomUsage(ROOM_A), ROOM_B: RoomUsage(ROOM_B)}
    center = CenterUsage(CENTER)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    for decision in [ny_config, seoul_config, *decisions]:
        fold(rooms[decision.room_id], center, decision, now)

    expected_rules = [
        rules_by_month(doors[0], start, {0: capacity, **changes}),
        rules_by_month(doors[1], start, {0: SEOUL_ROOM[2]}),
    ]
    expected_seconds = [person_seconds_by_month(door) for door in doors]
    expected_peaks = [peaks_by_month(door) for door in doors]
    months = sorted(set(expected_rules[0]) & set(expected_rules[1]))[:-1]  # whole months seen
    for month in months:
        totals = [0, 0, 0]
        for index, door in enumerate(doors):
            aggregate = rooms[door.room_id].aggregate(month, now)
            open_minutes, capacity_minutes = expected_rules[index][month]
            person_seconds = expected_seconds[index].get(month, 0)
            assert aggregate.open_hours == round(open_minutes / 60, 4), (door.room_id, month)
            assert aggregate.capacity_hours == round(capacity_minutes / 60, 4), (
                door.room_id,
                month,
            )
            assert aggregate.person_hours == round(person_seconds / 3600, 4), (door.room_id, month)
            assert aggregate.occupancy_utilization == round(
                person_seconds / (capacity_minutes * 60), 4
            )
            peak, peak_at = expected_peaks[index].get(month, (0, None))
            assert (aggregate.peak_occupancy, aggregate.peak_at) == (peak, peak_at)
            assert aggregate.peak_hour == (None if peak_at is None else peak_at.hour)
            for total, value in enumerate((open_minutes, capacity_minutes, person_seconds)):
                totals[total] += value
        aggregate = center.aggregate(month, now)
        assert aggregate.open_hours == round(totals[0] / 60, 4)
        assert aggregate.capacity_hours == round(totals[1] / 60, 4)
        assert aggregate.person_hours == round(totals[2] / 3600, 4)
        assert aggregate.occupancy_utilization == round(totals[2] / (totals[1] * 60), 4)
