"""The figures of one month of a room or a center, and what both states keep of months.

:class:`MonthUsage` holds a month's counters (``COUNTERS``), peak, members and heatmap slots;
``_aggregate_document`` builds its ``usage-monthly`` value (``_as_message``: as a message).
Also here: the months' JSON and the document versions both states read (``STATE_VERSION``),
the sorted lists of open months and of final months with a member set, and the pruning of
member sets (``_prune_members``) and the cutoff of opening periods (``_period_cutoff``), from
those lists.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal, get_args

from domain.months import add_months, parse_month, require_aware
from domain.usage.slots import SLOTS, _cell, _Slots
from schemas.outputs import UsageMonthly

MEMBER_SET_RETENTION_MONTHS = 2
"""Member-id sets of final months more than this many months before the newest decision's
month are dropped; ``unique_members`` of those months is frozen from then on."""
STATE_VERSION = 4
"""Version of the documents :meth:`RoomUsage.to_json` and :meth:`CenterUsage.to_json` write.
Versions 1 to 3 are still read (``from_json`` converts them; what they did not keep, the
capacities and the room's occupancy, is learnt from the next decisions; 4 adds the
weekday-hour slots of each month, which a month read from an older document lacks)."""
_READABLE_VERSIONS = (1, 2, 3, 4)

AggregateDocument = dict[str, Any]
"""A ``usage-monthly`` value as :func:`_aggregate_document` builds it: ``UsageMonthly``'s
fields, in order, typed as the schema says."""

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
COUNTERS: tuple[Counter, ...] = get_args(Counter)
"""Every counter, in the order of ``Counter`` (the documents' and aggregates' order)."""
_ZEROS = (0,) * len(COUNTERS)
"""``map(counts.get, COUNTERS, _ZEROS)``: every counter, 0 when absent, in one C loop (the
fold reads them before and after each decision)."""

_SLOT_KEYS = tuple(str(slot) for slot in range(SLOTS))
"""A slot's key in the documents: every save writes a month's slots, up to 168 of them."""

_Values = tuple[int | datetime | None, ...]


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
    _sorted_members: list[str] | None = field(default=None, init=False, repr=False, compare=False)
    """``members`` sorted, as the documents list them, kept in step by ``add_member`` once
    computed: a center's month has hundreds of members, and sorting them again for every
    save cost more than the rest of the center's document (``_members_json``)."""
    _cells: list[float] | None = field(default=None, init=False, repr=False, compare=False)
    """The heatmap's 168 cells, kept up to date by ``add_slots`` once computed: an
    aggregate copies them instead of dividing and rounding 168 cells each time."""

    def __post_init__(self) -> None:
        # The defaults of the fields above left out of __init__: mypyc's build does not set them.
        self._sorted_members = None
        self._cells = None

    def get(self, counter: Counter) -> int:
        return self.counts.get(counter, 0)

    def bump(self, counter: Counter, delta: int) -> None:
        self.counts[counter] = max(0, self.get(counter) + delta)

    def add_member(self, member_id: str) -> None:
        if self.members is None:
            return
        if member_id not in self.members:
            self.members.add(member_id)
            if self._sorted_members is not None:
                insort(self._sorted_members, member_id)
        self.unique_members = len(self.members)

    def _members_json(self) -> list[str] | None:
        """``members`` sorted: from the kept list while it has every member (a set
        changed other than by ``add_member`` is sorted again)."""
        if self.members is None:
            return None
        kept = self._sorted_members
        if kept is None or len(kept) != len(self.members):
            kept = self._sorted_members = sorted(self.members)
        return list(kept)

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
            "members": self._members_json(),
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
                tz: {_SLOT_KEYS[k]: v for k in sorted(slots) if (v := slots[k])}
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


def _as_message(document: AggregateDocument) -> UsageMonthly:
    # Built without validation: every value is the fold's own, typed as the schema says,
    # and validating the 168 heatmap cells cost more than the fold of a decision
    # (tests/test_usage_equivalence.py validates every aggregate it sees, strictly).
    return UsageMonthly.model_construct(**document)


def _aggregate_document(
    scope: Literal["room", "center"],
    ident: str,
    month: str,
    stats: MonthUsage,
    minutes: tuple[int, int],
    now: datetime,
) -> AggregateDocument:
    """The ``usage-monthly`` value as a dict: every field of ``UsageMonthly`` in its order,
    each value of the type the schema gives it, so pydantic-core writes the JSON the model
    would (``pydantic_core.to_json``). The publisher serializes this, without a model:
    building one and dumping it cost about twice the JSON itself (test_usage_equivalence
    compares both, byte for byte, for every aggregate it sees)."""
    open_minutes, capacity_minutes = minutes
    booked_seconds = stats.get("booked_seconds")
    utilization = round(booked_seconds / (open_minutes * 60), 4) if open_minutes > 0 else 0.0
    person_seconds = stats.get("person_seconds")
    occupancy_utilization = (
        round(person_seconds / (capacity_minutes * 60), 4) if capacity_minutes > 0 else 0.0
    )
    no_shows, attended = stats.get("no_shows"), stats.get("bookings_attended")
    reached_start = no_shows + attended if stats.attendance_counted else 0
    return {
        "scope": scope,
        "id": ident,
        "month": month,
        "bookings_confirmed": stats.get("bookings_confirmed"),
        "bookings_rejected": stats.get("bookings_rejected"),
        "bookings_cancelled": stats.get("bookings_cancelled"),
        "no_shows": no_shows,
        "booked_hours": round(booked_seconds / 3600, 4),
        "open_hours": round(open_minutes / 60, 4),
        "utilization": float(utilization),
        "visits": stats.get("visits"),
        "checkins_denied": stats.get("checkins_denied"),
        "unique_members": stats.unique_members,
        "peak_occupancy": stats.peak_occupancy,
        "final": stats.final,
        "updated_at": now,
        "revision": stats.revision,
        "revised_after_close": stats.revised_after_close,
        "person_hours": round(person_seconds / 3600, 4),
        "capacity_hours": round(capacity_minutes / 60, 4),
        "occupancy_utilization": float(occupancy_utilization),
        "bookings_attended": attended,
        "no_show_rate": round(no_shows / reached_start, 4) if reached_start > 0 else None,
        "peak_at": stats.peak_at,
        "peak_hour": None if stats.peak_at is None else stats.peak_at.hour,
        "occupancy_by_weekday_hour": stats.heatmap(month),
    }


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
        months[month].members = months[month]._sorted_members = None
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


def _datetime_from_json(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value))
    require_aware(ts, "stored time")
    return ts


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
