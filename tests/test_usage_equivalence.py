"""The incremental fold gives exactly the figures of the plain fold it replaced.

``tests/_usage_reference.py`` is ``domain/usage.py`` (now the package ``domain/usage/``) as
it was before folding became O(1) per decision: it summed the open hours and occupancies over
every room of the center and pruned the whole state on every decision. Random logs go through
both, with month closes and state reloads (also from the reference's version-1 documents) in
between: every aggregate returned, every aggregate of every month and every state document
must agree.

On the figures the reference knows. Two of its rules changed since, and are patched in here
with an obvious per-day loop: open hours are real elapsed minutes (DST) and an opening whose
``closes`` is not after ``opens`` runs into the next day. The figures added since (person-hours,
capacity hours, attendance, the time of the peak) are not the reference's: they are compared
with hand-worked examples and an independent computation in ``tests/test_usage_occupancy.py``.
They also change aggregates the reference leaves alone (person-hours of a check-out), so the
fold may return more aggregates than the reference and revise a closed month more often:
``revision`` is at least the reference's, and every aggregate agrees on the other figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import opening_hours, usage
from domain.months import add_months
from domain.usage.periods import _month_days
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
from tests import _usage_reference as reference

CENTER = "center-1"
ROOMS = ("room-a", "room-b", "room-c")
ZONES = ("Asia/Seoul", "UTC", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago")
HOURS = (
    ("09:00", "22:00"),
    ("10:00", "24:00"),
    ("00:00", "24:00"),
    ("08:00", "20:00"),
    ("09:00", "21:00"),  # as many minutes as 08:00-20:00: a change of hours, not of minutes
    ("22:00", "06:00"),  # closes before it opens: open overnight, until 06:00
)
START = datetime(2026, 9, 20, tzinfo=UTC)
DAY = 24 * 60


# --- the reference, with today's open hours ---------------------------------------------


@cache
def _day_minutes(day: date, opens: int, closes: int, tz: str) -> int:
    return opening_hours.open_minutes(day, opens, closes, ZoneInfo(tz))


def _real_open_minutes(periods: list[reference.OpeningPeriod], tz: str, month: str) -> int:
    """Every local day of ``month``: the real minutes of the opening the hours in force
    that day start (none before the first period)."""
    first, days = _month_days(month)
    total = 0
    for ordinal in range(first, first + days):
        day = date.fromordinal(ordinal)
        in_force = [p for p in periods if p.effective <= day]
        if in_force:
            total += _day_minutes(day, in_force[-1].opens, in_force[-1].closes, tz)
    return total


def _room_open_minutes(self: reference.RoomUsage, month: str) -> int:
    stats = self.months.get(month)
    if stats is not None and stats.open_minutes is not None:
        return stats.open_minutes
    return _real_open_minutes(self.periods, self.timezone, month)


def _center_open_minutes(self: reference.CenterUsage, month: str) -> int:
    stats = self.months.get(month)
    if stats is not None and stats.open_minutes is not None:
        return stats.open_minutes
    return sum(_real_open_minutes(r.periods, r.timezone, month) for r in self.rooms.values())


@pytest.fixture(autouse=True, scope="module")
def _reference_with_real_open_hours() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference.RoomUsage, "open_minutes", _room_open_minutes)
        patch.setattr(reference.CenterUsage, "open_minutes", _center_open_minutes)
        yield


# --- comparing on the figures the reference knows ---------------------------------------

ADDED_FIELDS = {
    "person_hours",
    "capacity_hours",
    "occupancy_utilization",
    "bookings_attended",
    "no_show_rate",
    "peak_at",
    "peak_hour",
    "occupancy_by_weekday_hour",
}
REVISION_FIELDS = {"revision", "revised_after_close"}
ADDED_COUNTS = ("person_seconds", "bookings_attended")
ADDED_MONTH_KEYS = (
    "peak_at",
    "capacity_minutes",
    "attendance_counted",
    "revision",
    "revised_after_close",
    "slots",
)
ADDED_ROOM_KEYS = ("capacities", "occupancy", "occupied_since")


def known(message: UsageMonthly) -> dict[str, Any]:
    return message.model_dump(exclude=ADDED_FIELDS | REVISION_FIELDS)


def _hours_in_force(periods: list[Any], day: date) -> tuple[int, int] | None:
    in_force = [p for p in periods if p.effective <= day]
    return (in_force[-1].opens, in_force[-1].closes) if in_force else None


def agrees(mine: UsageMonthly, expected: UsageMonthly, *, open_hours: bool = True) -> None:
    # The fold builds aggregates without validation: each must serialize with no type the
    # schema does not declare, to a message validation accepts and writes back the same.
    # (Compared as JSON: a peak in a repeated DST hour compares unequal to itself once
    # its zone is a plain offset, PEP 495.)
    text = mine.model_dump_json(warnings="error")
    assert UsageMonthly.model_validate_json(text).model_dump_json() == text
    if open_hours:
        assert known(mine) == known(expected)
    else:
        assert {**known(mine), "open_hours": None} == {**known(expected), "open_hours": None}
    assert mine.revision >= expected.revision
    assert mine.revised_after_close >= expected.revised_after_close


def published_as_the_model(state: Any, month: str, now: datetime) -> None:
    """The statistics publish ``aggregate_document`` serialized without a model: the same
    bytes as the model, field order included."""
    document = state.aggregate_document(month, now)
    text = state.aggregate(month, now).model_dump_json(warnings="error")
    assert pydantic_core.to_json(document).decode() == text


def months_known(months: dict[str, Any]) -> dict[str, Any]:
    """The month records without what was added, and without the revision (compared on the
    aggregates: the fold may revise more often)."""
    out: dict[str, Any] = {}
    for month, record in months.items():
        record = {k: v for k, v in record.items() if k not in ADDED_MONTH_KEYS}
        record["counts"] = {k: v for k, v in record["counts"].items() if k not in ADDED_COUNTS}
        out[month] = record
    return out


def without_hours(document: dict[str, Any], months: set[str]) -> dict[str, Any]:
    """``document`` with the frozen open hours of ``months`` left out."""
    if not months & set(document["months"]):
        return document
    return {
        **document,
        "months": {
            m: {k: v for k, v in r.items() if k != "open_minutes"} if m in months else r
            for m, r in document["months"].items()
        },
    }


def only_months_of(
    mine: dict[str, Any], expected: dict[str, Any], unknown_hours: set[str] = frozenset()
) -> dict[str, Any]:
    """``mine`` without the months ``expected`` lacks: months only person-hours reached (the
    stay of someone inside across it), which hold nothing the reference counts; and without
    the open hours of ``unknown_hours``, such months the reference made at their close."""
    mine = without_hours(mine, unknown_hours)
    extra = set(mine["months"]) - set(expected["months"])
    for month in extra:
        record = mine["months"][month]
        assert not any(record["counts"].get(c) for c in usage.COUNTERS if c not in ADDED_COUNTS)
        assert record["peak_occupancy"] == 0 and not record["members"]
    trimmed = {**mine, "months": {m: r for m, r in mine["months"].items() if m not in extra}}
    if extra:
        # Such a month, while open, still needs the opening hours of its days: the fold
        # may keep periods the reference (which never had the month) already pruned.
        if "periods" in mine:
            trimmed["periods"] = older_periods_dropped(mine["periods"], expected["periods"])
        if isinstance(mine.get("rooms"), dict):
            trimmed["rooms"] = {
                room_id: (tz, older_periods_dropped(periods, expected["rooms"][room_id][1]))
                if room_id in expected["rooms"]
                else (tz, periods)
                for room_id, (tz, periods) in mine["rooms"].items()
            }
    return trimmed


def older_periods_dropped(mine: list[Any], expected: list[Any]) -> list[Any]:
    """``mine`` without periods that took effect before all of ``expected``'s (kept for
    an open month the reference lacks); the rest must be ``expected``'s exactly."""
    if not expected or len(mine) <= len(expected):
        return mine
    kept = mine[len(mine) - len(expected) :]
    assert all(old[0] < expected[0][0] for old in mine[: len(mine) - len(expected)])
    return kept


