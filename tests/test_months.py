"""``domain.months.local_month`` keeps the month it answered last per zone: whatever it was
asked before, it answers what the zone's own clock says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.months import local_month

ZONES = [
    "Asia/Seoul",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "UTC",
    "America/Santiago",
    "Pacific/Apia",
    "Asia/Kathmandu",
]
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def direct(ts: datetime, tz: str) -> str:
    local = ts.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


@given(st.lists(st.tuples(INSTANTS, st.sampled_from(ZONES)), min_size=1, max_size=30))
def test_the_kept_month_never_changes_the_answer(asked: list[tuple[datetime, str]]) -> None:
    for ts, tz in asked:
        assert local_month(ts, tz) == direct(ts, tz)
        # The instants around a month's ends, after the month was kept.
        for delta in (timedelta(hours=-30), timedelta(hours=-1), timedelta(hours=1)):
            assert local_month(ts + delta, tz) == direct(ts + delta, tz)


def test_month_ends_in_a_zone_with_dst() -> None:
    tz = "America/New_York"
    assert local_month(datetime(2026, 11, 15, tzinfo=UTC), tz) == "2026-11"
    assert local_month(datetime(2026, 12, 1, 4, 59, tzinfo=UTC), tz) == "2026-11"
    assert local_month(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), tz) == "2026-12"
    assert local_month(datetime(2026, 11, 1, 3, 59, tzinfo=UTC), tz) == "2026-10"  # EDT


def test_a_naive_time_is_refused_even_when_a_month_is_kept() -> None:
    local_month(datetime(2026, 11, 15, tzinfo=UTC), "Asia/Seoul")
    with pytest.raises(ValueError, match="timezone-aware"):
        local_month(datetime(2026, 11, 15), "Asia/Seoul")
