"""domain/opening_hours.py: openings as real instants, DST-correct, overnight included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.opening_hours import (
    ends_next_day,
    is_open,
    latest_closing,
    open_minutes,
    opening_at,
    opening_window,
)

NEW_YORK = ZoneInfo("America/New_York")
SEOUL = ZoneInfo("Asia/Seoul")
SPRING_FORWARD = date(2026, 3, 8)  # 02:00 EST -> 03:00 EDT
FALL_BACK = date(2026, 11, 1)  # 02:00 EDT -> 01:00 EST


def hm(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- plain days -------------------------------------------------------------------------


def test_a_plain_day_is_the_wall_clock_difference() -> None:
    assert open_minutes(date(2026, 11, 16), hm(9), hm(22), SEOUL) == 13 * 60
    start, end = opening_window(date(2026, 11, 16), hm(9), hm(22), SEOUL)
    assert (start, end) == (utc(2026, 11, 16, 0), utc(2026, 11, 16, 13))


def test_windows_are_utc_so_arithmetic_is_real_time() -> None:
    start, end = opening_window(SPRING_FORWARD, 0, 1440, NEW_YORK)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert end - start == timedelta(hours=23)


# --- DST --------------------------------------------------------------------------------


def test_spring_forward_day_daytime_hours_are_unchanged() -> None:
    assert open_minutes(SPRING_FORWARD, hm(9), hm(17), NEW_YORK) == 8 * 60


def test_spring_forward_whole_day_is_23_hours() -> None:
    assert open_minutes(SPRING_FORWARD, 0, 1440, NEW_YORK) == 23 * 60


def test_fall_back_whole_day_is_25_hours() -> None:
    assert open_minutes(FALL_BACK, 0, 1440, NEW_YORK) == 25 * 60


def test_fall_back_night_opening_gets_the_repeated_hour() -> None:
    assert open_minutes(FALL_BACK, 0, hm(6), NEW_YORK) == 7 * 60


def test_a_zone_without_dst_is_always_the_wall_clock() -> None:
    for day in (date(2026, 3, 8), date(2026, 11, 1), date(2026, 3, 29)):
        assert open_minutes(day, 0, 1440, SEOUL) == 1440


def test_nonexistent_opening_time_reads_with_fold_0() -> None:
    """02:30 does not exist on the spring-forward day: fold=0 reads it as 02:30 EST (03:30 EDT)."""
    start, end = opening_window(SPRING_FORWARD, hm(2, 30), hm(10), NEW_YORK)
    assert start == utc(2026, 3, 8, 7, 30)  # 02:30 EST
    assert start.astimezone(NEW_YORK).hour == 3  # shown as 03:30 EDT
    assert end == utc(2026, 3, 8, 14)  # 10:00 EDT
    assert open_minutes(SPRING_FORWARD, hm(2, 30), hm(10), NEW_YORK) == hm(6, 30)


def test_an_opening_inside_the_skipped_hour_lasts_nothing() -> None:
    assert open_minutes(SPRING_FORWARD, hm(2), hm(3), NEW_YORK) == 0


def test_ambiguous_opening_time_reads_with_fold_0_the_first_occurrence() -> None:
    """01:30 happens twice on the fall-back day: fold=0 is the first one (EDT)."""
    start, end = opening_window(FALL_BACK, hm(1, 30), hm(9), NEW_YORK)
    assert start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert end == utc(2026, 11, 1, 14)  # 09:00 EST
    assert open_minutes(FALL_BACK, hm(1, 30), hm(9), NEW_YORK) == hm(8, 30)


# --- overnight and whole day ------------------------------------------------------------


def test_overnight_opening_ends_on_the_next_day() -> None:
    start, end = opening_window(date(2026, 11, 16), hm(18), hm(2), SEOUL)
    assert (start, end) == (utc(2026, 11, 16, 9), utc(2026, 11, 16, 17))
    assert open_minutes(date(2026, 11, 16), hm(18), hm(2), SEOUL) == 8 * 60
    assert ends_next_day(hm(18), hm(2))
    assert not ends_next_day(hm(9), hm(22))


def test_overnight_opening_into_the_spring_forward_night_is_an_hour_shorter() -> None:
    # Mar 7 18:00 EST -> Mar 8 03:00 EDT: 9 h on the clock, 8 h elapsed
    assert open_minutes(date(2026, 3, 7), hm(18), hm(3), NEW_YORK) == 8 * 60


def test_overnight_opening_into_the_fall_back_night_is_an_hour_longer() -> None:
    # Oct 31 18:00 EDT -> Nov 1 03:00 EST: 9 h on the clock, 10 h elapsed
    assert open_minutes(date(2026, 10, 31), hm(18), hm(3), NEW_YORK) == 10 * 60


def test_whole_day_and_equal_hours_are_24_hours() -> None:
    assert open_minutes(date(2026, 6, 1), 0, 1440, NEW_YORK) == 1440
    assert open_minutes(date(2026, 6, 1), 0, 0, NEW_YORK) == 1440  # closes <= opens
    assert open_minutes(date(2026, 6, 1), hm(9), hm(9), NEW_YORK) == 1440


def test_minutes_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="opens"):
        opening_window(date(2026, 6, 1), -1, 600, SEOUL)
    with pytest.raises(ValueError, match="closes"):
        opening_window(date(2026, 6, 1), 0, 1441, SEOUL)


# --- which opening an instant is in -----------------------------------------------------


def test_opening_at_finds_the_overnight_opening_of_the_day_before() -> None:
    # 01:00 Seoul on Nov 17 belongs to the Nov 16 18:00-02:00 opening
    instant = datetime(2026, 11, 17, 1, tzinfo=SEOUL)
    assert opening_at(instant, hm(18), hm(2), SEOUL) == (
        utc(2026, 11, 16, 9),
        utc(2026, 11, 16, 17),
    )
    assert is_open(instant, hm(18), hm(2), SEOUL)
    assert not is_open(datetime(2026, 11, 17, 2, tzinfo=SEOUL), hm(18), hm(2), SEOUL)
    assert not is_open(datetime(2026, 11, 17, 12, tzinfo=SEOUL), hm(18), hm(2), SEOUL)


def test_opening_at_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        opening_at(datetime(2026, 11, 17, 1), hm(9), hm(17), SEOUL)


def test_latest_closing_of_an_overnight_room() -> None:
    # at 01:00 on Nov 17 the Nov 16 opening is still going: the last closing was Nov 16 02:00
    instant = datetime(2026, 11, 17, 1, tzinfo=SEOUL)
    assert latest_closing(instant, hm(18), hm(2), SEOUL) == datetime(
        2026, 11, 16, 2, tzinfo=SEOUL
    ).astimezone(UTC)
    later = datetime(2026, 11, 17, 3, tzinfo=SEOUL)
    assert latest_closing(later, hm(18), hm(2), SEOUL) == datetime(
        2026, 11, 17, 2, tzinfo=SEOUL
    ).astimezone(UTC)


def test_latest_closing_of_a_daytime_room() -> None:
    assert latest_closing(datetime(2026, 11, 17, 8, tzinfo=SEOUL), hm(9), hm(22), SEOUL) == (
        datetime(2026, 11, 16, 22, tzinfo=SEOUL).astimezone(UTC)
    )
    assert latest_closing(datetime(2026, 11, 17, 22, tzinfo=SEOUL), hm(9), hm(22), SEOUL) == (
        datetime(2026, 11, 17, 22, tzinfo=SEOUL).astimezone(UTC)
    )


# --- properties -------------------------------------------------------------------------

ZONES = st.sampled_from(
    [NEW_YORK, SEOUL, ZoneInfo("Europe/Berlin"), ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")]
)
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31))
MINUTES = st.integers(min_value=0, max_value=1440)


@given(DAYS, ZONES)
def test_whole_days_tile_time(day: date, tz: ZoneInfo) -> None:
    """Consecutive 00:00-24:00 openings meet exactly: no instant is lost or counted twice."""
    _, end = opening_window(day, 0, 1440, tz)
    next_start, _ = opening_window(day + timedelta(days=1), 0, 1440, tz)
    assert end == next_start


@given(st.integers(min_value=2000, max_value=2037), ZONES)
def test_a_year_of_whole_days_is_the_real_length_of_the_year(year: int, tz: ZoneInfo) -> None:
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    total = sum(open_minutes(date(year, 1, 1) + timedelta(d), 0, 1440, tz) for d in range(days))
    start = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC)
    assert total * 60 == (end - start).total_seconds()


@given(DAYS, MINUTES, MINUTES)
def test_without_dst_open_minutes_are_the_wall_clock_difference(
    day: date, opens: int, closes: int
) -> None:
    wall = closes - opens if closes > opens else closes + 1440 - opens
    assert open_minutes(day, opens, closes, SEOUL) == wall
    assert open_minutes(day, opens, closes, ZoneInfo("UTC")) == wall


@given(DAYS, MINUTES, MINUTES, ZONES)
def test_dst_moves_an_opening_by_at_most_the_shift(
    day: date, opens: int, closes: int, tz: ZoneInfo
) -> None:
    wall = closes - opens if closes > opens else closes + 1440 - opens
    assert abs(open_minutes(day, opens, closes, tz) - wall) <= 60


@given(DAYS, MINUTES, MINUTES, ZONES, st.integers(min_value=0, max_value=3 * 1440))
def test_is_open_agrees_with_the_windows(
    day: date, opens: int, closes: int, tz: ZoneInfo, offset: int
) -> None:
    instant = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=offset)
    local_day = instant.astimezone(tz).date()
    windows = [opening_window(local_day + timedelta(d), opens, closes, tz) for d in (-2, -1, 0)]
    expected = any(start <= instant < end for start, end in windows)
    assert is_open(instant, opens, closes, tz) == expected
    closing = latest_closing(instant, opens, closes, tz)
    assert closing <= instant
    assert all(not (closing < end <= instant) for _, end in windows)