def room_known(document: dict[str, Any]) -> dict[str, Any]:
    document = {k: v for k, v in document.items() if k not in ADDED_ROOM_KEYS}
    document["active"] = {
        k: {f: v for f, v in b.items() if f != "attended"} for k, b in document["active"].items()
    }
    document["months"] = months_known(document["months"])
    return document


def center_known(document: dict[str, Any]) -> dict[str, Any]:
    rooms = {
        room_id: (group["timezone"], group["periods"])
        for group in document["rooms"]
        for room_id in group["ids"]
    }
    return {
        **document,
        "rooms": rooms,
        "months": months_known(document["months"]),
    }


KINDS = (
    "configure",
    "configure",
    "confirm",
    "confirm",
    "confirm",
    "cancel",
    "release",
    "reject",
    "admit",
    "admit",
    "deny",
    "checkout",
    "close",
    "reload",
    "reload_v1",
)


@dataclass(frozen=True)
class Step:
    kind: str
    room: str
    advance: int
    """Minutes the clock moves on before the step."""
    lag: int
    """Minutes ``decided_at`` lies before the clock (late decisions)."""
    in_center: bool
    """The decision names the center (else ``center_id`` is ``None``)."""
    pick: int
    """Booking, member, hours or party size, depending on ``kind``."""
    offset: int
    """Start of a booking in minutes after ``decided_at``; or an occupancy, a time zone."""
    minutes: int
    """Length of a booking."""
    flag: bool
    """Cancel/release: of the interval last confirmed; check-in: with a member id."""


