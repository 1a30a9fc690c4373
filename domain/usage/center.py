"""One center's usage state (:class:`CenterUsage`): sums over its rooms.

A center keeps, per kind of opening hours (time zone, opens, closes), how many of its rooms
have them and their summed capacity as changes by local date (``_KindSums``; a room whose
rules change adjusts them by its own difference), the sum of their occupancies, and caches
its months' open minutes until a rule changes, so its figures cost the same whatever the
number of its rooms.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    _dst_corrections,
    _Kind,
    _month_days,
    _prunable_day,
    _prune_periods,
    _steps,
    _wall_minutes,
)
from schemas.outputs import UsageMonthly


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


_RoomGroupKey = tuple[str, tuple[OpeningPeriod, ...], tuple[CapacityPeriod, ...]]
_RoomGroup = tuple[str, tuple[OpeningPeriod, ...], tuple[CapacityPeriod, ...], list[str]]
"""Rooms sharing a time zone, hours and capacities in a center's document, and their ids."""


@dataclass
class CenterUsage:
    """Usage state of one center: sums over its rooms, a union of their members.

    ``rooms`` is what the center knows of each room; the sums over it that a fold needs
    (occupancy, rooms and capacity per kind of opening hours by date) are kept alongside and
    changed by the one room a decision is about.
    """

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
    _groups: list[_RoomGroup] | None = field(default=None, init=False, repr=False, compare=False)
    """The rooms grouped as the document writes them, until a room is added or its rules
    change: a center's every save wrote them, and grouping its rooms by their hours and
    capacities cost as much as the rest of its document."""

    def __post_init__(self) -> None:
        # The defaults of the fields above left out of __init__: mypyc's build does not set them.
        self._occupancy = 0
        self._groups = None
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
        return _as_message(self.aggregate_document(month, now))

    def aggregate_document(self, month: str, now: datetime) -> AggregateDocument:
        """``aggregate`` as the dict the publisher serializes."""
        stats = self.months.get(month, MonthUsage())
        return _aggregate_document("center", self.center_id, month, stats, self.minutes(month), now)

    def _values(self, month: str) -> _Values | None:
        stats = self.months.get(month)
        return None if stats is None else stats.values(self.minutes(month))

    def _reference_month(self, now: datetime) -> str:
        latest = now if self.latest is None else max(self.latest, now)
        return local_month(latest, DEFAULT_TIMEZONE)

    # the sums over the rooms

    def _add_room(self, room_id: str, room: CenterRoom) -> None:
        self._groups = None
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
        self._groups = None
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
        groups = self._groups
        if groups is None:
            grouped: dict[_RoomGroupKey, list[str]] = {}
            for room_id in sorted(self.rooms):
                room = self.rooms[room_id]
                key = (room.timezone, tuple(room.periods), tuple(room.capacities))
                grouped.setdefault(key, []).append(room_id)
            groups = self._groups = [(*key, ids) for key, ids in grouped.items()]
        return {
            "version": STATE_VERSION,
            "scope": "center",
            "center_id": self.center_id,
            "rooms": [
                {
                    "timezone": tz,
                    "periods": [p.to_json() for p in periods],
                    "capacities": [c.to_json() for c in capacities],
                    "ids": list(ids),
                }
                for tz, periods, capacities, ids in groups
            ],
            "occupancy": {
                room_id: room.occupancy
                for room_id in sorted(self.rooms)
                if (room := self.rooms[room_id]).occupancy
            },
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
