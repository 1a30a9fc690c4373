"""Opening hours and capacity in force by local date, and a month's open minutes.

A room's rules are step functions of its local date: :class:`OpeningPeriod` and
:class:`CapacityPeriod` entries, each in force from its ``effective`` day on (``_segments``
merges them). Open minutes are real elapsed minutes (``domain.opening_hours``): a day's
wall-clock minutes plus a DST correction cached per kind of hours and month
(``_dst_corrections``), not zero on a handful of days a year. ``_steps`` turns a room's rules
into changes of a center's sums per kind of opening hours (``_Kind``); ``_prune_periods``
keeps only the entries that decide the days still needed.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from domain import opening_hours
from domain.months import parse_month

_Kind = tuple[str, int, int]
"""Opening hours of a room as the center sums them: (time zone, opens, closes)."""


def _wall_minutes(opens: int, closes: int) -> int:
    """Minutes on the clock of the opening that starts a day (overnight: until ``closes``
    the next day); the DST correction is added separately (:func:`_dst_corrections`)."""
    if opening_hours.ends_next_day(opens, closes):
        return closes + opening_hours.MINUTES_PER_DAY - opens
    return closes - opens


@dataclass(frozen=True)
class OpeningPeriod:
    """Opening hours in force from the local date ``effective`` on (minutes since midnight).

    ``closes <= opens`` is an opening that ends the next day; each opening counts for the
    day it starts on."""

    effective: date
    opens: int
    closes: int

    @property
    def daily_minutes(self) -> int:
        """Wall-clock minutes of one opening (a DST day differs: see ``_dst_corrections``)."""
        return _wall_minutes(self.opens, self.closes)

    def to_json(self) -> list[Any]:
        return [self.effective.isoformat(), self.opens, self.closes]

    @classmethod
    def from_json(cls, data: list[Any]) -> OpeningPeriod:
        effective, opens, closes = data
        return cls(date.fromisoformat(str(effective)), int(opens), int(closes))


@dataclass(frozen=True)
class CapacityPeriod:
    """The room's capacity in force from the local date ``effective`` on (that whole day)."""

    effective: date
    capacity: int

    def to_json(self) -> list[Any]:
        return [self.effective.isoformat(), self.capacity]

    @classmethod
    def from_json(cls, data: list[Any]) -> CapacityPeriod:
        effective, capacity = data
        return cls(date.fromisoformat(str(effective)), int(capacity))


class _Dated(Protocol):
    @property
    def effective(self) -> date: ...


_D = TypeVar("_D", bound=_Dated)


def _with_dated(items: list[_D], new: _D, same: Callable[[_D, _D], bool]) -> list[_D]:
    """``items`` with ``new`` in force from its date (same date: replaced), normalised:
    an entry that changes nothing against the one before it is dropped."""
    by_date = {item.effective: item for item in items}
    by_date[new.effective] = new
    normalised: list[_D] = []
    for item in sorted(by_date.values(), key=lambda i: i.effective):
        if normalised and same(normalised[-1], item):
            continue  # no change in force
        normalised.append(item)
    return normalised


def _with_period(periods: list[OpeningPeriod], new: OpeningPeriod) -> list[OpeningPeriod]:
    return _with_dated(periods, new, lambda a, b: (a.opens, a.closes) == (b.opens, b.closes))


def _with_capacity(capacities: list[CapacityPeriod], new: CapacityPeriod) -> list[CapacityPeriod]:
    return _with_dated(capacities, new, lambda a, b: a.capacity == b.capacity)


def _month_days(month: str) -> tuple[int, int]:
    """(ordinal of the 1st, number of days) of ``month``."""
    year, mon = parse_month(month)
    return date(year, mon, 1).toordinal(), calendar.monthrange(year, mon)[1]


