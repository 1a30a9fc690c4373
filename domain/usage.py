"""Monthly usage statistics folded from the ``decisions`` log.

Pure Python: no Kafka, no SQL, no I/O. An adapter loads a :class:`RoomUsage` (one per room)
and a :class:`CenterUsage` (one per center) from JSON documents, calls :func:`fold` for each
decision of a batch (never twice for the same ``event_id``), publishes the returned
:class:`~schemas.outputs.UsageMonthly` messages on ``usage-monthly`` and saves the states.
At the start of a month it calls :func:`close_month` with :func:`previous_month`.

Months are the room's *local* months (the ``timezone`` of its ``room.configured`` decision,
``Asia/Seoul`` until one is seen). The definitions of every figure are in
``docs/usage-statistics.md``.

Cost: folding one decision does not depend on the number of rooms of the center nor on the
room's history (amortised: what pruning drops, an earlier decision added). A room caches its
open minutes per month; a center keeps, per kind of opening hours (time zone, opens, closes),
how many of its rooms have them and their summed capacity as changes by local date (a room
whose rules change adjusts them by its own difference), the sum of their occupancies, and
caches its months' open minutes until a rule changes; bookings are forgotten by the UTC day
their interval ends; member sets and opening periods are pruned from sorted indexes, so a
decision that drops nothing looks at nothing. Open minutes are real elapsed minutes
(``domain.opening_hours``): a day's wall-clock minutes plus a DST correction that is cached
per kind of hours and month and is not zero on a handful of days a year. The heatmap
(``occupancy_by_weekday_hour``) splits each stay by local weekday-hour: the partial first and
last days and DST days hour by hour, the whole days between in bulk per month, so its work is
bounded whatever the stay's length; its cells are kept up to date per slot touched.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from domain import opening_hours
from domain.months import (
    DEFAULT_TIMEZONE,
    add_months,
    local_month,
    month_start,
    parse_month,
    previous_month,
    require_aware,
)
from schemas.common import parse_hhmm
from schemas.decisions import (
    AnyDecision,
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingReleased,
    CapacityChanged,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    RoomConfiguredDecision,
)
from schemas.outputs import UsageMonthly

__all__ = [
    "ACTIVE_BOOKING_RETENTION",
    "DEFAULT_TIMEZONE",
    "MEMBER_SET_RETENTION_MONTHS",
    "STATE_VERSION",
    "ActiveBooking",
    "CapacityPeriod",
    "CenterRoom",
    "CenterUsage",
    "MonthUsage",
    "OpeningPeriod",
    "RoomUsage",
    "close_month",
    "fold",
    "local_month",
    "previous_month",
]

ACTIVE_BOOKING_RETENTION = timedelta(days=62)
"""Active (and ended) booking intervals ending longer ago than this before the newest
decision are dropped from the state; a later cancel/release of one is still counted but
subtracts no hours."""
MEMBER_SET_RETENTION_MONTHS = 2
"""Member-id sets of final months more than this many months before the newest decision's
month are dropped; ``unique_members`` of those months is frozen from then on."""
STATE_VERSION = 4
"""Version of the documents :meth:`RoomUsage.to_json` and :meth:`CenterUsage.to_json` write.
Versions 1 to 3 are still read (``from_json`` converts them; what they did not keep, the
capacities and the room's occupancy, is learnt from the next decisions; 4 adds the
weekday-hour slots of each month, which a month read from an older document lacks)."""
_READABLE_VERSIONS = (1, 2, 3, 4)

Counter = Literal[
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_seconds",
    "visits",
    "checkins_denied",
    "person_seconds",
    "bookings_attended",
]
COUNTERS: tuple[Counter, ...] = (
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_seconds",
    "visits",
    "checkins_denied",
    "person_seconds",
    "bookings_attended",
)
_ZEROS = (0,) * len(COUNTERS)
"""``map(counts.get, COUNTERS, _ZEROS)``: every counter, 0 when absent, in one C loop (the
fold reads them before and after each decision)."""

_Values = tuple[int | datetime | None, ...]
_Kind = tuple[str, int, int]
"""Opening hours of a room as the center sums them: (time zone, opens, closes)."""


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


# --- opening hours and capacity -------------------------------------------------------


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


# --- per-month figures ----------------------------------------------------------------


@dataclass
class MonthUsage:
    """The figures of one month of one room or center."""

    counts: dict[str, int] = field(default_factory=dict)
    """Additive counters (see ``COUNTERS``); ``booked_seconds`` and ``person_seconds`` are
    kept exact in seconds."""
    peak_occupancy: int = 0
    peak_at: datetime | None = None
    """When ``peak_occupancy`` was first reached (local time of the room); ``None`` while 0."""
    members: set[str] | None = field(default_factory=set)
    """Distinct member ids; ``None`` once dropped (then ``unique_members`` is frozen)."""
    unique_members: int = 0
    open_minutes: int | None = None
    """Frozen at close; ``None`` while open (then computed from the opening periods)."""
    capacity_minutes: int | None = None
    """Capacity x open minutes, frozen at close like ``open_minutes``."""
    attendance_counted: bool = True
    """False for a month read from a document written before attendance was counted: its
    ``bookings_attended`` misses the check-ins before then, so it has no no-show rate."""
    final: bool = False
    revision: int = 0
    revised_after_close: bool = False
    slots: dict[str, _Slots] = field(default_factory=dict)
    """Person-seconds per time zone and weekday-hour slot (``weekday * 24 + hour``, local):
    the heatmap. A room has one time zone (two if it moved during the month)."""
    slots_counted: bool = True
    """False for a month read from a document written before slots were kept (version 3
    or older): its heatmap would miss what came before, so it has none."""
    _cells: list[float] | None = field(default=None, init=False, repr=False, compare=False)
    """The heatmap's 168 cells, kept up to date by ``add_slots`` once computed: an
    aggregate copies them instead of dividing and rounding 168 cells each time."""

    def get(self, counter: Counter) -> int:
        return self.counts.get(counter, 0)

    def bump(self, counter: Counter, delta: int) -> None:
        self.counts[counter] = max(0, self.get(counter) + delta)

    def add_member(self, member_id: str) -> None:
        if self.members is None:
            return
        self.members.add(member_id)
        self.unique_members = len(self.members)

    def add_slots(self, month: str, tz: str, slots: _Slots) -> None:
        """Add person-seconds to the slots of ``tz``: O(slots given), at most 168."""
        mine = self.slots.setdefault(tz, {})
        for slot, value in slots.items():
            mine[slot] = mine.get(slot, 0) + value
        if self._cells is not None:
            for slot in slots:
                self._cells[slot] = _cell(self.slots, month, slot)

    def heatmap(self, month: str) -> list[list[float]] | None:
        """7 rows (Monday first) x 24 local hours; ``None`` without ``slots_counted``."""
        if not self.slots_counted:
            return None
        cells = self._cells
        if cells is None:
            cells = self._cells = [0.0] * SLOTS
            for slot in {slot for slots in self.slots.values() for slot in slots}:
                cells[slot] = _cell(self.slots, month, slot)
        return [cells[day * 24 : day * 24 + 24] for day in range(7)]

    def reach(self, occupancy: int, at: datetime) -> None:
        """An occupancy seen at ``at``: a new peak, or the same peak reached earlier."""
        if occupancy > self.peak_occupancy:
            self.peak_occupancy, self.peak_at = occupancy, at
        elif occupancy == self.peak_occupancy > 0 and (self.peak_at is None or at < self.peak_at):
            self.peak_at = at

    def values(self, minutes: tuple[int, int]) -> _Values:
        return (
            *map(self.counts.get, COUNTERS, _ZEROS),
            self.peak_occupancy,
            self.peak_at,
            self.unique_members,
            *minutes,
        )

    def to_json(self) -> dict[str, Any]:
        document = {
            "counts": dict(zip(COUNTERS, map(self.counts.get, COUNTERS, _ZEROS), strict=True)),
            "peak_occupancy": self.peak_occupancy,
            "peak_at": None if self.peak_at is None else self.peak_at.isoformat(),
            "members": None if self.members is None else sorted(self.members),
            "unique_members": self.unique_members,
            "open_minutes": self.open_minutes,
            "capacity_minutes": self.capacity_minutes,
            "final": self.final,
            "revision": self.revision,
            "revised_after_close": self.revised_after_close,
        }
        if not self.attendance_counted:
            document["attendance_counted"] = False
        if self.slots_counted:
            document["slots"] = {
                tz: {str(k): v for k, v in sorted(slots.items()) if v}
                for tz, slots in sorted(self.slots.items())
            }
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonthUsage:
        counts = data.get("counts") or {}
        members = data.get("members")
        open_minutes = data.get("open_minutes")
        capacity_minutes = data.get("capacity_minutes")
        peak_at = data.get("peak_at")
        # Documents before version 3 did not count attendance (nor write this flag).
        attendance_counted = bool(data.get("attendance_counted", "bookings_attended" in counts))
        # Documents before version 4 did not keep the slots: such a month has no heatmap.
        slots = data.get("slots")
        return cls(
            counts={c: int(counts.get(c, 0)) for c in COUNTERS},
            peak_occupancy=int(data.get("peak_occupancy", 0)),
            peak_at=None if peak_at is None else _datetime_from_json(peak_at),
            members=None if members is None else {str(m) for m in members},
            unique_members=int(data.get("unique_members", 0)),
            open_minutes=None if open_minutes is None else int(open_minutes),
            capacity_minutes=None if capacity_minutes is None else int(capacity_minutes),
            attendance_counted=attendance_counted,
            slots={}
            if slots is None
            else {str(tz): {int(k): int(v) for k, v in s.items()} for tz, s in slots.items()},
            slots_counted=slots is not None,
            final=bool(data.get("final", False)),
            revision=int(data.get("revision", 0)),
            revised_after_close=bool(data.get("revised_after_close", False)),
        )


def _aggregate(
    scope: Literal["room", "center"],
    ident: str,
    month: str,
    stats: MonthUsage,
    minutes: tuple[int, int],
    now: datetime,
) -> UsageMonthly:
    open_minutes, capacity_minutes = minutes
    booked_seconds = stats.get("booked_seconds")
    utilization = round(booked_seconds / (open_minutes * 60), 4) if open_minutes > 0 else 0.0
    person_seconds = stats.get("person_seconds")
    occupancy_utilization = (
        round(person_seconds / (capacity_minutes * 60), 4) if capacity_minutes > 0 else 0.0
    )
    no_shows, attended = stats.get("no_shows"), stats.get("bookings_attended")
    reached_start = no_shows + attended if stats.attendance_counted else 0
    # Built without validation: every value is the fold's own, typed as the schema says,
    # and validating the 168 heatmap cells cost more than the fold of a decision
    # (tests/test_usage_equivalence.py validates every aggregate it sees, strictly).
    return UsageMonthly.model_construct(
        scope=scope,
        id=ident,
        month=month,
        bookings_confirmed=stats.get("bookings_confirmed"),
        bookings_rejected=stats.get("bookings_rejected"),
        bookings_cancelled=stats.get("bookings_cancelled"),
        no_shows=no_shows,
        booked_hours=round(booked_seconds / 3600, 4),
        open_hours=round(open_minutes / 60, 4),
        utilization=float(utilization),
        visits=stats.get("visits"),
        checkins_denied=stats.get("checkins_denied"),
        unique_members=stats.unique_members,
        peak_occupancy=stats.peak_occupancy,
        final=stats.final,
        updated_at=now,
        revision=stats.revision,
        revised_after_close=stats.revised_after_close,
        person_hours=round(person_seconds / 3600, 4),
        capacity_hours=round(capacity_minutes / 60, 4),
        occupancy_utilization=float(occupancy_utilization),
        bookings_attended=attended,
        no_show_rate=round(no_shows / reached_start, 4) if reached_start > 0 else None,
        peak_at=stats.peak_at,
        peak_hour=None if stats.peak_at is None else stats.peak_at.hour,
        occupancy_by_weekday_hour=stats.heatmap(month),
    )


def _months_to_json(months: dict[str, MonthUsage]) -> dict[str, Any]:
    return {m: months[m].to_json() for m in sorted(months)}


def _months_from_json(data: dict[str, Any]) -> dict[str, MonthUsage]:
    months: dict[str, MonthUsage] = {}
    for month, value in data.items():
        parse_month(month)
        months[month] = MonthUsage.from_json(value)
    return months


def _month_of(months: dict[str, MonthUsage], month: str) -> MonthUsage:
    """``month``'s record, made when missing (``setdefault`` would build one each call: a
    fold asks about six times per decision)."""
    stats = months.get(month)
    if stats is None:
        stats = months[month] = MonthUsage()
    return stats


def _insort_once(items: list[str], item: str) -> None:
    index = bisect_left(items, item)
    if index == len(items) or items[index] != item:
        items.insert(index, item)


def _remove_sorted(items: list[str], item: str) -> None:
    index = bisect_left(items, item)
    if index < len(items) and items[index] == item:
        del items[index]


def _open_months(months: dict[str, MonthUsage]) -> list[str]:
    return sorted(month for month, stats in months.items() if not stats.final)


def _final_with_members(months: dict[str, MonthUsage]) -> list[str]:
    return sorted(m for m, stats in months.items() if stats.final and stats.members is not None)


def _prune_members(
    months: dict[str, MonthUsage], with_members: list[str], reference_month: str
) -> None:
    """Drop the member sets of final months older than the retention.

    ``with_members``: the final months that still have theirs, sorted (updated here).
    """
    oldest_kept = add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)
    drop = bisect_left(with_members, oldest_kept)
    for month in with_members[:drop]:
        months[month].members = None
    del with_members[:drop]


def _period_cutoff(open_months: list[str], reference_month: str) -> date:
    """First day whose opening hours may still be needed: open months and recent ones.

    ``open_months``: the months not final, sorted.
    """
    return _cutoff_day(open_months[0] if open_months else None, reference_month)


@lru_cache(maxsize=4096)
def _cutoff_day(oldest_open: str | None, reference_month: str) -> date:
    oldest = add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)
    if oldest_open is not None:
        oldest = min(oldest, oldest_open)
    year, mon = parse_month(oldest)
    return date(year, mon, 1)


def _utc_day(ts: datetime) -> int:
    return ts.astimezone(UTC).date().toordinal()


def _datetime_from_json(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value))
    require_aware(ts, "stored time")
    return ts


# --- room state -----------------------------------------------------------------------


@dataclass
class ActiveBooking:
    """A confirmed booking not (yet) cancelled or released, and the hours it added."""

    member_id: str
    starts_at: datetime
    ends_at: datetime
    start_month: str
    seconds: dict[str, int]
    """Booked seconds this booking added to each local month."""
    attended: bool = False
    """A check-in was admitted for it (counted once in ``bookings_attended``)."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "member_id": self.member_id,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "start_month": self.start_month,
            "seconds": dict(sorted(self.seconds.items())),
        }
        if self.attended:
            document["attended"] = True
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActiveBooking:
        return cls(
            member_id=str(data["member_id"]),
            starts_at=_datetime_from_json(data["starts_at"]),
            ends_at=_datetime_from_json(data["ends_at"]),
            start_month=str(data["start_month"]),
            seconds={str(m): int(s) for m, s in data["seconds"].items()},
            attended=bool(data.get("attended", False)),
        )


