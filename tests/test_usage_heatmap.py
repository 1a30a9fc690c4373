"""The hour-by-weekday heatmap of ``usage-monthly`` (issue 8): ``occupancy_by_weekday_hour``,
7 rows (Monday first) x 24 local hours of the average persons present.

Hand-worked examples first (Seoul, New York's DST days, a center, a long stay, old
documents), then a property: the door traffic of ``tests/test_usage_occupancy.py`` against
an obvious minute-by-minute computation written here.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.usage import CenterUsage, RoomUsage, fold
from domain.usage import slots as usage_slots
from schemas.decisions import AnyDecision
from schemas.outputs import UsageMonthly
from tests.pure_domain import pure
from tests.test_usage import (
    CENTER,
    NOW,
    ROOM_A,
    ROOM_B,
    admitted,
    checkout,
    configured,
    kst,
    run,
)
from tests.test_usage_occupancy import (
    DAYS,
    HOURS,
    NEW_YORK,
    STARTS,
    Door,
    Visit,
    closing,
    et,
    traffic,
    visits,
    with_capacity,
)

MONDAY, SUNDAY = 0, 6


def grid(message: UsageMonthly) -> list[list[float]]:
    assert message.occupancy_by_weekday_hour is not None
    cells = message.occupancy_by_weekday_hour
    assert len(cells) == 7 and all(len(row) == 24 for row in cells)
    return cells


# --- hand-worked ----------------------------------------------------------------------


def test_a_cell_is_person_hours_of_that_weekday_hour_over_the_months_such_hours() -> None:
    # November 2026 in Seoul has five Mondays (2, 9, 16, 23, 30).
    log = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2, 10), party=3, occupancy=3),
        checkout(kst(11, 2, 11), party=3, occupancy=0),  # 3 persons, Monday 10-11
        admitted(kst(11, 9, 10, 30), party=2, occupancy=2),
        checkout(kst(11, 9, 12), party=2, occupancy=0),  # 2 persons, Monday 10:30-12:00
    )
    cells = grid(log.room("2026-11"))
    assert cells[MONDAY][10] == round((3 * 1 + 2 * 0.5) / 5, 4) == 0.8
    assert cells[MONDAY][11] == round(2 * 1 / 5, 4) == 0.4
    assert sum(map(sum, cells)) == pytest.approx(1.2)  # nothing anywhere else
    # the month's person-hours are the cells times the number of such hours
    assert log.room("2026-11").person_hours == 0.8 * 5 + 0.4 * 5


def test_a_center_cell_is_the_sum_of_its_rooms() -> None:
    log = run(
        configured(kst(10, 20, 8)),
        configured(kst(10, 20, 8), room=ROOM_B),
        admitted(kst(11, 3, 14), party=4, occupancy=4),  # Tuesday: November has 4
        checkout(kst(11, 3, 15), party=4, occupancy=0),
        admitted(kst(11, 10, 14), party=2, occupancy=2, room=ROOM_B),
        checkout(kst(11, 10, 15), party=2, occupancy=0, room=ROOM_B),
    )
    tuesday = 1
    assert grid(log.room("2026-11"))[tuesday][14] == 1.0
    assert grid(log.room("2026-11", ROOM_B))[tuesday][14] == 0.5
    assert grid(log.of_center("2026-11"))[tuesday][14] == 1.5


def test_the_closing_check_out_stops_the_hours_at_closing() -> None:
    log = run(
        configured(kst(10, 20, 8), closes="21:00"),
        admitted(kst(11, 5, 20), party=5, occupancy=5),  # Thursday: 4 in November
        closing(kst(11, 5, 21, 40), party=5),  # the tick came late: counts until 21:00
    )
    thursday = 3
    cells = grid(log.room("2026-11"))
    assert cells[thursday][20] == 1.25
    assert cells[thursday][21] == 0.0


def test_a_stay_over_two_weeks_fills_every_hour() -> None:
    # 2 persons from Monday Nov 2 00:00 to Monday Nov 16 00:00 (nobody checked them out).
    log = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2), party=2, occupancy=2),
        checkout(kst(11, 16), party=2, occupancy=0),
    )
    cells = grid(log.room("2026-11"))
    tuesday = 1
    assert cells[MONDAY] == [round(2 * 2 / 5, 4)] * 24  # 2 of the 5 Mondays
    assert cells[tuesday] == [round(2 * 2 / 4, 4)] * 24  # 2 of the 4 Tuesdays
    assert cells[SUNDAY] == [round(2 * 2 / 5, 4)] * 24  # Nov 8 and 15 of 5 Sundays


def test_fall_back_the_repeated_hour_averages_over_both_of_its_hours() -> None:
    # New York, Sunday Nov 1 2026: 01:00-02:00 happens twice. 1 person 00:00-03:00 local
    # is 4 real hours; November has 5 Sundays, so Sunday 01:00 lasted 6 hours in all.
    log = run(
        configured(et(10, 20, 8), tz="America/New_York"),
        admitted(et(11, 1, 0), party=1, occupancy=1),
        checkout(et(11, 1, 3), party=1, occupancy=0),
    )
    november = log.room("2026-11")
    assert november.person_hours == 4.0
    cells = grid(november)
    assert cells[SUNDAY][0:4] == [0.2, round(2 / 6, 4), 0.2, 0.0]


def test_spring_forward_the_skipped_hour_stays_empty_and_counts_one_day_less() -> None:
    # New York, Sunday Mar 8 2026: 02:00-03:00 does not exist. 1 person 01:00-04:00 local
    # is 2 real hours. March 2026 has 5 Sundays: 02:00 lasted 4 hours, the others 5.
    log = run(
        configured(et(2, 20, 8), tz="America/New_York"),
        admitted(et(3, 8, 1), party=1, occupancy=1),
        checkout(et(3, 8, 4), party=1, occupancy=0),
    )
    march = log.room("2026-03")
    assert march.person_hours == 2.0
    assert grid(march)[SUNDAY][0:5] == [0.0, 0.2, 0.0, 0.2, 0.0]
    assert usage_slots._slot_seconds("America/New_York", "2026-03")[SUNDAY * 24 + 2] == 4 * 3600


def test_a_stay_across_the_month_end_fills_both_months() -> None:
    # Seoul, Monday Nov 30 22:00 to Tuesday Dec 1 02:00, 3 persons.
    log = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 30, 22), party=3, occupancy=3),
        checkout(kst(12, 1, 2), party=3, occupancy=0),
    )
    tuesday = 1
    assert grid(log.room("2026-11"))[MONDAY][22:24] == [0.6, 0.6]  # 3 / 5 Mondays
    assert grid(log.room("2026-12"))[tuesday][0:3] == [0.6, 0.6, 0.0]  # 3 / 5 Tuesdays


def test_a_month_without_anyone_inside_has_a_grid_of_zeros() -> None:
    november = run(configured(kst(10, 20, 8))).rooms[ROOM_A].aggregate("2026-11", NOW)
    assert grid(november) == [[0.0] * 24 for _ in range(7)]


def test_the_slots_survive_the_document_and_a_month_from_version_3_has_no_heatmap() -> None:
    log = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2, 10), party=3, occupancy=3),
        checkout(kst(11, 2, 11), party=3, occupancy=0),
    )
    room, center = log.rooms[ROOM_A], log.center
    again = RoomUsage.from_json(json.loads(json.dumps(room.to_json())))
    assert again.aggregate("2026-11", NOW) == room.aggregate("2026-11", NOW)
    again_center = CenterUsage.from_json(json.loads(json.dumps(center.to_json())))
    assert again_center.aggregate("2026-11", NOW) == center.aggregate("2026-11", NOW)
    assert room.to_json()["version"] == 4

    old = room.to_json()
    old["version"] = 3
    for record in old["months"].values():
        del record["slots"]
    upgraded = RoomUsage.from_json(old)
    assert upgraded.aggregate("2026-11", NOW).occupancy_by_weekday_hour is None
    fold(upgraded, None, admitted(kst(11, 3, 10), party=1, occupancy=1), NOW)
    fold(upgraded, None, checkout(kst(11, 3, 11), party=1, occupancy=0), NOW)
    assert upgraded.aggregate("2026-11", NOW).occupancy_by_weekday_hour is None  # partial
    assert "slots" not in upgraded.to_json()["months"]["2026-11"]  # stays without
    fold(upgraded, None, admitted(kst(12, 1, 10), party=1, occupancy=1), NOW)
    fold(upgraded, None, checkout(kst(12, 1, 11), party=1, occupancy=0), NOW)
    december = upgraded.aggregate("2026-12", NOW)
    assert grid(december)[1][10] == 0.2  # counted from its start: 1 / 5 Tuesdays


def test_the_heatmap_is_on_the_wire() -> None:
    log = run(
        configured(kst(10, 20, 8)),
        admitted(kst(11, 2, 10), party=3, occupancy=3),
        checkout(kst(11, 2, 11), party=3, occupancy=0),
    )
    wire = log.room("2026-11").model_dump_json()
    back = UsageMonthly.model_validate_json(wire)
    assert grid(back)[MONDAY][10] == 0.6
    older = json.loads(wire)
    del older["occupancy_by_weekday_hour"]
    assert UsageMonthly.model_validate(older).occupancy_by_weekday_hour is None


# --- cost: bounded whatever the length of a stay -----------------------------------------


def steps(monkeypatch: pytest.MonkeyPatch, since: datetime, until: datetime, tz: str) -> int:
    """Hour-by-hour steps of splitting ``[since, until)`` into slots (counted in the module
    imported from source: a compiled one calls its functions directly)."""
    count = 0
    sources = pure("domain.usage.slots")
    original = sources._add_hour_part

    def counted(*args: object) -> datetime:
        nonlocal count
        count += 1
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "_add_hour_part", counted)  # where _split_by_slot looks
    sources._split_by_slot(since, until, tz)
    monkeypatch.undo()
    return count


@pytest.mark.parametrize("tz", ["Asia/Seoul", "America/New_York", "Asia/Kolkata"])
def test_a_long_stay_costs_no_more_steps_than_a_short_one(
    monkeypatch: pytest.MonkeyPatch, tz: str
) -> None:
    zone = ZoneInfo(tz)
    since = datetime(2026, 1, 5, 10, 30, tzinfo=zone)
    day = steps(monkeypatch, since, since + timedelta(hours=20), tz)
    year = steps(monkeypatch, since, since + timedelta(days=365), tz)
    # partial first and last days (<= 24 steps each), and each DST day (<= 25 steps)
    dst_days = 2 if tz == "America/New_York" else 0
    assert 0 < day <= 24
    assert 0 < year <= 2 * 24 + dst_days * 25


# --- a month of traffic against an obvious computation ----------------------------------

_LASTED: dict[tuple[str, str], dict[int, int]] = {}


def month_of(local: datetime) -> str:
    return f"{local.year:04d}-{local.month:02d}"


def minutes_of_slots(tz: ZoneInfo, month: str) -> dict[int, int]:
    """Minute by minute over the local month: seconds each weekday-hour slot lasted."""
    key = (tz.key, month)
    if key not in _LASTED:
        year, mon = map(int, month.split("-"))
        minute = datetime(year, mon, 1, tzinfo=tz).astimezone(UTC)
        lasted: dict[int, int] = {}
        while month_of(local := minute.astimezone(tz)) == month:
            slot = local.weekday() * 24 + local.hour
            lasted[slot] = lasted.get(slot, 0) + 60
            minute += timedelta(minutes=1)
        _LASTED[key] = lasted
    return _LASTED[key]


def person_seconds_by_slot(door: Door) -> dict[str, dict[int, int]]:
    """Minute by minute while anyone is inside: persons x 60 s in the minute's local slot."""
    out: dict[str, dict[int, int]] = {}
    for (since, inside), (until, _) in zip(door.occupied, door.occupied[1:], strict=False):
        minute = since
        while minute < until and inside:
            local = minute.astimezone(door.tz)
            slots = out.setdefault(month_of(local), {})
            slot = local.weekday() * 24 + local.hour
            slots[slot] = slots.get(slot, 0) + inside * 60
            minute += timedelta(minutes=1)
    return out


