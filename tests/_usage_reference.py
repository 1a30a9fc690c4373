# Frozen copy of domain/usage.py as of commit 25ee9e4 (before the fold became O(1) per
# decision): the plain reference tests/test_usage_equivalence.py compares the fold with.
"""Monthly usage statistics folded from the ``decisions`` log.

Pure Python: no Kafka, no SQL, no I/O. An adapter loads a :class:`RoomUsage` (one per room)
and a :class:`CenterUsage` (one per center) from JSON documents, calls :func:`fold` for each
decision of a batch (never twice for the same ``event_id``), publishes the returned
:class:`~schemas.outputs.UsageMonthly` messages on ``usage-monthly`` and saves the states.
At the start of a month it calls :func:`close_month` with :func:`previous_month`.

Months are the room's *local* months (the ``timezone`` of its ``room.configured`` decision,
``Asia/Seoul`` until one is seen). The definitions of every figure are in
``docs/usage-statistics.md``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
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
STATE_VERSION = 1

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


def _open_minutes(periods: list[OpeningPeriod], month: str) -> int:
    """Sum over the local days of ``month`` of (closes - opens) of the hours in force."""
    year, mon = _parse_month(month)
    first = date(year, mon, 1)
    total = 0
    for offset in range(calendar.monthrange(year, mon)[1]):
        day = first + timedelta(days=offset)
        in_force: OpeningPeriod | None = None
        for period in periods:  # sorted by effective date
            if period.effective > day:
                break
            in_force = period
        if in_force is not None:
            total += in_force.daily_minutes
    return total


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


def _prune_members(months: dict[str, MonthUsage], reference_month: str) -> None:
    oldest_kept = _add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)
    for month, stats in months.items():
        if stats.final and month < oldest_kept:
            stats.members = None


def _period_cutoff(months: dict[str, MonthUsage], reference_month: str) -> date:
    """First day whose opening hours may still be needed: open months and recent ones."""
    candidates = [_add_months(reference_month, -MEMBER_SET_RETENTION_MONTHS)]
    candidates.extend(m for m, s in months.items() if not s.final)
    year, mon = _parse_month(min(candidates))
    return date(year, mon, 1)


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


@dataclass
class RoomUsage:
    """Usage state of one room: what :func:`fold` needs to keep its monthly figures."""

    scope: ClassVar[Literal["room"]] = "room"

    room_id: str
    center_id: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    periods: list[OpeningPeriod] = field(default_factory=list)
    active: dict[str, ActiveBooking] = field(default_factory=dict)
    ended: dict[str, datetime] = field(default_factory=dict)
    """Bookings cancelled or released (id -> ends_at): a late ``booking.confirmed`` of one
    is counted but adds no hours."""
    months: dict[str, MonthUsage] = field(default_factory=dict)
    latest: datetime | None = None
    """The newest ``decided_at`` folded."""

    def open_minutes(self, month: str) -> int:
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes
        return _open_minutes(self.periods, month)

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        """The current ``usage-monthly`` value of ``month`` (zeros if nothing happened)."""
        stats = self.months.get(month, MonthUsage())
        return _aggregate("room", self.room_id, month, stats, self.open_minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.open_minutes(month))

    def _reference_month(self, now: datetime | None = None) -> str | None:
        times = [t for t in (self.latest, now) if t is not None]
        return local_month(max(times), self.timezone) if times else None

    def _prune(self, reference_month: str | None) -> None:
        if self.latest is not None:
            horizon = self.latest - ACTIVE_BOOKING_RETENTION
            self.active = {k: b for k, b in self.active.items() if b.ends_at >= horizon}
            self.ended = {k: end for k, end in self.ended.items() if end >= horizon}
        if reference_month is not None:
            _prune_members(self.months, reference_month)
            self.periods = _prune_periods(
                self.periods, _period_cutoff(self.months, reference_month)
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "scope": "room",
            "room_id": self.room_id,
            "center_id": self.center_id,
            "timezone": self.timezone,
            "periods": [p.to_json() for p in self.periods],
            "active": {k: self.active[k].to_json() for k in sorted(self.active)},
            "ended": {k: self.ended[k].isoformat() for k in sorted(self.ended)},
            "months": _months_to_json(self.months),
            "latest": None if self.latest is None else self.latest.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomUsage:
        if data.get("version") != STATE_VERSION or data.get("scope") != "room":
            raise ValueError("not a version-1 room usage document")
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
    """Usage state of one center: sums over its rooms, a union of their members."""

    scope: ClassVar[Literal["center"]] = "center"

    center_id: str
    rooms: dict[str, CenterRoom] = field(default_factory=dict)
    months: dict[str, MonthUsage] = field(default_factory=dict)
    latest: datetime | None = None

    def open_minutes(self, month: str) -> int:
        stats = self.months.get(month)
        if stats is not None and stats.open_minutes is not None:
            return stats.open_minutes
        return sum(_open_minutes(room.periods, month) for room in self.rooms.values())

    def aggregate(self, month: str, now: datetime) -> UsageMonthly:
        stats = self.months.get(month, MonthUsage())
        return _aggregate("center", self.center_id, month, stats, self.open_minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.open_minutes(month))

    def _reference_month(self, now: datetime | None = None) -> str | None:
        times = [t for t in (self.latest, now) if t is not None]
        return local_month(max(times), DEFAULT_TIMEZONE) if times else None

    def _prune(self, reference_month: str | None) -> None:
        if reference_month is None:
            return
        _prune_members(self.months, reference_month)
        cutoff = _period_cutoff(self.months, reference_month)
        for room in self.rooms.values():
            room.periods = _prune_periods(room.periods, cutoff)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "scope": "center",
            "center_id": self.center_id,
            "rooms": {k: self.rooms[k].to_json() for k in sorted(self.rooms)},
            "months": _months_to_json(self.months),
            "latest": None if self.latest is None else self.latest.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CenterUsage:
        if data.get("version") != STATE_VERSION or data.get("scope") != "center":
            raise ValueError("not a version-1 center usage document")
        latest = data.get("latest")
        return cls(
            center_id=str(data["center_id"]),
            rooms={str(k): CenterRoom.from_json(v) for k, v in data.get("rooms", {}).items()},
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
        previous = room.active.get(decision.booking_id)
        if previous is not None:  # confirmed again: the new interval replaces the old one
            effects.add(previous.start_month, "bookings_confirmed", -1)
            effects.add_seconds(previous.seconds, -1)
        effects.add(month, "bookings_confirmed", 1)
        effects.members.setdefault(month, set()).add(decision.member_id)
        if decision.booking_id not in room.ended:
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
        active = room.active.get(decision.booking_id)
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
    if effects.config is not None:
        room.periods = _with_period(room.periods, effects.config.period)
        room.timezone = effects.config.timezone
    if effects.ended is not None:
        booking_id, ends_at = effects.ended
        room.active.pop(booking_id, None)
        room.ended[booking_id] = ends_at
    if effects.started is not None:
        booking_id, booking = effects.started
        room.active[booking_id] = booking
    effects.apply_to(room.months, room_peaks=True)
    for month in candidates:
        room.months.setdefault(month, MonthUsage())
    if room.latest is None or decision.decided_at > room.latest:
        room.latest = decision.decided_at


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
    """
    _require_aware(now, "now")
    if decision.room_id != room.room_id:
        raise ValueError(f"decision for room {decision.room_id!r} folded into {room.room_id!r}")
    center_id = decision.center_id or room.center_id
    if center is not None and center_id is not None and center.center_id != center_id:
        raise ValueError(f"room {room.room_id!r} belongs to center {center_id!r}")
    room.center_id = center_id

    effects = _effects(room, decision)
    seed = CenterRoom(timezone=room.timezone, periods=list(room.periods))

    candidates = effects.months()
    if effects.config is not None:
        candidates |= set(room.months)  # open hours of every open month may change
    before = {m: room._values(m) for m in candidates}
    _fold_room(room, effects, decision, candidates)
    room._prune(room._reference_month())
    out = _emit(room.months, before, room._values, room.aggregate, now)

    if center is not None:
        out.extend(_fold_center(center, room.room_id, seed, effects, decision, now))
    return out