def days(*choices: float) -> st.SearchStrategy[int]:
    """Minutes: one of ``choices`` days plus up to a day (integers alone stay small)."""
    return st.builds(
        lambda d, jitter: round(d * DAY) + jitter,
        st.sampled_from(choices),
        st.integers(0, DAY),
    )


steps = st.builds(
    Step,
    kind=st.sampled_from(KINDS),
    room=st.sampled_from(ROOMS),
    advance=st.one_of(st.integers(0, 12 * 60), days(0, 1, 3, 10, 20, 45)),
    lag=st.one_of(st.just(0), st.integers(0, DAY), days(1, 7, 30, 61, 75, 100, 140)),
    in_center=st.sampled_from((True, True, True, False)),
    pick=st.integers(0, 11),
    offset=st.one_of(
        days(-40, -10, -1, 0, 1, 5, 20, 35, 70),
        days(-63, -62, -61),  # ended about as long ago as bookings are kept
    ),
    minutes=st.one_of(st.integers(1, 6 * 60), days(0, 1, 2)),
    flag=st.booleans(),
)


def roundtrip(document: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(document))
    return result


class Twins:
    """The same log folded by ``domain.usage`` and by the reference."""

    def __init__(self, scheduler: bool = True, unit: int = 1) -> None:
        self.unit = unit
        """Every time is a multiple of this many minutes: 360 makes bookings end on the
        same UTC day as the retention horizon often, and months often close on time."""
        self.scheduler = scheduler
        """Close every month once the clock is past it (else only the ``close`` steps do)."""
        self.next_close = usage.local_month(START)
        self.rooms: dict[str, usage.RoomUsage] = {}
        self.center = usage.CenterUsage(CENTER)
        self.reference_rooms: dict[str, reference.RoomUsage] = {}
        self.reference_center = reference.CenterUsage(CENTER)
        self.clock = START
        self.intervals: dict[str, tuple[datetime, datetime]] = {}
        self.hours_unknown: set[tuple[str, str, str]] = set()
        """(scope, id, month) of the months the reference made at their close (see
        ``close``): their frozen open hours are no figure to compare."""

    def step(self, step: Step) -> None:
        self.clock += self.minutes(step.advance)
        while self.scheduler and self.next_close <= usage.previous_month(self.clock):
            self.close(self.next_close)
            self.next_close = add_months(self.next_close, 1)
        if step.kind == "close":
            if step.flag:
                self.close(usage.previous_month(self.clock, ZONES[step.pick % len(ZONES)]))
            else:  # every month still open before the last one: those late decisions made
                self.sweep()
        elif step.kind == "reload":
            self.reload(self.rooms, self.center)
        elif step.kind == "reload_v1":
            self.reload(self.reference_rooms, self.reference_center)
        else:
            self.fold(self.decision(step))
        self.check_documents()

    def minutes(self, count: int) -> timedelta:
        return timedelta(minutes=count - count % self.unit)

    def decision(self, step: Step) -> AnyDecision:
        common: dict[str, Any] = {
            "event_id": uuid4(),
            "caused_by": uuid4(),
            "room_id": step.room,
            "center_id": CENTER if step.in_center else None,
            "decided_at": self.clock - self.minutes(step.lag),
        }
        decided_at: datetime = common["decided_at"]
        booking = f"b{step.pick % 4}"
        member = f"m{step.pick}"
        starts_at = decided_at + self.minutes(step.offset)
        ends_at = starts_at + max(self.minutes(step.minutes), self.minutes(self.unit))
        interval = self.intervals.get(f"{step.room}/{booking}")
        if step.kind in ("cancel", "release") and step.flag and interval is not None:
            starts_at, ends_at = interval
        kiosk: dict[str, Any] = {"kiosk_id": "kiosk-1", "capacity": 20}
        if step.kind == "configure":
            opens, closes = HOURS[step.pick % len(HOURS)]
            return RoomConfiguredDecision(
                **common,
                name=step.room,
                capacity=20,
                booking_mode="shared",
                opens=opens,
                closes=closes,
                timezone=ZONES[step.offset % len(ZONES)],
            )
        if step.kind == "confirm":
            self.intervals[f"{step.room}/{booking}"] = (starts_at, ends_at)
            return BookingConfirmed(
                **common,
                booking_id=booking,
                member_id=member,
                party_size=1,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        if step.kind == "cancel":
            return BookingCancelled(
                **common, booking_id=booking, member_id=member, starts_at=starts_at, ends_at=ends_at
            )
        if step.kind == "release":
            return BookingReleased(
                **common, booking_id=booking, member_id=member, starts_at=starts_at, ends_at=ends_at
            )
        if step.kind == "reject":
            return BookingRejected(**common, booking_id=booking, member_id=member, reason="overlap")
        if step.kind == "admit":
            return CheckinAdmitted(
                **common,
                **kiosk,
                party_size=1 + step.pick % 4,
                occupancy=step.offset % 15 - 2,
                member_id=member if step.flag else None,
            )
        if step.kind == "deny":
            return CheckinDenied(**common, **kiosk, party_size=1, occupancy=20, reason="room_full")
        assert step.kind == "checkout"
        return CheckoutRecorded(**common, **kiosk, party_size=1, occupancy=step.offset % 12 - 1)

    def fold(self, decision: AnyDecision) -> None:
        """As the statistics consumer does: the center only if the decision names it."""
        room = self.rooms.setdefault(decision.room_id, usage.RoomUsage(decision.room_id))
        reference_room = self.reference_rooms.setdefault(
            decision.room_id, reference.RoomUsage(decision.room_id)
        )
        named = decision.center_id is not None
        out = usage.fold(room, self.center if named else None, decision, self.clock)
        expected = reference.fold(
            reference_room, self.reference_center if named else None, decision, self.clock
        )
        mine = {m.key: m for m in out}
        assert len(mine) == len(out)
        states: dict[str, tuple[Any, Any]] = {
            "room": (room, reference_room),
            "center": (self.center, self.reference_center),
        }
        for message in expected:
            hours = self.same_hours(message.scope, message.id, message.month)
            if message.key in mine:
                agrees(mine.pop(message.key), message, open_hours=hours)
            else:  # a month the reference creates now, the fold before (for person-hours)
                ours = states[message.scope][0]
                assert message.month in ours.months
                agrees(ours.aggregate(message.month, self.clock), message, open_hours=hours)
        for message in mine.values():  # changed only in figures the reference lacks
            theirs = states[message.scope][1]
            agrees(
                message,
                theirs.aggregate(message.month, self.clock),
                open_hours=self.same_hours(message.scope, message.id, message.month),
            )

    def same_hours(self, scope: str, ident: str, month: str) -> bool:
        """Whether both keep the same opening hours for every day of ``month`` (for a
        center: of every room). Not always: a month only person-hours reached (see
        ``only_months_of``) is open in the fold, which keeps the hours it needs, while the
        reference never had it and may have pruned them; its open hours of such a month
        are then no figure to compare."""
        if (scope, ident, month) in self.hours_unknown:
            return False
        if scope == "room":
            pairs = [(self.rooms[ident].periods, self.reference_rooms[ident].periods)]
        else:
            ours, theirs = self.center.rooms, self.reference_center.rooms
            pairs = [
                (ours[r].periods if r in ours else [], theirs[r].periods if r in theirs else [])
                for r in set(ours) | set(theirs)
            ]
        first, days = _month_days(month)
        for day in map(date.fromordinal, range(first, first + days)):
            for mine, expected in pairs:
                if _hours_in_force(mine, day) != _hours_in_force(expected, day):
                    return False
        return True

    def close(self, month: str) -> None:
        # A month the reference never had (one only person-hours reached, see
        # ``only_months_of``) may have lost its opening hours there: the reference pruned
        # them at an earlier close, not knowing the month was open. It makes the month at
        # its close, with no open hours to compare.
        reference_had = {
            ("room", room_id): month in room.months
            for room_id, room in self.reference_rooms.items()
        }
        reference_had["center", CENTER] = month in self.reference_center.months
        self.hours_unknown |= {(*key, month) for key, had in reference_had.items() if not had}
        out: list[UsageMonthly] = []
        expected: list[UsageMonthly] = []
        for room_id, room in self.rooms.items():
            out.extend(usage.close_month(room, month, self.clock))
            expected.extend(reference.close_month(self.reference_rooms[room_id], month, self.clock))
        out.extend(usage.close_month(self.center, month, self.clock))
        expected.extend(reference.close_month(self.reference_center, month, self.clock))
        assert len(out) == len(expected)
        for mine, message in zip(out, expected, strict=True):
            agrees(mine, message, open_hours=reference_had[message.scope, message.id])

    def sweep(self) -> None:
        last = usage.previous_month(self.clock)
        states: list[usage.RoomUsage | usage.CenterUsage] = [*self.rooms.values(), self.center]
        months = {m for state in states for m, s in state.months.items() if not s.final}
        for month in sorted(m for m in months if m < last):
            self.close(month)

    def reload(
        self,
        rooms: dict[str, usage.RoomUsage] | dict[str, reference.RoomUsage],
        center: usage.CenterUsage | reference.CenterUsage,
    ) -> None:
        """Go on from (JSON copies of) the documents of ``rooms`` and ``center``."""
        self.rooms = {
            k: usage.RoomUsage.from_json(roundtrip(r.to_json())) for k, r in rooms.items()
        }
        self.center = usage.CenterUsage.from_json(roundtrip(center.to_json()))

    def check_documents(self) -> None:
        for room_id, room in self.rooms.items():
            expected = room_known(self.reference_rooms[room_id].to_json())
            document = room_known({**room.to_json(), "version": 1})
            unknown = self.unknown_hours("room", room_id)
            assert only_months_of(document, expected, unknown) == without_hours(expected, unknown)
        converted = usage.CenterUsage.from_json(roundtrip(self.reference_center.to_json()))
        expected = center_known(converted.to_json())
        unknown = self.unknown_hours("center", CENTER)
        assert only_months_of(
            center_known(self.center.to_json()), expected, unknown
        ) == without_hours(expected, unknown)

    def unknown_hours(self, scope: str, ident: str) -> set[str]:
        return {month for s, i, month in self.hours_unknown if (s, i) == (scope, ident)}

    def check_states(self) -> None:
        months = {m for r in self.reference_rooms.values() for m in r.months}
        months |= set(self.reference_center.months)
        month = usage.local_month(START - timedelta(days=62), "UTC")
        while month <= usage.local_month(self.clock + timedelta(days=62), "UTC"):
            months.add(month)  # never seen months too: open hours computed afresh
            month = add_months(month, 1)
        for room_id, room in self.rooms.items():
            expected = self.reference_rooms[room_id]
            for month in sorted(months):
                published_as_the_model(room, month, self.clock)
                agrees(
                    room.aggregate(month, self.clock),
                    expected.aggregate(month, self.clock),
                    open_hours=self.same_hours("room", room_id, month),
                )
        for month in sorted(months):
            published_as_the_model(self.center, month, self.clock)
            agrees(
                self.center.aggregate(month, self.clock),
                self.reference_center.aggregate(month, self.clock),
                open_hours=self.same_hours("center", CENTER, month),
            )
        self.check_documents()


@settings(max_examples=100, deadline=None)
@given(
    log=st.lists(steps, min_size=20, max_size=80),
    scheduler=st.booleans(),
    unit=st.sampled_from((1, 360)),
)
def test_incremental_fold_equals_the_reference(log: list[Step], scheduler: bool, unit: int) -> None:
    twins = Twins(scheduler, unit)
    for step in log:
        twins.step(step)
    twins.check_states()


@settings(max_examples=40, deadline=None)
@given(
    log=st.lists(steps, min_size=10, max_size=40),
    hours=st.lists(st.sampled_from(HOURS), max_size=6),
)
def test_many_rooms_with_their_own_zones_and_hours(
    log: list[Step], hours: list[tuple[str, str]]
) -> None:
    """More rooms, each configured first in its own time zone and with its own hours."""
    twins = Twins()
    for index, (opens, closes) in enumerate(hours):
        room_id = f"room-{index}"
        twins.fold(
            RoomConfiguredDecision(
                event_id=uuid4(),
                caused_by=None,
                room_id=room_id,
                center_id=CENTER,
                decided_at=START - timedelta(days=3 * index),
                name=room_id,
                capacity=20,
                booking_mode="shared",
                opens=opens,
                closes=closes,
                timezone=ZONES[index % len(ZONES)],
            )
        )
    for step in log:
        twins.step(step)
    twins.check_states()


# --- the edge cases the shortcuts must get right, spelled out ---------------------------


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def test_a_booking_that_ended_just_before_the_horizon_on_its_day_is_forgotten() -> None:
    """Bookings are dropped a UTC day at a time, but one that ended before the retention
    horizon already counts as forgotten, as when every decision pruned them."""
    twins = Twins(scheduler=False)
    common: dict[str, Any] = {"caused_by": None, "room_id": "room-a", "center_id": CENTER}
    twins.fold(
        RoomConfiguredDecision(
            **common,
            event_id=uuid4(),
            decided_at=at("2026-09-20"),
            name="a",
            capacity=20,
            booking_mode="shared",
            opens="09:00",
            closes="22:00",
            timezone="UTC",
        )
    )
    booking: dict[str, Any] = {
        "member_id": "m1",
        "starts_at": at("2026-09-30", 1),
        "ends_at": at("2026-09-30", 3),
    }
    twins.fold(
        BookingConfirmed(
            **common,
            **booking,
            event_id=uuid4(),
            decided_at=at("2026-09-25"),
            booking_id="b1",
            party_size=1,
        )
    )
    twins.fold(
        BookingCancelled(
            **common, **booking, event_id=uuid4(), decided_at=at("2026-09-25"), booking_id="b2"
        )
    )
    # Horizon: 2026-09-30 05:00, the UTC day both intervals ended on, after their end.
    twins.clock = at("2026-12-01", 5)
    twins.fold(
        CheckinAdmitted(
            **common,
            event_id=uuid4(),
            decided_at=twins.clock,
            kiosk_id="k",
            capacity=20,
            party_size=1,
            occupancy=1,
        )
    )
    room = twins.rooms["room-a"]
    assert room._active("b1") is None and not room._has_ended("b2")
    later = at("2026-12-01", 6)
    twins.fold(  # forgotten: counted, subtracts nothing
        BookingCancelled(**common, **booking, event_id=uuid4(), decided_at=later, booking_id="b1")
    )
    twins.fold(  # its cancellation forgotten: adds its hours
        BookingConfirmed(
            **common,
            **booking,
            event_id=uuid4(),
            decided_at=later,
            booking_id="b2",
            party_size=1,
        )
    )
    twins.check_states()
    # b1's hours stay (its cancellation came too late to find them), b2's are added
    assert room.aggregate("2026-09", later).booked_hours == 4.0


def test_late_configurations_prune_the_periods_as_every_decision_did() -> None:
    """A configuration decided inside a closed month, long ago: the room's and the center's
    periods are pruned then, not only when the reference month moves."""
    twins = Twins(scheduler=True)
    common: dict[str, Any] = {
        "caused_by": None,
        "name": "r",
        "capacity": 20,
        "booking_mode": "shared",
        "timezone": "Asia/Seoul",
    }
    for room in ("room-a", "room-b"):
        twins.fold(
            RoomConfiguredDecision(
                **common,
                event_id=uuid4(),
                room_id=room,
                center_id=CENTER,
                decided_at=at("2026-09-20"),
                opens="09:00",
                closes="22:00",
            )
        )
    # room-c is seen without its center first, with two periods the center learns later
    for day, closes in (("2026-09-21", "20:00"), ("2026-10-02", "21:00")):
        twins.fold(
            RoomConfiguredDecision(
                **common,
                event_id=uuid4(),
                room_id="room-c",
                center_id=None,
                decided_at=at(day),
                opens="09:00",
                closes=closes,
            )
        )
    # room-b changes its hours on the 1st of November: the cutoff day of the pruning below
    twins.fold(
        RoomConfiguredDecision(
            **common,
            event_id=uuid4(),
            room_id="room-b",
            center_id=CENTER,
            decided_at=at("2026-11-01", 1),
            opens="10:00",
            closes="20:00",
        )
    )
    twins.step(Step("admit", "room-a", 110 * DAY, 0, True, 1, 3, 1, False))  # in January
    twins.check_states()
    for room, days_late in (("room-a", 80), ("room-b", 95), ("room-c", 60)):
        twins.step(Step("configure", room, 0, days_late * DAY, True, 1, 0, 1, False))
        twins.check_states()
    twins.step(Step("admit", "room-c", 60, 0, True, 1, 4, 1, True))
    twins.check_states()
    assert len(twins.center.rooms["room-a"].periods) == 1  # pruned at the late configuration
    assert twins.center.rooms["room-b"].periods[0].effective.isoformat() == "2026-11-01"