def expected_cells(door: Door, month: str) -> list[float]:
    lasted = minutes_of_slots(door.tz, month)
    person_seconds = person_seconds_by_slot(door).get(month, {})
    return [person_seconds.get(slot, 0) / lasted[slot] for slot in range(7 * 24)]


@settings(max_examples=25, deadline=None)
@given(
    hours=st.sampled_from(sorted(HOURS)),
    start=st.sampled_from(STARTS),
    log=st.lists(visits, max_size=60),
    closings=st.sets(st.integers(0, DAYS - 1), max_size=DAYS),
    tick=st.integers(1, 59),
)
def test_the_heatmap_equals_an_obvious_computation(
    hours: str, start: date, log: list[Visit], closings: set[int], tick: int
) -> None:
    opens, closes = HOURS[hours]
    seoul = ZoneInfo("Asia/Seoul")
    mine = [v for v in log if v.room == 0]
    theirs = [v for v in log if v.room == 1]
    doors = [
        traffic(ROOM_A, NEW_YORK, opens, closes, 20, start, mine, closings, tick),
        # nobody checks the Seoul room out at closing: stays over days and months
        traffic(ROOM_B, seoul, "09:00", "22:00", 12, start, theirs, set(), tick),
    ]
    configs: list[AnyDecision] = [
        with_capacity(
            configured(
                datetime.combine(start, time(6), NEW_YORK),
                ROOM_A,
                opens,
                closes,
                tz="America/New_York",
            ),
            20,
        ),
        configured(datetime.combine(start, time(6), seoul), ROOM_B, "09:00", "22:00"),
    ]
    decisions = sorted([*doors[0].decisions, *doors[1].decisions], key=lambda d: d.decided_at)
    rooms = {ROOM_A: RoomUsage(ROOM_A), ROOM_B: RoomUsage(ROOM_B)}
    center = CenterUsage(CENTER)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    for decision in [*configs, *decisions]:
        fold(rooms[decision.room_id], center, decision, now)

    first = start.replace(day=1)
    months = [month_of(datetime.combine(first + timedelta(days=31 * i), time())) for i in range(2)]
    for month in months:
        totals = [0.0] * (7 * 24)
        for door in doors:
            expected = expected_cells(door, month)
            cells = grid(rooms[door.room_id].aggregate(month, now))
            assert [c for row in cells for c in row] == [round(v, 4) for v in expected], (
                door.room_id,
                month,
            )
            totals = [a + b for a, b in zip(totals, expected, strict=True)]
        center_cells = grid(center.aggregate(month, now))
        assert [c for row in center_cells for c in row] == [round(v, 4) for v in totals]


