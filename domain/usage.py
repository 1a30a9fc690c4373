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
open minutes per month; a center keeps the sum of its rooms' daily open minutes as changes by
local date (a room whose hours change adjusts it by its own difference) and the sum of their
occupancies; bookings are forgotten by the UTC day their interval ends; member sets and
opening periods are pruned from sorted indexes, so a decision that drops nothing looks at
nothing.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from schemas.common import parse_hhmm
from schemas.decisions import (
    AnyDecision,
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingReleased,
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

DEFAULT_TIMEZONE = "Asia/Seoul"
ACTIVE_BOOKING_RETENTION = timedelta(days=62)
"""Active (and ended) booking intervals ending longer ago than this before the newest
decision are dropped from the state; a later cancel/release of one is still counted but
subtracts no hours."""
MEMBER_SET_RETENTION_MONTHS = 2
"""Member-id sets of final months more than this many months before the newest decision's
month are dropped; ``unique_members`` of those months is frozen from then on."""
STATE_VERSION = 2
"""Version of the documents :meth:`RoomUsage.to_json` and :meth:`CenterUsage.to_json` write.
Version 1 documents are still read (``from_json`` converts them)."""
_READABLE_VERSIONS = (1, 2)

Counter = Literal[
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_seconds",
    "visits",
    "checkins_denied",
]
COUNTERS: tuple[Counter, ...] = (
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_seconds",
    "visits",
    "checkins_denied",
)

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_Values = tuple[int, ...]


# --- months ---------------------------------------------------------------------------


def _require_aware(ts: datetime, what: str) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {ts!r}")


def _parse_month(month: str) -> tuple[int, int]:
    match = _MONTH.match(month)
    if match is None:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return int(match.group(1)), int(match.group(2))


def _add_months(month: str, n: int) -> str:
    year, mon = _parse_month(month)
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_start(month: str, tz: str) -> datetime:
    """First instant of ``month`` in ``tz`` (local midnight of the 1st), in UTC."""
    year, mon = _parse_month(month)
    return datetime(year, mon, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_month(ts: datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    """The local month (``YYYY-MM``) of the instant ``ts`` in time zone ``tz``.

    ``local_month(2026-11-30T23:30Z, "Asia/Seoul") == "2026-12"``.
    """
    _require_aware(ts, "ts")
    local = ts.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


def previous_month(now: datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    """The local month before the one ``now`` falls in: the month to close."""
    return _add_months(local_month(now, tz), -1)


def _split_by_month(starts_at: datetime, ends_at: datetime, tz: str) -> dict[str, int]:
    """Seconds of ``[starts_at, ends_at)`` falling in each local month of ``tz``."""
    start = starts_at.astimezone(UTC)
    end = ends_at.astimezone(UTC)
    seconds: dict[str, int] = {}
    current = start
    while current < end:
        month = local_month(current, tz)
        segment_end = min(end, _month_start(_add_months(month, 1), tz))
        part = round((segment_end - current).total_seconds())
        if part > 0:
            seconds[month] = seconds.get(month, 0) + part
        current = segment_end
    return seconds


# --- opening hours --------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningPeriod:
    """Opening hours in force from the local date ``effective`` on (minutes since midnight)."""

    effective: date
    opens: int
    closes: int

    @property
    def daily_minutes(self) -> int:
        return max(0, self.closes - self.opens)

    def to_json(self) -> list[Any]:
        return [self.effective.isoformat(), self.opens, self.closes]

    @classmethod
    def from_json(cls, data: list[Any]) -> OpeningPeriod:
        effective, opens, closes = data
        return cls(date.fromisoformat(str(effective)), int(opens), int(closes))


def _with_period(periods: list[OpeningPeriod], new: OpeningPeriod) -> list[OpeningPeriod]:
    """``periods`` with ``new`` in force from its date (same date: replaced), normalised."""
    by_date = {p.effective: p for p in periods}
    by_date[new.effective] = new
    normalised: list[OpeningPeriod] = []
    for period in sorted(by_date.values(), key=lambda p: p.effective):
        previous = normalised[-1] if normalised else None
        if previous is not None and (previous.opens, previous.closes) == (
            period.opens,
            period.closes,
        ):
            continue  # same hours as before: no change in force
        normalised.append(period)
    return normalised


def _month_days(month: str) -> tuple[int, int]:
    """(ordinal of the 1st, number of days) of ``month``."""
    year, mon = _parse_month(month)
    return date(year, mon, 1).toordinal(), calendar.monthrange(year, mon)[1]


def _open_minutes(periods: list[OpeningPeriod], month: str) -> int:
    """Sum over the local days of ``month`` of (closes - opens) of the hours in force.

    ``periods`` is sorted by effective date; each is in force until the next one. O(periods).
    """
    first, days = _month_days(month)
    end = first + days
    total = 0
    for index, period in enumerate(periods):
        start = max(first, period.effective.toordinal())
        stop = (
            end if index + 1 == len(periods) else min(end, periods[index + 1].effective.toordinal())
        )
        if stop > start:
            total += (stop - start) * period.daily_minutes
    return total


def _steps(periods: Iterable[OpeningPeriod]) -> list[tuple[int, int]]:
    """``periods`` as changes of daily open minutes: (date ordinal, delta), no zero deltas."""
    changes: list[tuple[int, int]] = []
    previous = 0
    for period in periods:
        delta = period.daily_minutes - previous
        previous = period.daily_minutes
        if delta:
            changes.append((period.effective.toordinal(), delta))
    return changes


def _prune_periods(periods: list[OpeningPeriod], cutoff: date) -> list[OpeningPeriod]:
    """Keep what decides the hours of every day from ``cutoff`` on."""
    keep_from = 0
    for index, period in enumerate(periods):
        if period.effective <= cutoff:
            keep_from = index
    return periods[keep_from:]


# --- per-month figures ----------------------------------------------------------------


@dataclass
class MonthUsage:
    """The figures of one month of one room or center."""

    counts: dict[str, int] = field(default_factory=dict)
    """Additive counters (see ``COUNTERS``); ``booked_seconds`` is kept exact in seconds."""
    peak_occupancy: int = 0
    members: set[str] | None = field(default_factory=set)
    """Distinct member ids; ``None`` once dropped (then ``unique_members`` is frozen)."""
    unique_members: int = 0
    open_minutes: int | None = None
    """Frozen at close; ``None`` while open (then computed from the opening periods)."""
    final: bool = False
    revision: int = 0
    revised_after_close: bool = False

    def get(self, counter: Counter) -> int:
        return self.counts.get(counter, 0)

    def bump(self, counter: Counter, delta: int) -> None:
        self.counts[counter] = max(0, self.get(counter) + delta)

    def add_member(self, member_id: str) -> None:
        if self.members is None:
            return
        self.members.add(member_id)
        self.unique_members = len(self.members)

    def values(self, open_minutes: int) -> _Values:
        return (
            *(self.get(c) for c in COUNTERS),
            self.peak_occupancy,
            self.unique_members,
            open_minutes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {c: self.get(c) for c in COUNTERS},
            "peak_occupancy": self.peak_occupancy,
            "members": None if self.members is None else sorted(self.members),
            "unique_members": self.unique_members,
            "open_minutes": self.open_minutes,
            "final": self.final,
            "revision": self.revision,
            "revised_after_close": self.revised_after_close,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonthUsage:
        counts = data.get("counts") or {}
        members = data.get("members")
        open_minutes = data.get("open_minutes")
        return cls(
            counts={c: int(counts.get(c, 0)) for c in COUNTERS},
            peak_occupancy=int(data.get("peak_occupancy", 0)),
            members=None if members is None else {str(m) for m in members},
            unique_members=int(data.get("unique_members", 0)),
            open_minutes=None if open_minutes is None else int(open_minutes),
            final=bool(data.get("final", False)),
            revision=int(data.get("revision", 0)),
            revised_after_close=bool(data.get("revised_after_close", False)),
        )


def _aggregate(
    scope: Literal["room", "center"],
    ident: str,
    month: str,
    stats: MonthUsage,
    open_minutes: int,
    now: datetime,
) -> UsageMonthly:
    booked_seconds = stats.get("booked_seconds")
    utilization = round(booked_seconds / (open_minutes * 60), 4) if open_minutes > 0 else 0.0
    return UsageMonthly(
        scope=scope,
        id=ident,
        month=month,
        bookings_confirmed=stats.get("bookings_confirmed"),
        bookings_rejected=stats.get("bookings_rejected"),
        bookings_cancelled=stats.get("bookings_cancelled"),
        no_shows=stats.get("no_shows"),
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
    )


def _months_to_json(months: dict[str, MonthUsage]) -> dict[str, Any]:
    return {m: months[m].to_json() for m in sorted(months)}


def _months_from_json(data: dict[str, Any]) -> dict[str, MonthUsage]:
    months: dict[str, MonthUsage] = {}
    for month, value in data.items():
        _parse_month(month)
        months[month] = MonthUsage.from_json(value)
    return months


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
    oldest_kept = _add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)
    drop = bisect_left(with_members, oldest_kept)
    for month in with_members[:drop]:
        months[month].members = None
    del with_members[:drop]


def _period_cutoff(open_months: list[str], reference_month: str) -> date:
    """First day whose opening hours may still be needed: open months and recent ones.

    ``open_months``: the months not final, sorted.
    """
    oldest = _add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)
    if open_months:
        oldest = min(oldest, open_months[0])
    year, mon = _parse_month(oldest)
    return date(year, mon, 1)


def _utc_day(ts: datetime) -> int:
    return ts.astimezone(UTC).date().toordinal()


def _datetime_from_json(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value))
    _require_aware(ts, "stored time")
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

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "start_month": self.start_month,
            "seconds": dict(sorted(self.seconds.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActiveBooking:
        return cls(
            member_id=str(data["member_id"]),
            starts_at=_datetime_from_json(data["starts_at"]),
            ends_at=_datetime_from_json(data["ends_at"]),
            start_month=str(data["start_month"]),
            seconds={str(m): int(s) for m, s in data["seconds"].items()},
        )


def _check_document(data: dict[str, Any], scope: str) -> int:
    version = data.get("version")
    if version not in _READABLE_VERSIONS or data.get("scope") != scope:
        raise ValueError(f"not a {scope} usage document of version 1 or 2")
    return int(version)


def _keep_months(months: dict[str, MonthUsage], open_months: list[str], wanted: set[str]) -> None:
    """Every month of ``wanted`` gets a record; ``open_months`` (sorted) follows the new ones."""
    for month in wanted:
        if not months.setdefault(month, MonthUsage()).final:
            _insort_once(open_months, month)


def _close(state: RoomUsage | CenterUsage, month: str) -> None:
    stats = state.months.setdefault(month, MonthUsage())
    if stats.final:
        return
    stats.open_minutes = state.open_minutes(month)
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

    _open: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The months of ``months`` not final, sorted."""
    _with_members: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """The final months of ``months`` that still have their member set, sorted."""
    _minutes: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Open minutes per month for the periods ``_minutes_of``."""
    _minutes_of: list[OpeningPeriod] | None = field(
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

    def open_minutes(self, month: str) -> int:
        """Frozen at close; else computed once per month and periods."""
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes
        if self._minutes_of is not self.periods:
            self._minutes = {}
            self._minutes_of = self.periods
        minutes = self._minutes.get(month)
        if minutes is None:
            minutes = self._minutes[month] = _open_minutes(self.periods, month)
        return minutes

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        """The current ``usage-monthly`` value of ``month`` (zeros if nothing happened)."""
        stats = self.months.get(month, MonthUsage())
        return _aggregate("room", self.room_id, month, stats, self.open_minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.open_minutes(month))

    def _reference_month(self, now: datetime) -> str:
        latest = now if self.latest is None else max(self.latest, now)
        return local_month(latest, self.timezone)

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
        if len(self.periods) > 1 and self.periods[1].effective <= cutoff:
            self.periods = _prune_periods(self.periods, cutoff)

    def to_json(self) -> dict[str, Any]:
        horizon = self._horizon()
        return {
            "version": STATE_VERSION,
            "scope": "room",
            "room_id": self.room_id,
            "center_id": self.center_id,
            "timezone": self.timezone,
            "periods": [p.to_json() for p in self.periods],
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
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomUsage:
        """Read a document of version 2 or 1 (same layout)."""
        _check_document(data, "room")
        center_id = data.get("center_id")
        latest = data.get("latest")
        return cls(
            room_id=str(data["room_id"]),
            center_id=None if center_id is None else str(center_id),
            timezone=str(data.get("timezone", DEFAULT_TIMEZONE)),
            periods=[OpeningPeriod.from_json(p) for p in data.get("periods", [])],
            active={str(k): ActiveBooking.from_json(v) for k, v in data.get("active", {}).items()},
            ended={str(k): _datetime_from_json(v) for k, v in data.get("ended", {}).items()},
            months=_months_from_json(data.get("months", {})),
            latest=None if latest is None else _datetime_from_json(latest),
        )


# --- center state ---------------------------------------------------------------------


@dataclass
class CenterRoom:
    """What a center keeps of each of its rooms: its local rules and current occupancy."""

    timezone: str = DEFAULT_TIMEZONE
    periods: list[OpeningPeriod] = field(default_factory=list)
    occupancy: int = 0

    def to_json(self) -> dict[str, Any]:
        """The version-1 form (version 2 groups the rooms, see :meth:`CenterUsage.to_json`)."""
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
class CenterUsage:
    """Usage state of one center: sums over its rooms, a union of their members.

    ``rooms`` is what the center knows of each room; the sums over it that a fold needs
    (occupancy, daily open minutes by date) are kept alongside and changed by the one room
    a decision is about.
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
    _daily: int = field(default=0, init=False, repr=False, compare=False)
    """Sum of the rooms' daily open minutes from the last change on."""
    _changes: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Date ordinal -> change of the summed daily open minutes that day (never 0)."""
    _change_days: list[int] = field(default_factory=list, init=False, repr=False, compare=False)
    """The keys of ``_changes``, sorted."""
    _prunable: dict[int, set[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Rooms with more than one period by the date ordinal of their second one: pruning at a
    cutoff on or after that date shortens their periods (and no other room's)."""
    _prunable_days: list[int] = field(default_factory=list, init=False, repr=False, compare=False)
    """The keys of ``_prunable``, sorted."""

    def __post_init__(self) -> None:
        self._open = _open_months(self.months)
        self._with_members = _final_with_members(self.months)
        for room_id, room in self.rooms.items():
            self._add_room(room_id, room)

    def open_minutes(self, month: str) -> int:
        """Frozen at close; else the sum of the rooms' open minutes of ``month``, from the
        changes by date: O(changes after the 1st of ``month``), whatever the rooms."""
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes
        # sum over the days d of the month of (_daily - the changes after d)
        first, days = _month_days(month)
        total = days * self._daily
        change_days = self._change_days
        for index in range(bisect_right(change_days, first), len(change_days)):
            day = change_days[index]
            total -= self._changes[day] * min(days, day - first)
        return total

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        stats = self.months.get(month, MonthUsage())
        return _aggregate("center", self.center_id, month, stats, self.open_minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.open_minutes(month))

    def _reference_month(self, now: datetime) -> str:
        latest = now if self.latest is None else max(self.latest, now)
        return local_month(latest, DEFAULT_TIMEZONE)

    # the sums over the rooms

    def _add_room(self, room_id: str, room: CenterRoom) -> None:
        self._occupancy += room.occupancy
        self._count_periods(room.periods, 1)
        self._index(room_id, room.periods, add=True)

    def _set_periods(self, room_id: str, room: CenterRoom, periods: list[OpeningPeriod]) -> None:
        self._count_periods(room.periods, -1)
        self._index(room_id, room.periods, add=False)
        room.periods = periods
        self._count_periods(periods, 1)
        self._index(room_id, periods, add=True)

    def _index(self, room_id: str, periods: list[OpeningPeriod], *, add: bool) -> None:
        if len(periods) < 2:
            return
        day = periods[1].effective.toordinal()
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

    def _count_periods(self, periods: list[OpeningPeriod], sign: int) -> None:
        for day, delta in _steps(periods):
            self._daily += sign * delta
            value = self._changes.get(day, 0) + sign * delta
            if value:
                if day not in self._changes:
                    insort(self._change_days, day)
                self._changes[day] = value
            else:
                del self._changes[day]
                del self._change_days[bisect_left(self._change_days, day)]

    # pruning

    def _prune(self, reference_month: str) -> None:
        """As for a room, for every room's periods: O(1) unless something is dropped."""
        _prune_members(self.months, self._with_members, reference_month)
        cutoff = _period_cutoff(self._open, reference_month)
        while self._prunable_days and self._prunable_days[0] <= cutoff.toordinal():
            for room_id in sorted(self._prunable[self._prunable_days[0]]):
                room = self.rooms[room_id]
                self._set_periods(room_id, room, _prune_periods(room.periods, cutoff))

    def to_json(self) -> dict[str, Any]:
        """Version 2: rooms with the same time zone and periods share one entry; only the
        occupancies that are not 0 are written."""
        groups: dict[tuple[str, tuple[OpeningPeriod, ...]], list[str]] = {}
        occupancy: dict[str, int] = {}
        for room_id in sorted(self.rooms):
            room = self.rooms[room_id]
            groups.setdefault((room.timezone, tuple(room.periods)), []).append(room_id)
            if room.occupancy:
                occupancy[room_id] = room.occupancy
        return {
            "version": STATE_VERSION,
            "scope": "center",
            "center_id": self.center_id,
            "rooms": [
                {"timezone": tz, "periods": [p.to_json() for p in periods], "ids": ids}
                for (tz, periods), ids in groups.items()
            ],
            "occupancy": occupancy,
            "months": _months_to_json(self.months),
            "latest": None if self.latest is None else self.latest.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CenterUsage:
        """Read a document of version 2, or of version 1 (``rooms``: id -> CenterRoom)."""
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
                for room_id in group.get("ids", []):
                    occupied = int(occupancy.get(room_id, 0))
                    rooms[str(room_id)] = CenterRoom(timezone, list(periods), occupied)
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
    timezone: str
    month: str


@dataclass
class _Effects:
    """What one decision changes, worked out before anything is changed."""

    counts: dict[str, dict[Counter, int]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    room_peaks: dict[str, int] = field(default_factory=dict)
    occupancy: tuple[str, int] | None = None
    """(local month, room occupancy after the decision) for the center's peak."""
    config: _Config | None = None
    started: tuple[str, ActiveBooking] | None = None
    ended: tuple[str, datetime] | None = None

    def add(self, month: str, counter: Counter, delta: int) -> None:
        if delta:
            per_month = self.counts.setdefault(month, {})
            per_month[counter] = per_month.get(counter, 0) + delta

    def add_seconds(self, seconds: dict[str, int], sign: int) -> None:
        for month, part in seconds.items():
            self.add(month, "booked_seconds", sign * part)

    def months(self) -> set[str]:
        touched = set(self.counts) | set(self.members) | set(self.room_peaks)
        if self.occupancy is not None:
            touched.add(self.occupancy[0])
        if self.config is not None:
            touched.add(self.config.month)
        return touched

    def apply_to(self, months: dict[str, MonthUsage], *, room_peaks: bool) -> None:
        for month, deltas in self.counts.items():
            stats = months.setdefault(month, MonthUsage())
            for counter, delta in deltas.items():
                stats.bump(counter, delta)
        for month, members in self.members.items():
            stats = months.setdefault(month, MonthUsage())
            for member in sorted(members):
                stats.add_member(member)
        if room_peaks:
            for month, peak in self.room_peaks.items():
                stats = months.setdefault(month, MonthUsage())
                stats.peak_occupancy = max(stats.peak_occupancy, peak)


def _effects(room: RoomUsage, decision: AnyDecision) -> _Effects:
    effects = _Effects()
    tz = room.timezone
    if isinstance(decision, RoomConfiguredDecision):
        day = decision.decided_at.astimezone(ZoneInfo(decision.timezone)).date()
        period = OpeningPeriod(day, parse_hhmm(decision.opens), parse_hhmm(decision.closes))
        effects.config = _Config(period, decision.timezone, f"{day.year:04d}-{day.month:02d}")
    elif isinstance(decision, BookingConfirmed):
        month = local_month(decision.starts_at, tz)
        previous = room._active(decision.booking_id)
        if previous is not None:  # confirmed again: the new interval replaces the old one
            effects.add(previous.start_month, "bookings_confirmed", -1)
            effects.add_seconds(previous.seconds, -1)
        effects.add(month, "bookings_confirmed", 1)
        effects.members.setdefault(month, set()).add(decision.member_id)
        if not room._has_ended(decision.booking_id):
            seconds = _split_by_month(decision.starts_at, decision.ends_at, tz)
            effects.add_seconds(seconds, 1)
            effects.started = (
                decision.booking_id,
                ActiveBooking(
                    member_id=decision.member_id,
                    starts_at=decision.starts_at,
                    ends_at=decision.ends_at,
                    start_month=month,
                    seconds=seconds,
                ),
            )
    elif isinstance(decision, BookingRejected):
        effects.add(local_month(decision.decided_at, tz), "bookings_rejected", 1)
    elif isinstance(decision, BookingCancelled | BookingReleased):
        counter: Counter = (
            "bookings_cancelled" if isinstance(decision, BookingCancelled) else "no_shows"
        )
        active = room._active(decision.booking_id)
        if active is not None:
            effects.add(active.start_month, counter, 1)
            effects.add_seconds(active.seconds, -1)
            effects.ended = (decision.booking_id, active.ends_at)
        else:  # never seen confirmed (or already ended): count it, subtract nothing
            effects.add(local_month(decision.starts_at, tz), counter, 1)
            effects.ended = (decision.booking_id, decision.ends_at)
    elif isinstance(decision, CheckinAdmitted):
        month = local_month(decision.decided_at, tz)
        effects.add(month, "visits", decision.party_size)
        if decision.member_id is not None:
            effects.members.setdefault(month, set()).add(decision.member_id)
        occupancy = max(0, decision.occupancy)
        effects.room_peaks[month] = occupancy
        effects.occupancy = (month, occupancy)
    elif isinstance(decision, CheckinDenied):
        effects.add(local_month(decision.decided_at, tz), "checkins_denied", 1)
    elif isinstance(decision, CheckoutRecorded):
        month = local_month(decision.decided_at, tz)
        occupancy = max(0, decision.occupancy)
        effects.room_peaks[month] = occupancy
        effects.occupancy = (month, occupancy)
    # Other decisions (capacity, sessions, enrollments) do not enter these figures.
    return effects


def _emit(
    months: dict[str, MonthUsage],
    before: dict[str, _Values | None],
    values: Callable[[str], _Values | None],
    aggregate: Callable[[str, datetime], UsageMonthly],
    now: datetime,
) -> list[UsageMonthly]:
    changed: list[UsageMonthly] = []
    for month in sorted(before):
        if values(month) == before[month]:
            continue
        stats = months[month]
        if stats.final:
            stats.revision += 1
            stats.revised_after_close = True
        changed.append(aggregate(month, now))
    return changed


def _fold_room(
    room: RoomUsage, effects: _Effects, decision: AnyDecision, candidates: set[str]
) -> None:
    """Apply ``effects`` to ``room``; every month in ``candidates`` ends up in its state."""
    if room.latest is None or decision.decided_at > room.latest:
        room.latest = decision.decided_at
    if effects.config is not None:
        room.periods = _with_period(room.periods, effects.config.period)
        room.timezone = effects.config.timezone
    if effects.ended is not None:
        room._end(*effects.ended)
    if effects.started is not None:
        room._start(*effects.started)
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
    _require_aware(now, "now")
    if decision.room_id != room.room_id:
        raise ValueError(f"decision for room {decision.room_id!r} folded into {room.room_id!r}")
    center_id = decision.center_id or room.center_id
    if center is not None and center_id is not None and center.center_id != center_id:
        raise ValueError(f"room {room.room_id!r} belongs to center {center_id!r}")
    room.center_id = center_id

    effects = _effects(room, decision)
    seed: CenterRoom | None = None
    if center is not None and room.room_id not in center.rooms:
        seed = CenterRoom(timezone=room.timezone, periods=list(room.periods))

    candidates = effects.months()
    if effects.config is not None:
        candidates.update(room._open)  # open hours of every open month may change
    before = {m: room._values(m) for m in candidates}
    _fold_room(room, effects, decision, candidates)
    out = _emit(room.months, before, room._values, room.aggregate, now)

    if center is not None:
        out.extend(_fold_center(center, room.room_id, seed, effects, decision, now))
    return out


def _fold_center(
    center: CenterUsage,
    room_id: str,
    seed: CenterRoom | None,
    effects: _Effects,
    decision: AnyDecision,
    now: datetime,
) -> list[UsageMonthly]:
    candidates = effects.months()
    info = center.rooms.get(room_id)
    if effects.config is not None or info is None:
        candidates.update(center._open)  # open hours of every open month may change
    before = {m: center._values(m) for m in candidates}

    if info is None:  # a center document younger than the room: learn the room's rules now
        assert seed is not None
        info = center.rooms[room_id] = seed
        center._add_room(room_id, info)
    if effects.config is not None:
        center._set_periods(room_id, info, _with_period(info.periods, effects.config.period))
        info.timezone = effects.config.timezone
    effects.apply_to(center.months, room_peaks=False)
    if effects.occupancy is not None:
        month, occupancy = effects.occupancy
        center._occupancy += occupancy - info.occupancy
        info.occupancy = occupancy
        stats = center.months.setdefault(month, MonthUsage())
        stats.peak_occupancy = max(stats.peak_occupancy, center._occupancy)
    _keep_months(center.months, center._open, candidates)
    if center.latest is None or decision.decided_at > center.latest:
        center.latest = decision.decided_at
    center._prune(local_month(center.latest, info.timezone))
    return _emit(center.months, before, center._values, center.aggregate, now)


def close_month(state: RoomUsage | CenterUsage, month: str, now: datetime) -> list[UsageMonthly]:
    """Mark ``month`` final and return its final aggregate.

    Freezes the month's open hours. Closing a month that nothing happened in still yields
    an aggregate (zeros, and the open hours). Closing an already final month changes
    nothing and returns the aggregate again.
    """
    _parse_month(month)
    _require_aware(now, "now")
    _close(state, month)
    state._prune(state._reference_month(now))
    return [state.aggregate(month, now)]