def _fold_center(
    center: CenterUsage,
    room_id: str,
    seed: CenterRoom,
    effects: _Effects,
    decision: AnyDecision,
    now: datetime,
) -> list[UsageMonthly]:
    candidates = effects.months()
    known = room_id in center.rooms
    if effects.config is not None or not known:
        candidates |= set(center.months)  # open hours of every open month may change
    before = {m: center._values(m) for m in candidates}

    if not known:  # a center document younger than the room: learn the room's rules now
        center.rooms[room_id] = seed
    info = center.rooms[room_id]
    if effects.config is not None:
        info.periods = _with_period(info.periods, effects.config.period)
        info.timezone = effects.config.timezone
    effects.apply_to(center.months, room_peaks=False)
    if effects.occupancy is not None:
        month, occupancy = effects.occupancy
        info.occupancy = occupancy
        stats = center.months.setdefault(month, MonthUsage())
        total = sum(r.occupancy for r in center.rooms.values())
        stats.peak_occupancy = max(stats.peak_occupancy, total)
    for month in candidates:
        center.months.setdefault(month, MonthUsage())
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
    stats = state.months.setdefault(month, MonthUsage())
    if not stats.final:
        stats.open_minutes = state.open_minutes(month)
        stats.final = True
    state._prune(state._reference_month(now))
    return [state.aggregate(month, now)]
