"""Splitting an interval of time by local month, and by local weekday-hour slot.

``_split_by_month`` gives the seconds of an interval in each local month (booked and
person-seconds). The heatmap (``occupancy_by_weekday_hour``) splits each stay by local
weekday-hour (``_split_by_slot``): the partial first and last days and DST days hour by hour,
the whole days between in bulk per month, so its work is bounded whatever the stay's length.
``_slot_seconds`` is how long each slot lasted in a month (the denominator) and ``_cell`` one
cell of the heatmap.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.months import add_months, local_month, month_start
from domain.usage.periods import _month_days

# --- months ---------------------------------------------------------------------------


def _split_by_month(starts_at: datetime, ends_at: datetime, tz: str) -> dict[str, int]:
    """Seconds of ``[starts_at, ends_at)`` falling in each local month of ``tz``."""
    start = starts_at.astimezone(UTC)
    end = ends_at.astimezone(UTC)
    seconds: dict[str, int] = {}
    if start < end:
        month = local_month(start, tz)
        if local_month(end, tz) == month:  # months are intervals: all of it is in this one
            part = round((end - start).total_seconds())
            return {month: part} if part > 0 else seconds
    current = start
    while current < end:
        month = local_month(current, tz)
        segment_end = min(end, month_start(add_months(month, 1), tz))
        part = round((segment_end - current).total_seconds())
        if part > 0:
            seconds[month] = seconds.get(month, 0) + part
        current = segment_end
    return seconds


# --- weekday-hour slots (the heatmap) -------------------------------------------------

SLOTS = 7 * 24
"""Weekday-hour slots of a week: ``weekday * 24 + hour`` (Monday 0, local hour of day)."""
_Slots = dict[int, int]


def _local_midnight(ordinal: int, zone: ZoneInfo) -> datetime:
    """Start of the local day ``ordinal`` in UTC (a skipped midnight: when the day starts)."""
    day = date.fromordinal(ordinal)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=4096)
def _irregular_days(tz: str, month: str) -> tuple[int, ...]:
    """Date ordinals of ``month`` that are not 24 plain hours in ``tz`` (a DST change):
    their hours are walked one by one. Pure, so cached; empty in a zone without DST."""
    first, days = _month_days(month)
    zone = ZoneInfo(tz)
    irregular: list[int] = []
    start = _local_midnight(first, zone)
    for ordinal in range(first, first + days):
        end = _local_midnight(ordinal + 1, zone)
        before_end = (end - timedelta(microseconds=1)).astimezone(zone).utcoffset()
        if end - start != timedelta(days=1) or start.astimezone(zone).utcoffset() != before_end:
            irregular.append(ordinal)
        start = end
    return tuple(irregular)


def _add_full_days(slots: _Slots, first: int, stop: int, factor: int) -> None:
    """Every hour of the plain local days ``[first, stop)`` (ordinals): O(168), whatever
    their number. ``date.fromordinal(o).weekday() == (o - 1) % 7``."""
    weeks, rest = divmod(stop - first, 7)
    start_weekday = (first - 1) % 7
    for offset in range(7):
        weekday = (start_weekday + offset) % 7
        count = weeks + (1 if offset < rest else 0)
        if count:
            for hour in range(24):
                slot = weekday * 24 + hour
                slots[slot] = slots.get(slot, 0) + factor * count * 3600


def _split_by_slot(starts_at: datetime, ends_at: datetime, tz: str) -> dict[str, _Slots]:
    """Seconds of ``[starts_at, ends_at)`` per local month and weekday-hour slot of ``tz``.

    Slots are local hours: on a spring-forward day the skipped hour gets nothing, on a
    fall-back day the repeated hour gets both of its real hours. Cost: a partial first and
    last day and each DST day hour by hour (at most 25 steps each), the plain days between
    in bulk (168 additions per month), so O(months spanned), like ``_split_by_month``.
    """
    zone = ZoneInfo(tz)
    current = starts_at.astimezone(UTC)
    end = ends_at.astimezone(UTC)
    out: dict[str, _Slots] = {}
    end_day = end.astimezone(zone).date().toordinal()
    hour = timedelta(hours=1)  # local hour boundaries: an hour apart between DST changes
    while current < end:
        local = current.astimezone(zone)
        month = f"{local.year:04d}-{local.month:02d}"
        slots = out.setdefault(month, {})
        into_hour = timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        if not into_hour and local.hour == 0:  # local midnight: plain whole days in bulk
            day = local.date().toordinal()
            first, days = _month_days(month)
            stop = min(end_day, first + days)
            irregular = _irregular_days(tz, month)
            index = bisect_left(irregular, day)
            if index < len(irregular):
                stop = min(stop, irregular[index])
            if stop > day:
                _add_full_days(slots, day, stop, 1)
                current = _local_midnight(stop, zone)
                continue
        current = _add_hour_part(slots, local, current, min(end, current + hour - into_hour))
    return {month: slots for month, slots in out.items() if slots}


def _add_hour_part(slots: _Slots, local: datetime, start: datetime, stop: datetime) -> datetime:
    """``[start, stop)``, within the local hour of ``local`` (= ``start``), to its slot;
    returns ``stop``. One step of the hour-by-hour walk (the tests count them)."""
    part = round((stop - start).total_seconds())
    if part > 0:
        slot = local.weekday() * 24 + local.hour
        slots[slot] = slots.get(slot, 0) + part
    return stop


def _split_stay(
    starts_at: datetime, ends_at: datetime, tz: str
) -> tuple[dict[str, int], dict[str, _Slots]]:
    """``_split_by_month`` and ``_split_by_slot`` of ``[starts_at, ends_at)``, together.

    Most stays between two changes of a room lie within one local hour: one conversion to
    local time splits those (one month, one slot), without the two walks."""
    local = starts_at.astimezone(ZoneInfo(tz))
    into_hour = timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    if ends_at - starts_at > _HOUR - into_hour:
        return _split_by_month(starts_at, ends_at, tz), _split_by_slot(starts_at, ends_at, tz)
    part = round((ends_at - starts_at).total_seconds())
    if part <= 0:
        return {}, {}
    month = f"{local.year:04d}-{local.month:02d}"
    return {month: part}, {month: {local.weekday() * 24 + local.hour: part}}


_HOUR = timedelta(hours=1)


@lru_cache(maxsize=4096)
def _slot_seconds(tz: str, month: str) -> tuple[int, ...]:
    """Seconds each weekday-hour slot lasts in the local ``month`` of ``tz``: the
    denominator of the heatmap (5 Mondays: 5 x 3600 for each Monday hour; a DST day's
    skipped hour less, its repeated hour more). Pure, so cached."""
    start = month_start(month, tz)
    end = month_start(add_months(month, 1), tz)
    slots = _split_by_slot(start, end, tz).get(month, {})
    return tuple(slots.get(slot, 0) for slot in range(SLOTS))


def _cell(slots: dict[str, _Slots], month: str, slot: int) -> float:
    """Average persons present in ``slot``: its person-seconds / the seconds it lasted,
    summed over the time zones (a center: over its rooms), rounded to 4 decimals."""
    average = 0.0
    for tz, person_seconds in slots.items():
        value = person_seconds.get(slot, 0)
        if value:
            lasted = _slot_seconds(tz, month)[slot]
            if lasted > 0:
                average += value / lasted
    return round(average, 4)
