"""The work of folding one decision does not grow with the rooms of the center.

Counted, not timed: the calls of the per-room computations (a room's open and capacity
minutes of a month, a room's rules as changes of the center's sums, the pruning of a room's
hours and capacities, the merging of hours and capacities, the DST days of a kind of hours)
while folding one decision into a center of 10 rooms and into one of 1,000.
"""

from __future__ import annotations

import pkgutil
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any
from uuid import uuid4

import pytest

from schemas.decisions import AnyDecision, CapacityChanged, CheckinAdmitted, CheckoutRecorded
from tests.pure_domain import pure
from tests.test_usage import CENTER, NOW, admitted, checkout, configured, confirmed, kst

# Calls are counted through the modules' namespaces: the rules imported from their sources
# (where they run compiled, a compiled module calls its own functions directly).
usage = pure("domain.usage")
CenterUsage, RoomUsage, fold = usage.CenterUsage, usage.RoomUsage, usage.fold
usage_periods = pure("domain.usage.periods")
usage_slots = pure("domain.usage.slots")

PER_ROOM = ("_open_minutes", "_steps", "_prune_periods", "_segments")
PER_KIND = ("_dst_corrections",)
"""Per kind of opening hours (time zone, opens, closes): as many in both centers (eight)."""
PER_STAY = ("_add_hour_part", "_add_full_days")
"""The heatmap's split of a stay into weekday-hour slots: hour-by-hour steps of its partial
first and last days (and DST days), plain whole days in bulk per month."""
MODULES: tuple[ModuleType, ...] = tuple(
    pure(f"domain.usage.{info.name}") for info in pkgutil.iter_modules(usage.__path__)
)
"""The modules of ``domain.usage``. A function is looked up in the namespace of the module
that calls it (the one defining it, or one importing it), so to count its calls every module
that has it gets the counting wrapper."""


ZONES = ("Asia/Seoul", "UTC", "America/New_York", "Pacific/Kiritimati")


def center_of(size: int) -> tuple[dict[str, RoomUsage], CenterUsage]:
    """``size`` rooms in four time zones; every other one changed its hours in November."""
    rooms: dict[str, RoomUsage] = {}
    center = CenterUsage("center-1")
    for index in range(size):
        room_id = f"room-{index:04d}"
        room = rooms[room_id] = RoomUsage(room_id)
        zone = ZONES[index % len(ZONES)]
        fold(room, center, configured(kst(10, 1 + index % 28), room_id, tz=zone), NOW)
        if index % 2:
            later = configured(kst(11, 1 + index % 28), room_id, closes="20:00", tz=zone)
            fold(room, center, later, NOW)
        fold(room, center, admitted(kst(11, 28, 10), 1, 1, room=room_id), NOW)
    return rooms, center


def work(
    monkeypatch: pytest.MonkeyPatch, size: int, decisions: Callable[[], list[AnyDecision]]
) -> Counter[str]:
    """Calls of the per-room computations while folding the last of ``decisions``."""
    rooms, center = center_of(size)
    *before, last = decisions()
    for decision in before:
        fold(rooms[decision.room_id], center, decision, NOW)
    for zone in ZONES:  # the heatmap's denominators: pure, cached per zone and month
        for month in ("2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03"):
            usage_slots._slot_seconds(zone, month)
    calls: Counter[str] = Counter()
    for name in PER_ROOM + PER_KIND + PER_STAY:
        holders = [module for module in MODULES if name in vars(module)]
        assert holders, name
        original = getattr(holders[0], name)
        assert all(getattr(module, name) is original for module in holders)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] += 1
            return _original(*args)

        for module in holders:
            monkeypatch.setattr(module, name, counted)
    out = fold(rooms[last.room_id], center, last, NOW)
    monkeypatch.undo()
    assert out or isinstance(last, CheckoutRecorded)  # a check-out need not change a figure
    return calls


def capacity_changed(at: datetime, room: str, capacity: int) -> CapacityChanged:
    return CapacityChanged(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        capacity=capacity,
        previous_capacity=20,
        reason="distancing",
    )


def closing_checkout(at: datetime, room: str, party: int) -> CheckoutRecorded:
    return CheckoutRecorded(
        event_id=uuid4(),
        caused_by=None,
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        kiosk_id=None,
        party_size=party,
        occupancy=0,
        capacity=20,
    )


def attended(at: datetime, room: str, booking: str) -> CheckinAdmitted:
    return admitted(at, 2, 3, room=room).model_copy(update={"attended_booking_id": booking})