@lru_cache(maxsize=65_536)
def _dst_corrections(tz: str, opens: int, closes: int, month: str) -> tuple[tuple[int, int], ...]:
    """(date ordinal, real minus wall-clock minutes) of the days of ``month`` whose opening
    a DST change lengthens or shortens. Empty in a zone without DST. Pure, so cached."""
    first, days = _month_days(month)
    zone = ZoneInfo(tz)
    wall = _wall_minutes(opens, closes)
    corrections: list[tuple[int, int]] = []
    for ordinal in range(first, first + days):
        real = opening_hours.open_minutes(date.fromordinal(ordinal), opens, closes, zone)
        if real != wall:
            corrections.append((ordinal, real - wall))
    return tuple(corrections)


@dataclass(frozen=True)
class _Segment:
    """From date ordinal ``start`` on: these hours (``None``: not open) and capacity."""

    start: int
    hours: tuple[int, int] | None
    capacity: int


def _segments(periods: list[OpeningPeriod], capacities: list[CapacityPeriod]) -> list[_Segment]:
    """Hours and capacity together, as one step function of the local date."""
    days = sorted({p.effective for p in periods} | {c.effective for c in capacities})
    segments: list[_Segment] = []
    hours: tuple[int, int] | None = None
    capacity = 0
    p = c = 0
    for day in days:
        while p < len(periods) and periods[p].effective <= day:
            hours = (periods[p].opens, periods[p].closes)
            p += 1
        while c < len(capacities) and capacities[c].effective <= day:
            capacity = capacities[c].capacity
            c += 1
        if segments and (segments[-1].hours, segments[-1].capacity) == (hours, capacity):
            continue
        segments.append(_Segment(day.toordinal(), hours, capacity))
    return segments


def _open_minutes(
    periods: list[OpeningPeriod], capacities: list[CapacityPeriod], tz: str, month: str
) -> tuple[int, int]:
    """(open minutes, capacity x open minutes) of one room over the local days of ``month``.

    Each day counts the real minutes of the opening that starts on it, with the hours and the
    capacity in force that day. O(periods + capacities) and the month's DST days.
    """
    first, days = _month_days(month)
    end = first + days
    segments = _segments(periods, capacities)
    minutes = capacity_minutes = 0
    for index, segment in enumerate(segments):
        if segment.hours is None:
            continue
        start = max(first, segment.start)
        stop = end if index + 1 == len(segments) else min(end, segments[index + 1].start)
        if stop <= start:
            continue
        opens, closes = segment.hours
        part = (stop - start) * _wall_minutes(opens, closes)
        part += sum(
            delta
            for day, delta in _dst_corrections(tz, opens, closes, month)
            if start <= day < stop
        )
        minutes += part
        capacity_minutes += segment.capacity * part
    return minutes, capacity_minutes


def _steps(
    tz: str, periods: list[OpeningPeriod], capacities: list[CapacityPeriod]
) -> list[tuple[_Kind, int, int, int]]:
    """A room's rules as changes of the center's sums: (kind, date ordinal, rooms delta,
    capacity delta), no all-zero change."""
    changes: list[tuple[_Kind, int, int, int]] = []
    hours: tuple[int, int] | None = None
    capacity = 0
    for segment in _segments(periods, capacities):
        if hours is not None and hours == segment.hours:  # the same hours, another capacity
            changes.append(((tz, *hours), segment.start, 0, segment.capacity - capacity))
        else:
            if hours is not None:
                changes.append(((tz, *hours), segment.start, -1, -capacity))
            if segment.hours is not None:
                changes.append(((tz, *segment.hours), segment.start, 1, segment.capacity))
        hours, capacity = segment.hours, segment.capacity
    return changes


def _prune_periods(items: list[_D], cutoff: date) -> list[_D]:
    """Keep what decides every day from ``cutoff`` on (hours or capacities)."""
    keep_from = 0
    for index, item in enumerate(items):
        if item.effective <= cutoff:
            keep_from = index
    return items[keep_from:]


def _prunable_day(periods: list[OpeningPeriod], capacities: list[CapacityPeriod]) -> int | None:
    """The first cutoff (date ordinal) at which pruning would shorten these lists."""
    days = [items[1].effective.toordinal() for items in (periods, capacities) if len(items) > 1]
    return min(days) if days else None


def _in_force(periods: list[OpeningPeriod], day: date) -> OpeningPeriod | None:
    for period in reversed(periods):
        if period.effective <= day:
            return period
    return None
