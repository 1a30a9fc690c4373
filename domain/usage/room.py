"""One room's usage state (:class:`RoomUsage`) and its bookings (:class:`ActiveBooking`).

A room caches its open minutes per month; bookings are forgotten by the UTC day their
interval ends (``ACTIVE_BOOKING_RETENTION``); member sets and opening periods are pruned from
sorted indexes, so a decision that drops nothing looks at nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain import opening_hours
from domain.months import DEFAULT_TIMEZONE, local_month
from domain.usage.month import (
    STATE_VERSION,
    AggregateDocument,
    MonthUsage,
    _aggregate_document,
    _as_message,
    _check_document,
    _datetime_from_json,
    _final_with_members,
    _months_from_json,
    _months_to_json,
    _open_months,
    _period_cutoff,
    _prune_members,
    _Values,
)
from domain.usage.periods import (
    CapacityPeriod,
    OpeningPeriod,
    _in_force,
    _open_minutes,
    _prunable_day,
    _prune_periods,
)
from schemas.outputs import UsageMonthly

ACTIVE_BOOKING_RETENTION = timedelta(days=62)
"""Active (and ended) booking intervals ending longer ago than this before the newest
decision are dropped from the state; a later cancel/release of one is still counted but
subtracts no hours."""


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


def _utc_day(ts: datetime) -> int:
    return ts.astimezone(UTC).date().toordinal()


@dataclass
class RoomUsage:
    """Usage state of one room: what :func:`fold` needs to keep its monthly figures."""

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
        # The defaults of the fields above left out of __init__: mypyc's build does not set them.
        self._expired_before = None
        self._minutes_of = None
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
        return _as_message(self.aggregate_document(month, now))

    def aggregate_document(self, month: str, now: datetime) -> AggregateDocument:
        """``aggregate`` as the dict the publisher serializes."""
        stats = self.months.get(month, MonthUsage())
        return _aggregate_document("room", self.room_id, month, stats, self.minutes(month), now)

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