ROOM = "room-0001"
CASES: dict[str, Callable[[], list[AnyDecision]]] = {
    "a check-in": lambda: [admitted(kst(11, 28, 11), 2, 3, room=ROOM)],
    "a check-out": lambda: [checkout(kst(11, 28, 12), 1, 0, room=ROOM)],
    "a booking over two months": lambda: [
        confirmed("b1", "m1", kst(11, 30, 22), kst(12, 1, 2), room=ROOM)
    ],
    "a check-in in a month the center never saw": lambda: [
        admitted(kst(12, 2, 10), 1, 2, room=ROOM)
    ],
    "a check-in after the months turned": lambda: [
        admitted(kst(2, 1, 10, year=2027), 1, 2, room="room-0002"),
        admitted(kst(2, 1, 11, year=2027), 1, 3, room=ROOM),
    ],
    "a change of hours": lambda: [configured(kst(11, 29, 8), ROOM, closes="21:00")],
    "a change of capacity": lambda: [capacity_changed(kst(11, 29, 8), ROOM, 12)],
    "a check-out hours later (person-hours)": lambda: [checkout(kst(11, 28, 18), 1, 0, room=ROOM)],
    "the closing check-out": lambda: [closing_checkout(kst(11, 28, 23), ROOM, 1)],
    "a check-out after a stay of three months (heatmap)": lambda: [
        checkout(kst(2, 28, 12, year=2027), 1, 0, room=ROOM)
    ],
    "a check-in for a booking": lambda: [
        confirmed("b1", "m1", kst(11, 28, 12), kst(11, 28, 14), room=ROOM),
        attended(kst(11, 28, 12), ROOM, "b1"),
    ],
}


@pytest.mark.parametrize("case", list(CASES))
def test_folding_one_decision_does_not_depend_on_the_number_of_rooms(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    small = work(monkeypatch, 10, CASES[case])
    large = work(monkeypatch, 1000, CASES[case])
    assert large == small
    assert sum(n for name, n in large.items() if name in PER_ROOM) <= 8


@pytest.mark.parametrize(
    ("until", "months"),
    [(kst(11, 28, 12), 1), (kst(12, 28, 12), 2), (kst(2, 28, 12, year=2027), 4)],
)
def test_the_heatmap_of_a_stay_costs_the_same_however_long_it_was(
    monkeypatch: pytest.MonkeyPatch, until: datetime, months: int
) -> None:
    """A stay that began at 10:00 on Nov 28 ends: at most a day's hours step by step at
    each end, and one bulk addition of whole days per month between."""
    calls = work(monkeypatch, 10, lambda: [checkout(until, 1, 0, room=ROOM)])
    assert calls["_add_hour_part"] <= 2 * 24
    assert calls["_add_full_days"] <= months


def test_a_check_in_computes_no_open_minutes_of_a_month_it_computed_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = work(monkeypatch, 1000, CASES["a check-in"])
    assert {name: n for name, n in calls.items() if name not in PER_STAY} == {}
    # The hour since the last admission lies within one local hour: its slot is added in
    # one step (``_split_stay``), without the walk hour by hour.
    assert calls["_add_hour_part"] == calls["_add_full_days"] == 0


def test_the_center_figures_of_a_large_center_are_the_sums_over_its_rooms() -> None:
    rooms, center = center_of(1000)
    november = center.aggregate("2026-11", NOW)
    expected = [
        usage_periods._open_minutes(r.periods, r.capacities, r.timezone, "2026-11")
        for r in center.rooms.values()
    ]
    assert november.open_hours == round(sum(m for m, _ in expected) / 60, 4)
    assert november.capacity_hours == round(sum(c for _, c in expected) / 60, 4)
    by_room = [r.aggregate("2026-11", NOW) for r in rooms.values()]
    assert november.open_hours == pytest.approx(sum(r.open_hours for r in by_room))
    assert november.capacity_hours == pytest.approx(sum(r.capacity_hours for r in by_room))
    assert november.peak_occupancy == 1000
    assert center._occupancy == sum(r.occupancy for r in center.rooms.values()) == 1000

    # everyone checked out two hours later: 2,000 person-hours, the center's the rooms' sum
    for room_id, room in rooms.items():
        fold(room, center, checkout(kst(11, 28, 12), 1, 0, room=room_id), NOW)
    november = center.aggregate("2026-11", NOW)
    assert november.person_hours == 2000.0
    assert november.person_hours == sum(
        r.aggregate("2026-11", NOW).person_hours for r in rooms.values()
    )
    assert november.occupancy_utilization == round(2000 / november.capacity_hours, 4)
