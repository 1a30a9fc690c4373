"""The traffic generator: deterministic, well-formed, and realistic under the real rules.

A three-month run is fed through ``domain.capacity.decide`` the way the demo sends it:
each day's events in order with ``now = occurred_at``, then that day's clock ticks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from domain.capacity import Room, decide
from producers.traffic import (
    Day,
    busy_hour,
    configuration,
    generate,
    seosan_center,
    ticks_of,
)
from schemas.decisions import Decision
from schemas.inputs import (
    BOOKING_ADAPTER,
    CAPACITY_ADAPTER,
    CHECKIN_ADAPTER,
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomConfigured,
    SessionScheduled,
)

SEOUL = ZoneInfo("Asia/Seoul")
START, END = date(2026, 9, 1), date(2026, 11, 30)
SEED = 7
CENTER = seosan_center()
MONTHS = ("2026-09", "2026-10", "2026-11")


@dataclass
class Replay:
    """What the real rules decided about a run, and what the generator's tally got wrong."""

    rooms: dict[str, Room | None] = field(default_factory=dict)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(local month, decision type[:reason]) -> count."""
    admitted: Counter[str] = field(default_factory=Counter)
    """local month -> persons admitted."""
    admitted_on: Counter[date] = field(default_factory=Counter)
    overdrawn: list[Checkout] = field(default_factory=list)
    """Check-outs for more people than were inside."""

    def feed(self, event: AnyInput) -> list[Decision]:
        room = self.rooms.get(event.room_id)
        if isinstance(event, Checkout) and (room is None or room.occupancy < event.party_size):
            self.overdrawn.append(event)
        room, decisions = decide(room, event, event.occurred_at)
        self.rooms[event.room_id] = room
        local = event.occurred_at.astimezone(SEOUL)
        month = f"{local:%Y-%m}"
        for d in decisions:
            reason = getattr(d, "reason", None)
            self.outcomes[(month, f"{d.type}:{reason}" if reason else d.type)] += 1
            if d.type == "checkin.admitted":
                persons: int = getattr(d, "party_size")  # noqa: B009
                self.admitted[month] += persons
                self.admitted_on[local.date()] += persons
        return decisions

    def total(self, kind: str) -> int:
        return sum(n for (_, k), n in self.outcomes.items() if k == kind)


def first_moment(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=SEOUL)


def replay(days: list[Day], at: datetime) -> Replay:
    result = Replay()
    for configured in configuration(CENTER, at):
        result.feed(configured)
    for day in days:
        for event in day.events:
            result.feed(event)
        for tick in day.ticks:  # after the day's events, as the demo sends them
            result.feed(tick)
    return result


@pytest.fixture(scope="module")
def days() -> list[Day]:
    return generate(CENTER, START, END, SEED)


@pytest.fixture(scope="module")
def run(days: list[Day]) -> Replay:
    return replay(days, first_moment(START))


def all_events(days: list[Day]) -> list[AnyInput]:
    return [e for day in days for e in [*day.events, *day.ticks]]


# --- determinism and form -------------------------------------------------------------


def dump(days: list[Day]) -> list[Any]:
    return [(d.date, [e.model_dump() for e in (*d.events, *d.ticks)]) for d in days]


def test_same_seed_same_events_ids_included() -> None:
    a = generate(CENTER, date(2026, 9, 1), date(2026, 9, 21), seed=3)
    b = generate(CENTER, date(2026, 9, 1), date(2026, 9, 21), seed=3)
    c = generate(CENTER, date(2026, 9, 1), date(2026, 9, 21), seed=4)
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    at = datetime(2026, 9, 5, 14, tzinfo=SEOUL)
    assert busy_hour(CENTER, at, 1) == busy_hour(CENTER, at, 1)
    assert busy_hour(CENTER, at, 1) != busy_hour(CENTER, at, 2)


def test_event_ids_are_unique(days: list[Day]) -> None:
    events = [*configuration(CENTER, first_moment(START)), *all_events(days)]
    assert len({e.event_id for e in events}) == len(events)
    # Another seed over the same days is other traffic, not a retry of this one.
    other = generate(CENTER, START, START + timedelta(days=6), SEED + 1)
    mine = {e.event_id for d in days[:7] for e in d.events}
    assert mine.isdisjoint(e.event_id for d in other for e in d.events)


def test_every_event_is_a_valid_contract_message(days: list[Day]) -> None:
    adapters: dict[type[Any], TypeAdapter[Any]] = {
        RoomConfigured: CAPACITY_ADAPTER,
        SessionScheduled: CAPACITY_ADAPTER,
        ClockTick: CAPACITY_ADAPTER,
        BookingRequested: BOOKING_ADAPTER,
        BookingCancelRequested: BOOKING_ADAPTER,
        EnrollmentRequested: BOOKING_ADAPTER,
        EnrollmentCancelRequested: BOOKING_ADAPTER,
        Checkin: CHECKIN_ADAPTER,
        Checkout: CHECKIN_ADAPTER,
    }
    rooms = {room.room_id for room in CENTER.rooms}
    events = [*configuration(CENTER, first_moment(START)), *all_events(days)]
    events += busy_hour(CENTER, datetime(2026, 9, 5, 14, tzinfo=SEOUL), SEED)
    for event in events:
        assert adapters[type(event)].validate_json(event.model_dump_json()) == event
        assert event.room_id in rooms
        assert event.occurred_at.utcoffset() == timedelta(hours=9)


def test_days_cover_the_range_in_order_and_on_their_local_day(days: list[Day]) -> None:
    assert [d.date for d in days] == [
        START + timedelta(days=n) for n in range((END - START).days + 1)
    ]
    for day in days:
        for events in (day.events, day.ticks):
            times = [e.occurred_at for e in events]
            assert times == sorted(times)
            assert all(t.astimezone(SEOUL).date() == day.date for t in times)


def test_ticks_every_two_hours_from_opening_and_just_after_closing() -> None:
    ticks = ticks_of(CENTER, date(2026, 9, 8))
    club = [t.occurred_at.strftime("%H:%M") for t in ticks if t.room_id == "seosan.club-1"]
    assert club == ["11:00", "13:00", "15:00", "17:00", "19:00", "21:00", "22:01"]
    office = [t.occurred_at.strftime("%H:%M") for t in ticks if t.room_id == "seosan.office"]
    assert office == ["11:00", "13:00", "15:00", "17:00", "18:01"]
    assert len({room.room_id for room in CENTER.rooms}) == len({t.room_id for t in ticks})
    assert ticks_of(CENTER, date(2026, 9, 8)) == ticks  # ids are derived, not drawn


def test_the_event_mix_has_every_input_type(days: list[Day]) -> None:
    events = [*configuration(CENTER, first_moment(START)), *all_events(days)]
    kinds = Counter(type(e) for e in events)
    assert set(kinds) == {
        RoomConfigured,
        SessionScheduled,
        ClockTick,
        BookingRequested,
        BookingCancelRequested,
        EnrollmentRequested,
        EnrollmentCancelRequested,
        Checkin,
        Checkout,
    }


# --- bookings, sessions and visitors --------------------------------------------------


def test_bookings_are_requested_ahead_within_opening_hours_but_a_few(days: list[Day]) -> None:
    bookings = [e for d in days for e in d.events if isinstance(e, BookingRequested)]
    bad = 0
    for b in bookings:
        room = CENTER.room(b.room_id)
        start, end = b.starts_at.astimezone(SEOUL), b.ends_at.astimezone(SEOUL)
        within = room.opens <= f"{start:%H:%M}" and f"{end:%H:%M}" <= room.closes
        ahead = b.occurred_at < b.starts_at
        if not (within and ahead and start.date() == end.date()):
            bad += 1
            continue
        assert b.occurred_at.astimezone(SEOUL).date() >= START
        assert b.starts_at - b.occurred_at <= timedelta(days=15)
        assert time(7, 30) <= b.occurred_at.astimezone(SEOUL).time() <= time(22, 0)
        assert 1 <= b.party_size <= room.capacity
    assert 0 < bad < 0.1 * len(bookings)
    clubs = [b for b in bookings if b.room_id.startswith("seosan.club-")]
    assert all(3 <= b.party_size <= 15 for b in clubs)
    assert all(b.member_id[:2] == "m-" and 1 <= int(b.member_id[2:]) <= 400 for b in bookings)


def test_cancellations_come_from_the_booker_before_the_start(days: list[Day]) -> None:
    requested = {e.booking_id: e for d in days for e in d.events if isinstance(e, BookingRequested)}
    cancels = [e for d in days for e in d.events if isinstance(e, BookingCancelRequested)]
    assert cancels
    for cancel in cancels:
        booking = requested[cancel.booking_id]
        assert cancel.member_id == booking.member_id
        assert booking.occurred_at < cancel.occurred_at < booking.starts_at


def test_weekend_classes_of_twenty_with_a_waitlist(days: list[Day], run: Replay) -> None:
    sessions = [e for d in days for e in d.events if isinstance(e, SessionScheduled)]
    assert len(sessions) >= 2 * len(MONTHS)  # the 2nd and 4th Saturdays at least
    for session in sessions:
        assert session.room_id == "seosan.edu" and session.capacity == 20
        assert session.starts_at.astimezone(SEOUL).weekday() >= 5
        requests = [
            e
            for d in days
            for e in d.events
            if isinstance(e, EnrollmentRequested) and e.session_id == session.session_id
        ]
        assert 22 <= len(requests) <= 26
        assert all(session.occurred_at < e.occurred_at < session.starts_at for e in requests)
    assert run.total("session.scheduled") == len(sessions)
    assert run.total("enrollment.promoted") > 0
    assert run.total("enrollment.waitlisted") > 0


def test_rhythm_weekdays_for_office_and_clubs_weekends_for_the_cafe(days: list[Day]) -> None:
    persons: Counter[tuple[str, bool]] = Counter()
    day_count: Counter[bool] = Counter()
    for day in days:
        weekend = day.date.weekday() >= 5
        day_count[weekend] += 1
        for e in day.events:
            if isinstance(e, Checkin):
                kind = CENTER.room(e.room_id).kind
                persons[(kind, weekend)] += e.party_size

    def per_day(kind: str, weekend: bool) -> float:
        return persons[(kind, weekend)] / day_count[weekend]

    assert per_day("bookcafe", True) > 1.5 * per_day("bookcafe", False)
    assert per_day("office", False) > 2 * per_day("office", True)
    assert per_day("club", False) > per_day("club", True)


# --- fed through the real rules -------------------------------------------------------


def test_about_four_hundred_visitors_a_month(run: Replay) -> None:
    assert set(run.admitted) == set(MONTHS)
    for month in MONTHS:
        assert 300 <= run.admitted[month] <= 500, (month, run.admitted[month])


def test_checkouts_never_exceed_who_is_inside(days: list[Day], run: Replay) -> None:
    assert run.overdrawn == []
    # The generator's own tally predicts every admission the rules make.
    assert {d.date: d.expected_visits for d in days} == {
        d.date: run.admitted_on[d.date] for d in days
    }


def test_realistic_outcomes(run: Replay) -> None:
    confirmed = run.total("booking.confirmed")
    assert 0.05 <= run.total("booking.cancelled") / confirmed <= 0.15
    assert 0.03 <= run.total("booking.released") / confirmed <= 0.13
    for kind in ("booking.rejected:overlap", "booking.rejected:outside_opening_hours"):
        assert run.total(kind) > 0, kind
    rejected = sum(n for (_, k), n in run.outcomes.items() if k.startswith("booking.rejected"))
    assert rejected < 0.1 * (confirmed + rejected)
    assert run.total("checkin.denied:room_full") > 0
    assert run.total("checkin.denied:reserved") > 0
    assert run.total("checkin.denied:closed") == 0
    assert run.total("booking.rejected:unknown_booking") == 0
    assert run.total("session.rejected") == 0
    # Everyone is out after closing each day.
    assert all(room is not None and room.occupancy == 0 for room in run.rooms.values())


# --- a busy hour at the kiosks --------------------------------------------------------


def test_busy_hour_fills_the_cafe_and_checks_out_only_who_came() -> None:
    start = datetime(2026, 9, 5, 14, tzinfo=SEOUL)
    events = busy_hour(CENTER, start, SEED)
    assert all(isinstance(e, Checkin | Checkout) for e in events)
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert all(start <= t < start + timedelta(hours=1) for t in times)
    result = Replay()
    for configured in configuration(CENTER, start.replace(hour=6)):
        result.feed(configured)
    for event in events:
        result.feed(event)
    assert result.overdrawn == []
    assert result.total("checkin.denied:room_full") > 0
    assert result.total("checkin.admitted") > result.total("checkin.denied:room_full")
    rooms = {e.room_id for e in events}
    assert {"seosan.bookcafe", "seosan.club-1", "seosan.club-2"} <= rooms


def test_busy_hour_needs_the_cafe_open() -> None:
    with pytest.raises(ValueError, match="open"):
        busy_hour(CENTER, datetime(2026, 9, 5, 20, 30, tzinfo=SEOUL), SEED)