@settings(max_examples=30, deadline=None)
@example(tz="America/New_York", start=63 * 1440 + 7, minutes=20 * 1440 + 13)  # Mar 8
@example(tz="America/New_York", start=301 * 1440 + 367, minutes=9 * 1440)  # Nov 1
@example(tz="Australia/Lord_Howe", start=90 * 1440 + 1, minutes=5 * 1440)  # Apr 5
@example(tz="Australia/Lord_Howe", start=271 * 1440 + 59, minutes=10 * 1440)  # Oct 4
@given(
    tz=st.sampled_from(["America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    start=st.integers(0, 60 * 24 * 400),
    minutes=st.integers(0, 60 * 24 * 40),
)
def test_splitting_a_stay_by_slot_equals_walking_it_minute_by_minute(
    tz: str, start: int, minutes: int
) -> None:
    """Any stay of up to 40 days in 2026, over DST changes (Lord Howe: by half an hour)."""
    zone = ZoneInfo(tz)
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start)
    until = since + timedelta(minutes=minutes)
    expected: dict[str, dict[int, int]] = {}
    minute = since
    while minute < until:
        local = minute.astimezone(zone)
        slots = expected.setdefault(month_of(local), {})
        slot = local.weekday() * 24 + local.hour
        slots[slot] = slots.get(slot, 0) + 60
        minute += timedelta(minutes=1)
    assert usage_slots._split_by_slot(since, until, tz) == expected


@settings(max_examples=300, deadline=None)
@example(tz="America/New_York", start=66 * 1440 + 7 * 60 + 30, seconds=3600)  # Mar 8, 01:30
@example(tz="America/New_York", start=303 * 1440 + 5 * 60 + 30, seconds=3600)  # Nov 1, 01:30
@example(tz="Australia/Lord_Howe", start=94 * 1440 + 14 * 60 + 45, seconds=1800)  # Apr 5
@example(tz="Asia/Seoul", start=333 * 1440 + 14 * 60 + 59, seconds=61)  # Nov 30, 23:59 KST
@given(
    tz=st.sampled_from(["America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    start=st.integers(0, 60 * 24 * 400),
    seconds=st.integers(0, 3 * 3600),
)
def test_splitting_a_stay_at_once_equals_splitting_it_by_month_and_by_slot(
    tz: str, start: int, seconds: int
) -> None:
    """``_split_stay``'s shortcut for a stay within one local hour (around DST changes and
    month ends too) gives what the two walks give."""
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start, microseconds=start % 7)
    until = since + timedelta(seconds=seconds)
    assert usage_slots._split_stay(since, until, tz) == (
        usage_slots._split_by_month(since, until, tz),
        usage_slots._split_by_slot(since, until, tz),
    )
