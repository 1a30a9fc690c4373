"""The producers' event ids: UUID version 7 (``producers.ids``), ordered by time.

Why it matters is in ``producers/ids.py``: the id memory is a B-tree, and ids that grow
with time land together at its end.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.traffic import layout, mixed
from producers.ids import new_event_id
from producers.traffic import busy_hour, generate, seosan_center
from schemas.inputs import CHECKIN_ADAPTER, Checkin

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)
bits = st.integers(min_value=0, max_value=(1 << 128) - 1)


@given(at=times, random_bits=bits)
def test_an_id_is_version_7_and_carries_its_time_to_the_millisecond(
    at: datetime, random_bits: int
) -> None:
    made = new_event_id(at, random_bits)
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    millis = made.int >> 80
    assert datetime.fromtimestamp(millis / 1000, UTC) == at.replace(
        microsecond=at.microsecond // 1000 * 1000
    )


@given(earlier=times, later=times, a=bits, b=bits)
def test_a_later_millisecond_always_sorts_after(
    earlier: datetime, later: datetime, a: int, b: int
) -> None:
    if later - earlier < timedelta(milliseconds=1):
        earlier, later = later, earlier
    if later - earlier < timedelta(milliseconds=1):
        return  # the same millisecond: no order between them, by design
    assert new_event_id(earlier, a) < new_event_id(later, b)
    assert str(new_event_id(earlier, a)) < str(new_event_id(later, b))  # as stored (text)


@given(at=times, random_bits=bits)
def test_the_same_time_and_bits_give_the_same_id(at: datetime, random_bits: int) -> None:
    assert new_event_id(at, random_bits) == new_event_id(at, random_bits)
    # An offset is only another way of writing the same instant.
    seoul = at.astimezone(timezone(timedelta(hours=9)))
    assert new_event_id(seoul, random_bits) == new_event_id(at, random_bits)


def test_ids_made_now_differ_and_follow_the_clock() -> None:
    before = new_event_id(datetime.now(UTC) - timedelta(milliseconds=2), 0)
    made = {new_event_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(before < each for each in made)


def test_a_time_without_an_offset_or_before_1970_is_refused() -> None:
    with pytest.raises(TypeError):
        new_event_id(datetime(2026, 12, 7, 10, 0))
    with pytest.raises(ValueError, match="version 7"):
        new_event_id(datetime(1969, 12, 31, tzinfo=UTC))


def test_the_contract_reads_a_version_7_id_like_any_uuid() -> None:
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    sent = Checkin(
        event_id=new_event_id(at), occurred_at=at, room_id="r1", kiosk_id="k", party_size=1
    )
    assert CHECKIN_ADAPTER.validate_json(sent.model_dump_json()) == sent


def test_the_traffic_generator_names_inputs_by_their_time() -> None:
    """Seeded traffic keeps its ids (the same seed, the same ids) and they follow the
    inputs' ``occurred_at``: sorted by time, the ids are sorted too (across milliseconds)."""
    first_day = date(2026, 11, 2)
    days = generate(seosan_center(), first_day, first_day + timedelta(days=20), seed=7)
    again = generate(seosan_center(), first_day, first_day + timedelta(days=20), seed=7)
    events = [event for day in days for event in day.events]
    assert len(events) > 100
    assert [e.event_id for e in events] == [e.event_id for day in again for e in day.events]
    assert all(e.event_id.version == 7 for e in events)
    hour = busy_hour(seosan_center(), datetime(2026, 11, 2, 10, tzinfo=UTC), seed=7)
    assert hour and all(e.event_id.version == 7 for e in hour)
    for first, second in itertools.pairwise(events):
        if second.occurred_at - first.occurred_at >= timedelta(milliseconds=1):
            assert first.event_id < second.event_id


def test_the_bench_names_inputs_as_asked() -> None:
    start = datetime.now(UTC)
    rooms = layout(20)
    recommended = list(mixed(rooms, 200, 1, start))
    random_ids = list(mixed(rooms, 200, 1, start, random_ids=True))
    assert {e.event_id.version for e in recommended} == {7}
    assert {e.event_id.version for e in random_ids} == {4}
    # Same seed, same traffic: only the ids differ (booking ids are fresh too).
    strip = [e.model_dump(exclude={"event_id", "booking_id"}) for e in recommended]
    assert strip == [e.model_dump(exclude={"event_id", "booking_id"}) for e in random_ids]