def _check_document(data: dict[str, Any], scope: str) -> int:
    version = data.get("version")
    if version not in _READABLE_VERSIONS or data.get("scope") != scope:
        raise ValueError(f"not a {scope} usage document of version 1 to 4")
    return int(version)


def _keep_months(months: dict[str, MonthUsage], open_months: list[str], wanted: set[str]) -> None:
    """Every month of ``wanted`` gets a record; ``open_months`` (sorted) follows the new ones."""
    for month in wanted:
        if not _month_of(months, month).final:
            _insort_once(open_months, month)


def _close(state: RoomUsage | CenterUsage, month: str) -> None:
    stats = _month_of(state.months, month)
    if stats.final:
        return
    stats.open_minutes, stats.capacity_minutes = state.minutes(month)
    stats.final = True
    _remove_sorted(state._open, month)
    if stats.members is not None:
        _insort_once(state._with_members, month)


@dataclass
class RoomUsage:
    """Usage state of one room: what :func:`fold` needs to keep its monthly figures."""

    scope: ClassVar[Literal["room"]] = "room"

    room_id: str
    center_id: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    periods: list[OpeningPeriod] = field(default_factory=list)
    """Replaced, never changed in place (the open minutes per month are cached for it)."""
    capacities: list[CapacityPeriod] = field(default_factory=list)
    """Replaced, never changed in place, like ``periods``."""
    active: dict[str, ActiveBooking] = field(default_factory=dict)
    """Bookings confirmed and not (yet) cancelled or released. One that ends more than
    ``ACTIVE_BOOKING_RETENTION`` before ``latest`` counts as forgotten (it is dropped by the
    day it expires, and never written)."""
    ended: dict[str, datetime] = field(default_factory=dict)
    """Bookings cancelled or released (id -> ends_at): a late ``booking.confirmed`` of one
    is counted but adds no hours. Forgotten like ``active``."""
    months: dict[str, MonthUsage] = field(default_factory=dict)
    latest: datetime | None = None
    """The newest ``decided_at`` folded."""
    occupancy: int = 0
    """Persons inside after the last admission or check-out folded."""
    occupied_since: datetime | None = None
    """When ``occupancy`` was reached: the person-seconds since then are not counted yet
    (``None``: unknown, e.g. a state written before they were kept)."""

    _open: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The months of ``months`` not final, sorted."""
    _with_members: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The final months of ``months`` that still have their member set, sorted."""
    _minutes: dict[str, tuple[int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """(open, capacity x open) minutes per month for the rules ``_minutes_of``."""
    _minutes_of: tuple[list[OpeningPeriod], list[CapacityPeriod], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _expiry: dict[int, list[tuple[bool, str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """(in ``active``?, booking id) by the UTC day the interval ends: what may expire when."""
    _expired_before: int | None = field(default=None, init=False, repr=False, compare=False)
    """Day up to which ``_expiry`` was drained (``None``: never)."""

    def __post_init__(self) -> None:
        self._open = _open_months(self.months)
        self._with_members = _final_with_members(self.months)
        for booking_id, booking in self.active.items():
            self._expires(True, booking_id, booking.ends_at)
        for booking_id, ends_at in self.ended.items():
            self._expires(False, booking_id, ends_at)

    def minutes(self, month: str) -> tuple[int, int]:
        """(open, capacity x open) minutes of ``month``: frozen at close; else computed once
        per month and rules."""
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes, stats.capacity_minutes or 0
        cached = self._minutes_of
        if (
            cached is None
            or cached[0] is not self.periods
            or cached[1] is not self.capacities
            or cached[2] != self.timezone
        ):
            self._minutes = {}
            self._minutes_of = (self.periods, self.capacities, self.timezone)
        minutes = self._minutes.get(month)
        if minutes is None:
            minutes = self._minutes[month] = _open_minutes(
                self.periods, self.capacities, self.timezone, month
            )
        return minutes

    def open_minutes(self, month: str) -> int:
        return self.minutes(month)[0]

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        """The current ``usage-monthly`` value of ``month`` (zeros if nothing happened)."""
        stats = self.months.get(month, MonthUsage())
        return _aggregate("room", self.room_id, month, stats, self.minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.minutes(month))

    def _reference_month(self, now: datetime) -> str:
        latest = now if self.latest is None else max(self.latest, now)
        return local_month(latest, self.timezone)

    def _closing_before(self, at: datetime) -> datetime:
        """The closing the clock's check-out at ``at`` stands for: the latest closing at or
        before ``at`` by the hours in force that day (``at`` itself without hours)."""
        zone = ZoneInfo(self.timezone)
        period = _in_force(self.periods, at.astimezone(zone).date())
        if period is None:
            return at
        return opening_hours.latest_closing(at, period.opens, period.closes, zone)

    # bookings: forgotten once they ended ACTIVE_BOOKING_RETENTION before ``latest``

    def _horizon(self) -> datetime | None:
        return None if self.latest is None else self.latest - ACTIVE_BOOKING_RETENTION

    def _active(self, booking_id: str) -> ActiveBooking | None:
        booking = self.active.get(booking_id)
        horizon = self._horizon()
        if booking is None or (horizon is not None and booking.ends_at < horizon):
            return None
        return booking

    def _has_ended(self, booking_id: str) -> bool:
        ends_at = self.ended.get(booking_id)
        horizon = self._horizon()
        return ends_at is not None and (horizon is None or ends_at >= horizon)

    def _start(self, booking_id: str, booking: ActiveBooking) -> None:
        horizon = self._horizon()
        if horizon is not None and booking.ends_at < horizon:  # forgotten at once
            self.active.pop(booking_id, None)
            return
        self.active[booking_id] = booking
        self._expires(True, booking_id, booking.ends_at)

    def _end(self, booking_id: str, ends_at: datetime) -> None:
        self.active.pop(booking_id, None)
        horizon = self._horizon()
        if horizon is not None and ends_at < horizon:  # forgotten at once
            self.ended.pop(booking_id, None)
            return
        self.ended[booking_id] = ends_at
        self._expires(False, booking_id, ends_at)

    def _expires(self, in_active: bool, booking_id: str, ends_at: datetime) -> None:
        self._expiry.setdefault(_utc_day(ends_at), []).append((in_active, booking_id))

    def _drop_expired(self) -> None:
        """Drop the bookings forgotten since the last call: amortised O(1) per booking."""
        horizon = self._horizon()
        if horizon is None:
            return
        day = _utc_day(horizon)  # every interval ending on an earlier UTC day is forgotten
        since = self._expired_before
        if since is not None and day <= since:
            return
        days: Iterable[int]
        if since is None or day - since > len(self._expiry):
            days = [d for d in self._expiry if d < day]
        else:
            days = range(since, day)
        for expiring in days:
            for in_active, booking_id in self._expiry.pop(expiring, []):
                if in_active:
                    booking = self.active.get(booking_id)
                    if booking is not None and booking.ends_at < horizon:
                        del self.active[booking_id]
                else:
                    ends_at = self.ended.get(booking_id)
                    if ends_at is not None and ends_at < horizon:
                        del self.ended[booking_id]
        self._expired_before = day

    # pruning: what a fold in ``reference_month`` no longer needs

    def _prune(self, reference_month: str) -> None:
        """What the state keeps when the newest decision is in ``reference_month``.

        Runs after every decision: O(1) unless something is dropped."""
        _prune_members(self.months, self._with_members, reference_month)
        cutoff = _period_cutoff(self._open, reference_month)
        day = _prunable_day(self.periods, self.capacities)
        if day is not None and day <= cutoff.toordinal():
            self.periods = _prune_periods(self.periods, cutoff)
            self.capacities = _prune_periods(self.capacities, cutoff)

    def to_json(self) -> dict[str, Any]:
        horizon = self._horizon()
        return {
            "version": STATE_VERSION,
            "scope": "room",
            "room_id": self.room_id,
            "center_id": self.center_id,
            "timezone": self.timezone,
            "periods": [p.to_json() for p in self.periods],
            "capacities": [c.to_json() for c in self.capacities],
            "active": {
                k: self.active[k].to_json()
                for k in sorted(self.active)
                if horizon is None or self.active[k].ends_at >= horizon
            },
            "ended": {
                k: self.ended[k].isoformat()
                for k in sorted(self.ended)
                if horizon is None or self.ended[k] >= horizon
            },
            "months": _months_to_json(self.months),
            "latest": None if self.latest is None else self.latest.isoformat(),
            "occupancy": self.occupancy,
            "occupied_since": None
            if self.occupied_since is None
            else self.occupied_since.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomUsage:
        """Read a document of version 3, 2 or 1 (the same layout, 3 adds to it)."""
        _check_document(data, "room")
        center_id = data.get("center_id")
        latest = data.get("latest")
        since = data.get("occupied_since")
        return cls(
            room_id=str(data["room_id"]),
            center_id=None if center_id is None else str(center_id),
            timezone=str(data.get("timezone", DEFAULT_TIMEZONE)),
            periods=[OpeningPeriod.from_json(p) for p in data.get("periods", [])],
            capacities=[CapacityPeriod.from_json(c) for c in data.get("capacities", [])],
            active={str(k): ActiveBooking.from_json(v) for k, v in data.get("active", {}).items()},
            ended={str(k): _datetime_from_json(v) for k, v in data.get("ended", {}).items()},
            months=_months_from_json(data.get("months", {})),
            latest=None if latest is None else _datetime_from_json(latest),
            occupancy=int(data.get("occupancy", 0)),
            occupied_since=None if since is None else _datetime_from_json(since),
        )


# --- center state ---------------------------------------------------------------------


@dataclass
class CenterRoom:
    """What a center keeps of each of its rooms: its local rules and current occupancy."""

    timezone: str = DEFAULT_TIMEZONE
    periods: list[OpeningPeriod] = field(default_factory=list)
    occupancy: int = 0
    capacities: list[CapacityPeriod] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The version-1 form (later versions group the rooms, see :meth:`CenterUsage.to_json`)."""
        return {
            "timezone": self.timezone,
            "periods": [p.to_json() for p in self.periods],
            "occupancy": self.occupancy,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CenterRoom:
        return cls(
            timezone=str(data.get("timezone", DEFAULT_TIMEZONE)),
            periods=[OpeningPeriod.from_json(p) for p in data.get("periods", [])],
            occupancy=int(data.get("occupancy", 0)),
        )


@dataclass
class _KindSums:
    """The center's rooms with one kind of opening hours: how many, and their capacity."""

    rooms: int = 0
    """From the last change on."""
    capacity: int = 0
    """From the last change on."""
    changes: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Date ordinal -> (rooms, capacity) change that day (never (0, 0))."""
    days: list[int] = field(default_factory=list)
    """The keys of ``changes``, sorted."""

    def change(self, day: int, rooms: int, capacity: int) -> None:
        self.rooms += rooms
        self.capacity += capacity
        old = self.changes.get(day, (0, 0))
        new = (old[0] + rooms, old[1] + capacity)
        if new != (0, 0):
            if day not in self.changes:
                insort(self.days, day)
            self.changes[day] = new
        elif day in self.changes:
            del self.changes[day]
            del self.days[bisect_left(self.days, day)]

    def at(self, day: int) -> tuple[int, int]:
        """(rooms, capacity) on date ordinal ``day``: the totals less the later changes."""
        rooms, capacity = self.rooms, self.capacity
        for later in self.days[bisect_right(self.days, day) :]:
            r, c = self.changes[later]
            rooms, capacity = rooms - r, capacity - c
        return rooms, capacity

    def empty(self) -> bool:
        return not self.changes and self.rooms == 0 and self.capacity == 0


@dataclass
class CenterUsage:
    """Usage state of one center: sums over its rooms, a union of their members.

    ``rooms`` is what the center knows of each room; the sums over it that a fold needs
    (occupancy, rooms and capacity per kind of opening hours by date) are kept alongside and
    changed by the one room a decision is about.
    """

    scope: ClassVar[Literal["center"]] = "center"

    center_id: str
    rooms: dict[str, CenterRoom] = field(default_factory=dict)
    """Changed only by :func:`fold` (the sums below follow it)."""
    months: dict[str, MonthUsage] = field(default_factory=dict)
    latest: datetime | None = None

    _open: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The months of ``months`` not final, sorted."""
    _with_members: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The final months of ``months`` that still have their member set, sorted."""
    _occupancy: int = field(default=0, init=False, repr=False, compare=False)
    """Sum of the rooms' current occupancies."""
    _kinds: dict[_Kind, _KindSums] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Per kind of opening hours: the rooms that have them and their capacity, by date."""
    _minutes: dict[str, tuple[int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """(open, capacity x open) minutes per month, until a room's rules change."""
    _prunable: dict[int, set[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Rooms whose hours or capacities have more than one entry, by the date ordinal of the
    earliest second one: pruning at a cutoff on or after that date shortens their lists
    (and no other room's)."""
    _prunable_days: list[int] = field(default_factory=list, init=False, repr=False, compare=False)
    """The keys of ``_prunable``, sorted."""

    def __post_init__(self) -> None:
        self._open = _open_months(self.months)
        self._with_members = _final_with_members(self.months)
        for room_id, room in self.rooms.items():
            self._add_room(room_id, room)

    def minutes(self, month: str) -> tuple[int, int]:
        """Frozen at close; else the sums over the rooms from the changes by date:
        O(kinds of hours + changes after the 1st of ``month``), whatever the rooms."""
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes, stats.capacity_minutes or 0
        cached = self._minutes.get(month)
        if cached is not None:
            return cached
        first, days = _month_days(month)
        minutes = capacity_minutes = 0
        for (tz, opens, closes), sums in self._kinds.items():
            # sum over the days d of the month of (totals - the changes after d)
            room_days, capacity_days = days * sums.rooms, days * sums.capacity
            for day in sums.days[bisect_right(sums.days, first) :]:
                rooms, capacity = sums.changes[day]
                weight = min(days, day - first)
                room_days -= rooms * weight
                capacity_days -= capacity * weight
            wall = _wall_minutes(opens, closes)
            minutes += wall * room_days
            capacity_minutes += wall * capacity_days
            for day, delta in _dst_corrections(tz, opens, closes, month):
                rooms, capacity = sums.at(day)
                minutes += delta * rooms
                capacity_minutes += delta * capacity
        self._minutes[month] = (minutes, capacity_minutes)
        return minutes, capacity_minutes

    def open_minutes(self, month: str) -> int:
        return self.minutes(month)[0]

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        stats = self.months.get(month, MonthUsage())
        return _aggregate("center", self.center_id, month, stats, self.minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.minutes(month))

    def _reference_month(self, now: datetime) -> str:
        latest = now if self.latest is None else max(self.latest, now)
        return local_month(latest, DEFAULT_TIMEZONE)

    # the sums over the rooms

    def _add_room(self, room_id: str, room: CenterRoom) -> None:
        self._occupancy += room.occupancy
        self._count_rules(room, 1)
        self._index(room_id, room, add=True)

    def _set_rules(
        self,
        room_id: str,
        room: CenterRoom,
        *,
        periods: list[OpeningPeriod] | None = None,
        capacities: list[CapacityPeriod] | None = None,
        timezone: str | None = None,
    ) -> None:
        """Change one room's hours, capacities or time zone, and the sums by its difference."""
        self._count_rules(room, -1)
        self._index(room_id, room, add=False)
        if periods is not None:
            room.periods = periods
        if capacities is not None:
            room.capacities = capacities
        if timezone is not None:
            room.timezone = timezone
        self._count_rules(room, 1)
        self._index(room_id, room, add=True)

    def _index(self, room_id: str, room: CenterRoom, *, add: bool) -> None:
        day = _prunable_day(room.periods, room.capacities)
        if day is None:
            return
        rooms = self._prunable.get(day)
        if add:
            if rooms is None:
                rooms = self._prunable[day] = set()
                insort(self._prunable_days, day)
            rooms.add(room_id)
        elif rooms is not None:
            rooms.discard(room_id)
            if not rooms:
                del self._prunable[day]
                del self._prunable_days[bisect_left(self._prunable_days, day)]

    def _count_rules(self, room: CenterRoom, sign: int) -> None:
        changes = _steps(room.timezone, room.periods, room.capacities)
        if changes:
            self._minutes.clear()
        for kind, day, rooms, capacity in changes:
            sums = self._kinds.setdefault(kind, _KindSums())
            sums.change(day, sign * rooms, sign * capacity)
            if sums.empty():
                del self._kinds[kind]

    # pruning

    def _prune(self, reference_month: str) -> None:
        """As for a room, for every room's lists: O(1) unless something is dropped."""
        _prune_members(self.months, self._with_members, reference_month)
        cutoff = _period_cutoff(self._open, reference_month)
        while self._prunable_days and self._prunable_days[0] <= cutoff.toordinal():
            for room_id in sorted(self._prunable[self._prunable_days[0]]):
                room = self.rooms[room_id]
                self._set_rules(
                    room_id,
                    room,
                    periods=_prune_periods(room.periods, cutoff),
                    capacities=_prune_periods(room.capacities, cutoff),
                )

    def to_json(self) -> dict[str, Any]:
        """Rooms with the same time zone, hours and capacities share one entry; only the
        occupancies that are not 0 are written."""
        groups: dict[
            tuple[str, tuple[OpeningPeriod, ...], tuple[CapacityPeriod, ...]], list[str]
        ] = {}
        occupancy: dict[str, int] = {}
        for room_id in sorted(self.rooms):
            room = self.rooms[room_id]
            key = (room.timezone, tuple(room.periods), tuple(room.capacities))
            groups.setdefault(key, []).append(room_id)
            if room.occupancy:
                occupancy[room_id] = room.occupancy
        return {
            "version": STATE_VERSION,
            "scope": "center",
            "center_id": self.center_id,
            "rooms": [
                {
                    "timezone": tz,
                    "periods": [p.to_json() for p in periods],
                    "capacities": [c.to_json() for c in capacities],
                    "ids": ids,
                }
                for (tz, periods, capacities), ids in groups.items()
            ],
            "occupancy": occupancy,
            "months": _months_to_json(self.months),
            "latest": None if self.latest is None else self.latest.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CenterUsage:
        """Read a document of version 3 or 2 (grouped rooms; 2 without capacities), or of
        version 1 (``rooms``: id -> CenterRoom)."""
        version = _check_document(data, "center")
        rooms: dict[str, CenterRoom] = {}
        if version == 1:
            for room_id, value in data.get("rooms", {}).items():
                rooms[str(room_id)] = CenterRoom.from_json(value)
        else:
            occupancy = data.get("occupancy", {})
            for group in data.get("rooms", []):
                timezone = str(group.get("timezone", DEFAULT_TIMEZONE))
                periods = [OpeningPeriod.from_json(p) for p in group.get("periods", [])]
                capacities = [CapacityPeriod.from_json(c) for c in group.get("capacities", [])]
                for room_id in group.get("ids", []):
                    occupied = int(occupancy.get(room_id, 0))
                    rooms[str(room_id)] = CenterRoom(
                        timezone, list(periods), occupied, list(capacities)
                    )
        latest = data.get("latest")
        return cls(
            center_id=str(data["center_id"]),
            rooms=rooms,
            months=_months_from_json(data.get("months", {})),
            latest=None if latest is None else _datetime_from_json(latest),
        )


# --- folding --------------------------------------------------------------------------


@dataclass
class _Config:
    period: OpeningPeriod
    capacity: CapacityPeriod
    timezone: str
    month: str


@dataclass
class _Effects:
    """What one decision changes, worked out before anything is changed."""

    counts: dict[str, dict[Counter, int]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    room_peaks: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    occupancy: tuple[str, int, datetime] | None = None
    """(local month, room occupancy after the decision, local time) for the center's peak."""
    config: _Config | None = None
    capacity: CapacityPeriod | None = None
    """A ``capacity.changed``: the capacity in force from its local day on."""
    seen_capacity: tuple[int, date] | None = None
    """The capacity a door decision carries, and its local day: what a state that knows no
    capacity yet (one written before they were kept) takes, from its first opening on."""
    started: tuple[str, ActiveBooking] | None = None
    ended: tuple[str, datetime] | None = None
    attended: str | None = None
    """A booking of ``active`` a check-in was admitted for, the first time."""
    occupied: tuple[int, datetime] | None = None
    """The room's occupancy after an admission or check-out, and from when."""
    slots: list[tuple[str, str, _Slots]] = field(default_factory=list)
    """(month, time zone, person-seconds per weekday-hour slot) since the last change."""

    def add(self, month: str, counter: Counter, delta: int) -> None:
        if delta:
            per_month = self.counts.setdefault(month, {})
            per_month[counter] = per_month.get(counter, 0) + delta

    def add_seconds(self, seconds: dict[str, int], factor: int, counter: Counter) -> None:
        for month, part in seconds.items():
            self.add(month, counter, factor * part)

    def changes_rules(self) -> bool:
        return self.config is not None or self.capacity is not None

    def months(self) -> set[str]:
        touched = set(self.counts) | set(self.members) | set(self.room_peaks)
        touched.update(month for month, _, _ in self.slots)
        if self.occupancy is not None:
            touched.add(self.occupancy[0])
        if self.config is not None:
            touched.add(self.config.month)
        if self.capacity is not None:
            touched.add(f"{self.capacity.effective.year:04d}-{self.capacity.effective.month:02d}")
        return touched

    def apply_to(self, months: dict[str, MonthUsage], *, room_peaks: bool) -> None:
        for month, deltas in self.counts.items():
            stats = _month_of(months, month)
            for counter, delta in deltas.items():
                stats.bump(counter, delta)
        for month, members in self.members.items():
            stats = _month_of(months, month)
            for member in sorted(members):
                stats.add_member(member)
        if room_peaks:
            for month, (peak, at) in self.room_peaks.items():
                _month_of(months, month).reach(peak, at)
        for month, tz, slots in self.slots:
            _month_of(months, month).add_slots(month, tz, slots)


def _occupancy_effects(
    room: RoomUsage, effects: _Effects, occupancy: int, at: datetime, *, closing: bool
) -> None:
    """The person-seconds since the room's last occupancy change, split by local month.

    The clock's check-out at closing stands for the closing time: the persons it checks out
    stop counting then, not when the tick came. Time never runs backwards: a decision dated
    before the last one adds nothing, and its occupancy counts from the last one's time on.
    """
    since = room.occupied_since
    if since is not None and room.occupancy > 0:
        until = max(since, room._closing_before(at)) if closing else at
        if until > since:
            seconds = _split_by_month(since, until, room.timezone)
            effects.add_seconds(seconds, room.occupancy, "person_seconds")
            for month, slots in _split_by_slot(since, until, room.timezone).items():
                persons = {slot: room.occupancy * part for slot, part in slots.items()}
                effects.slots.append((month, room.timezone, persons))
    effects.occupied = (occupancy, at if since is None else max(since, at))
    local = at.astimezone(ZoneInfo(room.timezone))
    month = f"{local.year:04d}-{local.month:02d}"
    effects.room_peaks[month] = (occupancy, local)
    effects.occupancy = (month, occupancy, local)


def _effects(room: RoomUsage, decision: AnyDecision) -> _Effects:
    effects = _Effects()
    tz = room.timezone
    if isinstance(decision, RoomConfiguredDecision):
        day = decision.decided_at.astimezone(ZoneInfo(decision.timezone)).date()
        period = OpeningPeriod(day, parse_hhmm(decision.opens), parse_hhmm(decision.closes))
        capacity = CapacityPeriod(day, decision.capacity)
        effects.config = _Config(
            period, capacity, decision.timezone, f"{day.year:04d}-{day.month:02d}"
        )
    elif isinstance(decision, CapacityChanged):
        day = decision.decided_at.astimezone(ZoneInfo(tz)).date()
        effects.capacity = CapacityPeriod(day, decision.capacity)
    elif isinstance(decision, BookingConfirmed):
        month = local_month(decision.starts_at, tz)
        previous = room._active(decision.booking_id)
        if previous is not None:  # confirmed again: the new interval replaces the old one
            effects.add(previous.start_month, "bookings_confirmed", -1)
            effects.add_seconds(previous.seconds, -1, "booked_seconds")
            if previous.attended:  # and so does its attendance
                effects.add(previous.start_month, "bookings_attended", -1)
                effects.add(month, "bookings_attended", 1)
        effects.add(month, "bookings_confirmed", 1)
        effects.members.setdefault(month, set()).add(decision.member_id)
        if not room._has_ended(decision.booking_id):
            seconds = _split_by_month(decision.starts_at, decision.ends_at, tz)
            effects.add_seconds(seconds, 1, "booked_seconds")
            effects.started = (
                decision.booking_id,
                ActiveBooking(
                    member_id=decision.member_id,
                    starts_at=decision.starts_at,
                    ends_at=decision.ends_at,
                    start_month=month,
                    seconds=seconds,
                    attended=previous is not None and previous.attended,
                ),
            )
    elif isinstance(decision, BookingRejected):
        # Whatever the reason, a rejection changes no booking: one answering a reused id
        # (``duplicate_booking_id``) or a cancel after the end (``booking_ended``) names a
        # booking that stays as it was, with its count and hours.
        effects.add(local_month(decision.decided_at, tz), "bookings_rejected", 1)
    elif isinstance(decision, BookingCancelled | BookingReleased):
        counter: Counter = (
            "bookings_cancelled" if isinstance(decision, BookingCancelled) else "no_shows"
        )
        active = room._active(decision.booking_id)
        if active is not None:
            effects.add(active.start_month, counter, 1)
            effects.add_seconds(active.seconds, -1, "booked_seconds")
            effects.ended = (decision.booking_id, active.ends_at)
        else:  # never seen confirmed (or already ended): count it, subtract nothing
            effects.add(local_month(decision.starts_at, tz), counter, 1)
            effects.ended = (decision.booking_id, decision.ends_at)
    elif isinstance(decision, CheckinAdmitted):
        month = local_month(decision.decided_at, tz)
        effects.add(month, "visits", decision.party_size)
        if decision.member_id is not None:
            effects.members.setdefault(month, set()).add(decision.member_id)
        if decision.attended_booking_id is not None:
            booking = room._active(decision.attended_booking_id)
            if booking is None:  # not known (confirmed later, or forgotten): count it here
                effects.add(month, "bookings_attended", 1)
            elif not booking.attended:
                effects.add(booking.start_month, "bookings_attended", 1)
                effects.attended = decision.attended_booking_id
        _occupancy_effects(
            room, effects, max(0, decision.occupancy), decision.decided_at, closing=False
        )
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    elif isinstance(decision, CheckinDenied):
        effects.add(local_month(decision.decided_at, tz), "checkins_denied", 1)
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    elif isinstance(decision, CheckoutRecorded):
        _occupancy_effects(
            room,
            effects,
            max(0, decision.occupancy),
            decision.decided_at,
            closing=decision.kiosk_id is None,
        )
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    # Other decisions (sessions, enrollments) do not enter these figures.
    return effects


def _local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def _learnt_capacity(
    effects: _Effects, periods: list[OpeningPeriod], capacities: list[CapacityPeriod]
) -> list[CapacityPeriod] | None:
    """The capacities a state that knows none takes from a door decision, else ``None``."""
    if capacities or effects.seen_capacity is None:
        return None
    capacity, day = effects.seen_capacity
    if capacity <= 0:  # an unknown room's denial carries 0
        return None
    return [CapacityPeriod(periods[0].effective if periods else day, capacity)]


def _changed(
    state: RoomUsage | CenterUsage, before: dict[str, _Values | None]
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    """The months of ``before`` whose values changed; a closed one is revised."""
    changed: list[tuple[RoomUsage | CenterUsage, str]] = []
    for month in sorted(before):
        if state._values(month) == before[month]:
            continue
        stats = state.months[month]
        if stats.final:
            stats.revision += 1
            stats.revised_after_close = True
        changed.append((state, month))
    return changed


def _fold_room(
    room: RoomUsage,
    effects: _Effects,
    learnt: list[CapacityPeriod] | None,
    decision: AnyDecision,
    candidates: set[str],
) -> None:
    """Apply ``effects`` to ``room``; every month in ``candidates`` ends up in its state."""
    if room.latest is None or decision.decided_at > room.latest:
        room.latest = decision.decided_at
    if effects.config is not None:
        room.periods = _with_period(room.periods, effects.config.period)
        room.capacities = _with_capacity(room.capacities, effects.config.capacity)
        room.timezone = effects.config.timezone
    if effects.capacity is not None:
        room.capacities = _with_capacity(room.capacities, effects.capacity)
    if learnt is not None:
        room.capacities = learnt
    if effects.ended is not None:
        room._end(*effects.ended)
    if effects.started is not None:
        room._start(*effects.started)
    if effects.attended is not None:
        room.active[effects.attended].attended = True
    if effects.occupied is not None:
        room.occupancy, room.occupied_since = effects.occupied
    effects.apply_to(room.months, room_peaks=True)
    _keep_months(room.months, room._open, candidates)
    room._drop_expired()
    room._prune(local_month(room.latest, room.timezone))


def fold(
    room: RoomUsage,
    center: CenterUsage | None,
    decision: AnyDecision,
    now: datetime,
) -> list[UsageMonthly]:
    """Apply one decision to the room's (and its center's) state.

    Returns the ``usage-monthly`` aggregates whose value changed, room scope first, each
    with ``updated_at=now``; an aggregate of a closed month that changes gets
    ``revision + 1`` and ``revised_after_close=True`` (``final`` stays true). The caller
    passes each decision ``event_id`` once; anything else out of order is tolerated.

    The work does not grow with the rooms of the center nor with the room's history
    (amortised: what pruning drops, an earlier decision added).
    """
    require_aware(now, "now")
    return [state.aggregate(month, now) for state, month in fold_changes(room, center, decision)]


def fold_changes(
    room: RoomUsage, center: CenterUsage | None, decision: AnyDecision
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    """``fold`` without building the aggregates: (state, month) of each one that changed.

    A consumer folding many decisions builds each changed aggregate once, after the
    last of them (``state.aggregate(month, now)``): building one costs more than the fold.
    """
    if decision.room_id != room.room_id:
        raise ValueError(f"decision for room {decision.room_id!r} folded into {room.room_id!r}")
    center_id = decision.center_id or room.center_id
    if center is not None and center_id is not None and center.center_id != center_id:
        raise ValueError(f"room {room.room_id!r} belongs to center {center_id!r}")
    room.center_id = center_id

    effects = _effects(room, decision)
    seed: CenterRoom | None = None
    if center is not None and room.room_id not in center.rooms:
        seed = CenterRoom(
            timezone=room.timezone, periods=list(room.periods), capacities=list(room.capacities)
        )

    learnt = _learnt_capacity(effects, room.periods, room.capacities)
    candidates = effects.months()
    if effects.changes_rules() or learnt is not None:
        candidates.update(room._open)  # open hours of every open month may change
    before = {m: room._values(m) for m in candidates}
    _fold_room(room, effects, learnt, decision, candidates)
    out = _changed(room, before)

    if center is not None:
        out.extend(_fold_center(center, room.room_id, seed, effects, decision))
    return out


def _fold_center(
    center: CenterUsage,
    room_id: str,
    seed: CenterRoom | None,
    effects: _Effects,
    decision: AnyDecision,
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    candidates = effects.months()
    info = center.rooms.get(room_id)
    learnt = None if info is None else _learnt_capacity(effects, info.periods, info.capacities)
    if effects.changes_rules() or learnt is not None or info is None:
        candidates.update(center._open)  # open hours of every open month may change
    before = {m: center._values(m) for m in candidates}

    if info is None:  # a center document younger than the room: learn the room's rules now
        assert seed is not None
        info = center.rooms[room_id] = seed
        center._add_room(room_id, info)
        learnt = _learnt_capacity(effects, info.periods, info.capacities)
    if effects.config is not None:
        center._set_rules(
            room_id,
            info,
            periods=_with_period(info.periods, effects.config.period),
            capacities=_with_capacity(info.capacities, effects.config.capacity),
            timezone=effects.config.timezone,
        )
    if effects.capacity is not None:
        center._set_rules(
            room_id, info, capacities=_with_capacity(info.capacities, effects.capacity)
        )
    if learnt is not None:
        center._set_rules(room_id, info, capacities=learnt)
    effects.apply_to(center.months, room_peaks=False)
    if effects.occupancy is not None:
        month, occupancy, at = effects.occupancy
        center._occupancy += occupancy - info.occupancy
        info.occupancy = occupancy
        _month_of(center.months, month).reach(center._occupancy, at)
    _keep_months(center.months, center._open, candidates)
    if center.latest is None or decision.decided_at > center.latest:
        center.latest = decision.decided_at
    center._prune(local_month(center.latest, info.timezone))
    return _changed(center, before)


def close_month(state: RoomUsage | CenterUsage, month: str, now: datetime) -> list[UsageMonthly]:
    """Mark ``month`` final and return its final aggregate.

    Freezes the month's open hours and capacity hours. Closing a month that nothing happened
    in still yields an aggregate (zeros, and the open hours). Closing an already final month
    changes nothing and returns the aggregate again.
    """
    parse_month(month)
    require_aware(now, "now")
    _close(state, month)
    state._prune(state._reference_month(now))
    return [state.aggregate(month, now)]
