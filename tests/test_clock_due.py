"""When a room is next due a clock tick (``next_tick_due``): spelled out for each reason.

The property test (``tests/test_capacity_properties.py``, invariant (l)) checks that no
tick before the due time changes anything over random sequences; these examples reach what
those short sequences seldom do (history forgotten two days after it ended, the daily net).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain import opening_hours
from domain.capacity import KEEP_HISTORY, Policy, Room, decide
from domain.capacity.clock import TICKED_AT_LEAST_EVERY, next_tick_due
from schemas.decisions import CheckinAdmitted
from tests.test_capacity_rules import NOW, book, checkin, kst, new_room, only, run, tick
from tests.test_opening_hours import DAYS, MINUTES, ZONES

POLICY = Policy()
MOMENT = timedelta(microseconds=1)


def changed_by_tick(room: Room, at: datetime) -> bool:
    copy = Room.from_json(room.to_json())
    _, decisions = decide(copy, tick(at, room.room_id), NOW, POLICY)
    return bool(decisions) or copy.to_json() != room.to_json()


def test_a_room_with_nothing_inside_is_due_at_its_next_closing() -> None:
    room = new_room()  # 09:00-22:00 Seoul, configured at 08:00 on the 20th
    due = next_tick_due(room, NOW, POLICY)
    assert due == kst(22)
    assert not changed_by_tick(room, due - MOMENT)
    assert changed_by_tick(room, due)  # the closing is recorded: a late check-in is refused


def test_a_booking_nobody_came_for_is_due_at_its_start_plus_the_grace() -> None:
    room = new_room()
    book(room, "b1", start=kst(10), end=kst(12))
    assert next_tick_due(room, NOW, POLICY) == kst(10) + POLICY.no_show_grace
    only(room, checkin(kst(10, 5), booking_id="b1", member="m1"), CheckinAdmitted, kst(10, 5))
    assert next_tick_due(room, kst(10, 5), POLICY) == kst(22)  # came: no no-show left


def test_ended_history_is_due_to_be_forgotten_two_days_after_it_ended() -> None:
    room = new_room("allday", opens="00:00", closes="24:00")  # never closes
    book(room, "b1", start=kst(10), end=kst(12))
    only(room, checkin(kst(10), booking_id="b1", room_id="allday"), CheckinAdmitted, kst(10))
    assert next_tick_due(room, kst(13), POLICY) == kst(13) + TICKED_AT_LEAST_EVERY  # the net
    due = next_tick_due(room, kst(13, day=21), POLICY)
    assert due == kst(12) + KEEP_HISTORY
    assert not changed_by_tick(room, due - MOMENT)
    assert changed_by_tick(room, due)
    run(room, tick(due, "allday"), due)
    assert room.bookings == {}
    assert next_tick_due(room, due, POLICY) == due + TICKED_AT_LEAST_EVERY


def test_a_room_open_around_the_clock_with_nothing_held_is_ticked_once_a_day() -> None:
    room = new_room("allday", opens="00:00", closes="24:00")
    assert next_tick_due(room, NOW, POLICY) == NOW + TICKED_AT_LEAST_EVERY
    assert not changed_by_tick(room, NOW + TICKED_AT_LEAST_EVERY)


def test_closings_missed_while_the_service_was_down_make_the_room_due_at_once() -> None:
    room = new_room()
    three_days_later = kst(12, day=23)
    due = next_tick_due(room, three_days_later, POLICY)
    assert due == kst(22)  # the first closing it missed: already past
    run(room, tick(three_days_later, "club"), three_days_later)
    assert room.last_closing == kst(22, day=22)
    assert next_tick_due(room, three_days_later, POLICY) == kst(22, day=23)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


HOURS = (DAYS, st.integers(min_value=0, max_value=1439), MINUTES, ZONES)
"""A day, the opening and closing minutes and a zone: a room's hours, DST zones included."""


def room_and_instant(
    day: date, opens: int, closes: int, tz: ZoneInfo, offset: int
) -> tuple[Room, datetime]:
    """A room with those hours (not open around the clock by ``opens == closes``), and the
    instant ``offset`` minutes after the UTC midnight of ``day``."""
    assume(closes != opens)
    room = new_room(opens=hhmm(opens), closes=hhmm(closes), timezone=tz.key)
    return room, datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=offset)


@settings(max_examples=300, deadline=None)
@given(*HOURS, st.integers(min_value=0, max_value=3 * 1440))
def test_the_next_closing_is_the_first_that_latest_closing_returns(
    day: date, opens: int, closes: int, tz: ZoneInfo, offset: int
) -> None:
    """DST included: from the next closing on, ``latest_closing`` returns it; just before
    it, nothing after the instant asked about."""
    room, instant = room_and_instant(day, opens, closes, tz, offset)
    closing = room.next_closing_after(instant)
    if closing is None:
        assert room.never_closes()
        assert room.latest_closing(instant + timedelta(days=2)) is None
        return
    assert closing > instant
    assert room.latest_closing(closing) == closing
    before = room.latest_closing(closing - MOMENT)
    assert before is None or before <= instant
    assert room.next_closing_after(instant) == closing  # the kept answer is the same


@settings(max_examples=300, deadline=None)
@given(*HOURS, st.integers(min_value=-1440, max_value=3 * 1440))
def test_a_rooms_latest_closing_is_the_opening_hours_one(
    day: date, opens: int, closes: int, tz: ZoneInfo, offset: int
) -> None:
    """The room works it out through its remembered windows: the same closing as
    ``opening_hours.latest_closing``, DST included, or None where the next opening starts
    at that very instant (a room open around the clock)."""
    room, instant = room_and_instant(day, opens, closes, tz, offset)
    expected = opening_hours.latest_closing(instant, opens, closes, tz)
    start_there = opening_hours.opening_at(expected, opens, closes, tz)
    reopens = start_there is not None and start_there[0] == expected
    assert room.latest_closing(instant) == (None if reopens else expected)
