"""A plain reference model of the room rules and of the monthly usage, apart from ``domain/``.

Why apart: a checker that called ``domain.capacity.decide`` would share every bug it is
meant to find. This module reads the raw JSON of every input that landed on the input
topics and recomputes, from docs/contract.md, docs/rules.md and docs/usage-statistics.md,
the decisions the service must have made and the monthly figures those decisions imply.
It is written for obviousness, not speed: lists are scanned, nothing is indexed.

It models what the chaos traffic sends (``chaos.traffic``): rooms configured once,
check-ins and check-outs in rooms open around the clock with no booking near, booking
requests and cancels, capacity changes, clock ticks, inputs for unknown rooms (all
answered ``unknown_room``) and unreadable records (dead-lettered). Anything else (a
reconfiguration, sessions, a check-in near a booking, overnight opening hours) is reported
as *unmodelled* instead of guessed, and fails the run. Each rule is one function below, so
a rule that changes (the arrival window, waitlists, overnight rooms and booking ids moved
in issue 9) is changed in one place.

Decisions are made at the input's ``occurred_at`` (``SPACES_DECIDE_AT=event``), so they are
a function of the inputs alone, not of when the service got to them.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

DECISION_NAMESPACE = UUID("9b6f3c1e-6a51-4d1f-8a4e-5c0c2d7b9a10")
"""A decision's ``event_id`` is ``uuid5(DECISION_NAMESPACE, "<input event_id>:<n>")``, ``n``
numbering the decisions one input caused (docs/contract.md, *Deterministic ids*)."""
DEFAULT_TIMEZONE = "Asia/Seoul"

Decision = dict[str, Any]
Position = tuple[str, int, int]
"""(topic, partition, offset) of a record."""

TIME_FIELDS = ("decided_at", "starts_at", "ends_at")
"""Fields compared as instants, whatever offset they were written with."""


@dataclass(frozen=True)
class Policy:
    """The rules' durations (the service's defaults, ``SPACES_*_MINUTES``)."""

    early_arrival: timedelta = timedelta(minutes=15)
    no_show_grace: timedelta = timedelta(minutes=15)
    late_tolerance: timedelta = timedelta(minutes=10)
    walk_in_look_ahead: timedelta = timedelta(days=1)
    """How far ahead bookings keep places from walk-ins in a room that never closes."""


@dataclass(frozen=True)
class Landed:
    """One record as it landed on a topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Record timestamp, ms since the epoch."""
    key: bytes | None
    value: bytes | None

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class InputTopics:
    """The three input topics, in the order the authority breaks timestamp ties."""

    capacity: str = "capacity"
    bookings: str = "bookings"
    checkins: str = "checkins"

    def rank(self, topic: str) -> int:
        return (self.capacity, self.bookings, self.checkins).index(topic)


class Unmodelled(Exception):
    """An input the reference does not judge: the traffic should not have sent it."""


# --------------------------------------------------------------------------- rooms


@dataclass
class Booking:
    booking_id: str
    member_id: str
    party_size: int
    starts_at: datetime
    ends_at: datetime
    status: str = "confirmed"
    """``confirmed``, ``cancelled`` or ``released``."""
    checked_in: bool = False


@dataclass
class Room:
    room_id: str
    center_id: str
    name: str
    capacity: int
    booking_mode: str
    opens: str
    closes: str
    timezone: str
    occupancy: int = 0
    bookings: dict[str, Booking] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    """Booking ids this room answered (any answer): never taken again."""

    def confirmed(self) -> list[Booking]:
        return [b for b in self.bookings.values() if b.status == "confirmed"]


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return value


def _hhmm(text: str) -> time | None:
    """``HH:MM`` as a time; ``24:00`` (midnight at the end of the day) as None."""
    if text == "24:00":
        return None
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


# --------------------------------------------------------------------------- rules, one each


def open_around_the_clock(room: Room) -> bool:
    """``00:00``-``24:00``: one opening ends where the next begins; the room never closes."""
    return room.opens == "00:00" and room.closes == "24:00"


def opening_window(opens: str, closes: str, timezone: str, day: date) -> tuple[datetime, datetime]:
    """The opening that starts on local ``day``, as UTC instants (real elapsed time; a local
    time a DST change skips or repeats is read with ``fold=0``)."""
    tz = ZoneInfo(timezone)
    start_time, end_time = _hhmm(opens), _hhmm(closes)
    if start_time is None:
        raise Unmodelled(f"opens {opens!r}")
    start = datetime.combine(day, start_time, tz)
    if end_time is None:
        end = datetime.combine(day + timedelta(days=1), time(0), tz)
    elif end_time <= start_time:
        raise Unmodelled(f"overnight opening hours {opens}-{closes} (issue 9 is changing them)")
    else:
        end = datetime.combine(day, end_time, tz)
    # In UTC: two datetimes sharing a zone subtract by their wall clocks, ignoring DST.
    return start.astimezone(UTC), end.astimezone(UTC)


def within_opening_hours(room: Room, starts_at: datetime, ends_at: datetime) -> bool:
    """A booking must lie within one opening; in a room open around the clock any does."""
    if open_around_the_clock(room):
        return True
    day = starts_at.astimezone(ZoneInfo(room.timezone)).date()
    start, end = opening_window(room.opens, room.closes, room.timezone, day)
    return start <= starts_at and ends_at <= end


def is_open(room: Room, at: datetime) -> bool:
    if open_around_the_clock(room):
        return True
    day = at.astimezone(ZoneInfo(room.timezone)).date()
    start, end = opening_window(room.opens, room.closes, room.timezone, day)
    return start <= at < end


def persons_held_at_busiest(room: Room, starts_at: datetime, ends_at: datetime) -> int:
    """Most persons the confirmed bookings hold at any instant of ``[starts_at, ends_at)``.

    The load only rises where a booking starts, so the busiest instant is the interval's
    start or some booking's start inside it.
    """
    overlapping = [b for b in room.confirmed() if b.starts_at < ends_at and starts_at < b.ends_at]
    instants = [starts_at] + [b.starts_at for b in overlapping if starts_at < b.starts_at]
    return max(
        sum(b.party_size for b in overlapping if b.starts_at <= t < b.ends_at) for t in instants
    )


def booking_problem(
    room: Room, party: int, starts_at: datetime, ends_at: datetime, now: datetime
) -> str | None:
    """Why a booking request is rejected (the first check that fails), or None."""
    if ends_at <= starts_at:
        return "invalid"
    if starts_at < now:
        return "in_the_past"
    if not within_opening_hours(room, starts_at, ends_at):
        return "outside_opening_hours"
    if party > room.capacity:
        return "over_capacity"
    if room.booking_mode == "exclusive":
        overlaps = any(b.starts_at < ends_at and starts_at < b.ends_at for b in room.confirmed())
        return "overlap" if overlaps else None
    if persons_held_at_busiest(room, starts_at, ends_at) + party > room.capacity:
        return "over_capacity"
    return None


def cancel_problem(room: Room, booking_id: str, member_id: str, now: datetime) -> str | None:
    """Only the booker cancels, only a confirmed booking, only until it ends."""
    booking = room.bookings.get(booking_id)
    if booking is None or booking.status != "confirmed" or booking.member_id != member_id:
        return "unknown_booking"
    if booking.ends_at <= now:
        return "booking_ended"
    return None


def capacity_conflicts(room: Room, now: datetime) -> list[str]:
    """Confirmed bookings not over yet that the room's capacity no longer fits: a party
    above it; in a shared room, a moment of the booking where the persons held exceed it;
    in an exclusive room, another booking overlapping. By (starts_at, booking_id)."""
    pending = sorted(
        (b for b in room.confirmed() if now < b.ends_at), key=lambda b: (b.starts_at, b.booking_id)
    )
    conflicts = []
    for booking in pending:
        if _no_longer_fits(room, booking):
            conflicts.append(booking.booking_id)
    return conflicts


def _no_longer_fits(room: Room, booking: Booking) -> bool:
    if not within_opening_hours(room, booking.starts_at, booking.ends_at):
        return True
    if booking.party_size > room.capacity:
        return True
    if room.booking_mode == "shared":
        return persons_held_at_busiest(room, booking.starts_at, booking.ends_at) > room.capacity
    return any(
        other is not booking
        and other.starts_at < booking.ends_at
        and booking.starts_at < other.ends_at
        for other in room.confirmed()
    )


def checkin_refusal(room: Room, party: int, at: datetime, policy: Policy) -> str | None:
    """Why a walk-in party is denied at ``at``, or None to admit it.

    Only walk-ins far from any booking are modelled: the arrival window and the places
    kept for bookings are rules issue 9 is changing, so a confirmed booking whose window
    could reach ``at``, or that starts within the walk-in look-ahead, is unmodelled.
    """
    if not open_around_the_clock(room):
        raise Unmodelled("a check-in in a room with opening hours (closing check-outs race)")
    horizon = at + policy.walk_in_look_ahead + policy.early_arrival
    for booking in room.confirmed():
        if booking.starts_at - policy.early_arrival <= horizon and at < booking.ends_at:
            raise Unmodelled(f"a check-in near booking {booking.booking_id}")
    if not is_open(room, at):
        return "closed"
    if room.occupancy + party > room.capacity:
        return "room_full"
    return None


def no_shows(room: Room, at: datetime, policy: Policy) -> list[Booking]:
    """Confirmed bookings nobody checked in for by ``starts_at`` + the grace period."""
    due = [
        b for b in room.confirmed() if not b.checked_in and b.starts_at + policy.no_show_grace <= at
    ]
    return sorted(due, key=lambda b: (b.starts_at, b.booking_id))


def closing_checkout_due(room: Room, at: datetime) -> bool:
    """A room open around the clock never closes; others are not modelled with people in."""
    if open_around_the_clock(room):
        return False
    if room.occupancy > 0:
        raise Unmodelled("a clock tick in a room with opening hours and people inside")
    return False


# --------------------------------------------------------------------------- deciding


class _Decider:
    """Numbers the decisions one input causes; fills the common fields."""

    def __init__(
        self, source: str, caused_by: str | None, room_id: str, room: Room | None, now: datetime
    ) -> None:
        self.source = source
        self.caused_by = caused_by
        self.room_id = room_id
        self.center_id = room.center_id if room is not None else None
        self.now = now
        self.out: list[Decision] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.out.append(
            {
                "type": kind,
                "event_id": str(uuid5(DECISION_NAMESPACE, f"{self.source}:{len(self.out)}")),
                "caused_by": self.caused_by,
                "room_id": self.room_id,
                "decided_at": self.now,
                "center_id": self.center_id,
                **fields,
            }
        )


def merged(records: Iterable[Landed], topics: InputTopics) -> Iterator[Landed]:
    """The order the authority decides in: per partition number, the three topics merged
    by record timestamp (ties: capacity, bookings, check-ins), each topic in offset order."""
    queues: dict[int, dict[str, list[Landed]]] = {}
    for record in records:
        queues.setdefault(record.partition, {}).setdefault(record.topic, []).append(record)
    for partition in sorted(queues):
        heads: list[tuple[int, int, int, str]] = []
        lists = queues[partition]
        for topic, landed in lists.items():
            landed.sort(key=lambda r: r.offset)
            heads.append((landed[0].timestamp, topics.rank(topic), 0, topic))
        heapq.heapify(heads)
        while heads:
            _, rank, index, topic = heapq.heappop(heads)
            yield lists[topic][index]
            if index + 1 < len(lists[topic]):
                following = lists[topic][index + 1]
                heapq.heappush(heads, (following.timestamp, rank, index + 1, topic))


@dataclass
class Expected:
    """What the service must have produced from the inputs that landed."""

    decisions: dict[str, Decision]
    """Every decision by its ``event_id``, in the order decided."""
    dead_letters: dict[Position, str]
    """Positions of the input records that must be dead-lettered, and why."""
    occupancy: dict[str, tuple[int, int]]
    """(occupancy, capacity) of every configured room at the end."""
    usage: UsageModel
    unmodelled: list[str]
    inputs: int
    """Distinct inputs (by ``event_id``) other than clock ticks."""
    resends: int
    """Records repeating an ``event_id`` already seen (kiosk and front-end retries)."""
    ticks: int
    unreadable: int


class Reference:
    """Decides the landed inputs as the contract says, one plain rule at a time."""

    def __init__(self, topics: InputTopics, policy: Policy | None = None) -> None:
        self.topics = topics
        self.policy = policy or Policy()
        self.rooms: dict[str, Room] = {}
        self.processed: set[str] = set()
        self.decisions: dict[str, Decision] = {}
        self.dead_letters: dict[Position, str] = {}
        self.unmodelled: list[str] = []
        self.inputs = self.resends = self.ticks = self.unreadable = 0

    def run(self, records: Iterable[Landed]) -> Expected:
        for record in merged(records, self.topics):
            self.feed(record)
        usage = UsageModel()
        for decision in self.decisions.values():
            try:
                usage.fold(decision)
            except Unmodelled as why:
                self.unmodelled.append(f"usage of {decision['type']} {decision['event_id']}: {why}")
        return Expected(
            decisions=self.decisions,
            dead_letters=self.dead_letters,
            occupancy={room_id: (r.occupancy, r.capacity) for room_id, r in self.rooms.items()},
            usage=usage,
            unmodelled=self.unmodelled,
            inputs=self.inputs,
            resends=self.resends,
            ticks=self.ticks,
            unreadable=self.unreadable,
        )

    def feed(self, record: Landed) -> None:
        event = _readable(record)
        if event is None:
            self.unreadable += 1
            self.dead_letters[record.position] = "unreadable"
            return
        if event["type"] == "clock.tick":
            self.ticks += 1
            self._decide(record, event)  # idempotent by nature: never recorded
            return
        event_id = str(event["event_id"])
        if event_id in self.processed:
            self.resends += 1
            return
        self.processed.add(event_id)
        self.inputs += 1
        self._decide(record, event)

    def _decide(self, record: Landed, event: dict[str, Any]) -> None:
        try:
            decided = self.decide(event)
        except Unmodelled as why:
            self.unmodelled.append(f"{record.position} {event.get('type')}: {why}")
            return
        for decision in decided:
            self.decisions[decision["event_id"]] = decision

    def decide(self, event: dict[str, Any]) -> list[Decision]:
        kind = event["type"]
        room_id = str(event["room_id"])
        now = parse_time(event["occurred_at"])  # decide_at=event
        room = self.rooms.get(room_id)
        event_id = str(event["event_id"])
        if kind == "clock.tick":
            d = _Decider(event_id, None, room_id, room, now)
            if room is not None:
                self.tick(room, now, d)
            return d.out
        d = _Decider(event_id, event_id, room_id, room, now)
        if kind == "room.configured":
            self.configure(room, event, d)
        elif kind == "room.capacity_changed":
            if room is None:
                self.reject_unknown_room(event, d)
            else:
                self.change_capacity(room, event, d)
        elif kind == "booking.requested":
            self.request_booking(room, event, d)
        elif kind == "booking.cancel_requested":
            self.cancel_booking(room, event, d)
        elif kind == "checkin":
            self.checkin(room, event, d)
        elif kind == "checkout":
            if room is None:
                self.reject_unknown_room(event, d)
            else:
                self.checkout(room, event, d)
        else:
            raise Unmodelled(f"input type {kind!r}")
        return d.out

    # --- one method per input type ------------------------------------------------------

    def configure(self, room: Room | None, event: dict[str, Any], d: _Decider) -> None:
        if room is not None:
            raise Unmodelled("a room configured twice")
        room = Room(
            room_id=event["room_id"],
            center_id=event["center_id"],
            name=event["name"],
            capacity=event["capacity"],
            booking_mode=event["booking_mode"],
            opens=event["opens"],
            closes=event["closes"],
            timezone=event.get("timezone") or DEFAULT_TIMEZONE,
        )
        self.rooms[room.room_id] = room
        d.center_id = room.center_id
        d.add(
            "room.configured",
            name=room.name,
            capacity=room.capacity,
            booking_mode=room.booking_mode,
            opens=room.opens,
            closes=room.closes,
            timezone=room.timezone,
            conflicting_booking_ids=[],
            conflicting_session_ids=[],
            occupancy_over_capacity=0,
        )

    def reject_unknown_room(self, event: dict[str, Any], d: _Decider) -> None:
        """A check-out or a capacity change for a room never configured is answered
        ``unknown_room`` (v1.1; v1 dead-lettered both), so a kiosk is not left waiting."""
        if event["type"] == "checkout":
            d.add(
                "checkout.rejected",
                kiosk_id=event["kiosk_id"],
                party_size=event["party_size"],
                member_id=event.get("member_id"),
                reason="unknown_room",
            )
        else:
            d.add("capacity.rejected", capacity=event["capacity"], reason="unknown_room")

    def change_capacity(self, room: Room, event: dict[str, Any], d: _Decider) -> None:
        previous = room.capacity
        room.capacity = event["capacity"]
        d.add(
            "capacity.changed",
            capacity=room.capacity,
            previous_capacity=previous,
            reason=event["reason"],
            conflicting_booking_ids=capacity_conflicts(room, d.now),
            conflicting_session_ids=[],
            occupancy_over_capacity=max(0, room.occupancy - room.capacity),
        )

    def request_booking(self, room: Room | None, event: dict[str, Any], d: _Decider) -> None:
        booking_id, member_id = event["booking_id"], event["member_id"]
        starts_at, ends_at = parse_time(event["starts_at"]), parse_time(event["ends_at"])
        party = event["party_size"]
        if room is None:
            problem: str | None = "unknown_room"
        elif booking_id in room.answered:
            problem = "duplicate_booking_id"
        else:
            problem = booking_problem(room, party, starts_at, ends_at, d.now)
            room.answered.add(booking_id)
        if problem is not None:
            d.add("booking.rejected", booking_id=booking_id, member_id=member_id, reason=problem)
            return
        assert room is not None
        room.bookings[booking_id] = Booking(booking_id, member_id, party, starts_at, ends_at)
        d.add(
            "booking.confirmed",
            booking_id=booking_id,
            member_id=member_id,
            party_size=party,
            starts_at=starts_at,
            ends_at=ends_at,
        )

    def cancel_booking(self, room: Room | None, event: dict[str, Any], d: _Decider) -> None:
        booking_id, member_id = event["booking_id"], event["member_id"]
        if room is None:
            problem: str | None = "unknown_room"
        else:
            problem = cancel_problem(room, booking_id, member_id, d.now)
        if problem is not None:
            d.add("booking.rejected", booking_id=booking_id, member_id=member_id, reason=problem)
            return
        assert room is not None
        booking = room.bookings[booking_id]
        booking.status = "cancelled"
        d.add(
            "booking.cancelled",
            booking_id=booking_id,
            member_id=member_id,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
        )

    def checkin(self, room: Room | None, event: dict[str, Any], d: _Decider) -> None:
        if event.get("booking_id") is not None or event.get("session_id") is not None:
            raise Unmodelled("a check-in naming a booking or a session")
        at = parse_time(event["occurred_at"])
        party = event["party_size"]
        fields = {
            "kiosk_id": event["kiosk_id"],
            "party_size": party,
            "member_id": event.get("member_id"),
            "booking_id": None,
            "session_id": None,
            "late": d.now - at > self.policy.late_tolerance,
            "attended_booking_id": None,
        }
        if room is None:
            d.add("checkin.denied", **fields, occupancy=0, capacity=0, reason="unknown_room")
            return
        refusal = checkin_refusal(room, party, at, self.policy)
        if refusal is not None:
            d.add(
                "checkin.denied",
                **fields,
                occupancy=room.occupancy,
                capacity=room.capacity,
                reason=refusal,
            )
            return
        room.occupancy += party
        d.add("checkin.admitted", **fields, occupancy=room.occupancy, capacity=room.capacity)

    def checkout(self, room: Room, event: dict[str, Any], d: _Decider) -> None:
        room.occupancy = max(0, room.occupancy - event["party_size"])
        d.add(
            "checkout.recorded",
            kiosk_id=event["kiosk_id"],
            party_size=event["party_size"],
            member_id=event.get("member_id"),
            occupancy=room.occupancy,
            capacity=room.capacity,
        )

    def tick(self, room: Room, at: datetime, d: _Decider) -> None:
        for booking in no_shows(room, at, self.policy):
            booking.status = "released"
            d.add(
                "booking.released",
                booking_id=booking.booking_id,
                member_id=booking.member_id,
                starts_at=booking.starts_at,
                ends_at=booking.ends_at,
            )
        closing_checkout_due(room, at)


def _readable(record: Landed) -> dict[str, Any] | None:
    """The input as a JSON object, or None when the contract cannot read it (not JSON, not
    an object, no type, or a key that is not its ``room_id``)."""
    try:
        event = json.loads(record.value or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    if key != event.get("room_id"):
        return None
    return event


# --------------------------------------------------------------------------- monthly usage


ROOM_FIELDS = (
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_hours",
    "visits",
    "checkins_denied",
    "unique_members",
    "peak_occupancy",
    "bookings_attended",
    "person_hours",
    "open_hours",
)
"""The ``usage-monthly`` fields of a room the checker compares: pure functions of the
decisions. (``utilization`` and friends are ratios of these; ``capacity_hours`` depends on
how several capacity changes on one day count, which is not settled.)"""
CENTER_FIELDS = tuple(name for name in ROOM_FIELDS if name != "peak_occupancy")
"""A center's peak is the sum of its rooms' occupancies at some decision: it depends on how
the statistics interleaves rooms of different partitions, so it is not compared."""
FLOAT_FIELDS = ("booked_hours", "person_hours", "open_hours")


@dataclass
class _Month:
    bookings_confirmed: int = 0
    bookings_rejected: int = 0
    bookings_cancelled: int = 0
    no_shows: int = 0
    booked_seconds: float = 0.0
    visits: int = 0
    checkins_denied: int = 0
    members: set[str] = field(default_factory=set)
    peak_occupancy: int = 0
    bookings_attended: int = 0
    person_seconds: float = 0.0


@dataclass
class _RoomUsage:
    timezone: str = DEFAULT_TIMEZONE
    center_id: str | None = None
    periods: list[tuple[date, str, str]] = field(default_factory=list)
    """(first local day, opens, closes) of each configuration."""
    months: dict[str, _Month] = field(default_factory=dict)
    active: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    """Confirmed bookings neither cancelled nor released: their hours count."""
    occupancy: int = 0
    since: datetime | None = None

    def month(self, key: str) -> _Month:
        return self.months.setdefault(key, _Month())

    def month_of(self, at: datetime) -> str:
        local = at.astimezone(ZoneInfo(self.timezone))
        return f"{local.year:04d}-{local.month:02d}"


def split_by_month(starts_at: datetime, ends_at: datetime, timezone: str) -> dict[str, float]:
    """Whole seconds of ``[starts_at, ends_at)`` in each local month.

    Whole: the figures are kept in (person-)seconds, each interval's part of a month rounded
    to the second (docs/usage-statistics.md: "kept exact in person-seconds").
    """
    tz = ZoneInfo(timezone)
    out: dict[str, float] = {}
    cursor = starts_at.astimezone(UTC)  # UTC: see opening_window
    while cursor < ends_at:
        local = cursor.astimezone(tz)
        following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
        edge = datetime.combine(following, time(0), tz).astimezone(UTC)
        until = min(edge, ends_at)
        key = f"{local.year:04d}-{local.month:02d}"
        seconds = round((until - cursor).total_seconds())
        if seconds > 0:
            out[key] = out.get(key, 0.0) + seconds
        cursor = until
    return out


class UsageModel:
    """The monthly figures the decisions imply (docs/usage-statistics.md, *Definitions*)."""

    def __init__(self) -> None:
        self.rooms: dict[str, _RoomUsage] = {}

    def fold(self, decision: Decision) -> None:
        room = self.rooms.setdefault(decision["room_id"], _RoomUsage())
        if decision["center_id"] is not None:
            room.center_id = decision["center_id"]
        kind = decision["type"]
        at: datetime = decision["decided_at"]
        if kind == "room.configured":
            room.timezone = decision["timezone"]
            day = at.astimezone(ZoneInfo(room.timezone)).date()
            room.periods = [p for p in room.periods if p[0] != day]
            room.periods.append((day, decision["opens"], decision["closes"]))
        elif kind == "booking.confirmed":
            month = room.month(room.month_of(decision["starts_at"]))
            month.bookings_confirmed += 1
            month.members.add(decision["member_id"])
            if decision["booking_id"] in room.active:
                raise Unmodelled("a booking confirmed twice")
            interval = (decision["starts_at"], decision["ends_at"])
            room.active[decision["booking_id"]] = interval
            self._add_hours(room, interval, 1)
        elif kind == "booking.rejected":
            room.month(room.month_of(at)).bookings_rejected += 1
        elif kind in ("booking.cancelled", "booking.released"):
            month = room.month(room.month_of(decision["starts_at"]))
            if kind == "booking.cancelled":
                month.bookings_cancelled += 1
            else:
                month.no_shows += 1
            if decision["booking_id"] in room.active:
                self._add_hours(room, room.active.pop(decision["booking_id"]), -1)
        elif kind == "checkin.admitted":
            month = room.month(room.month_of(at))
            month.visits += decision["party_size"]
            if decision["member_id"] is not None:
                month.members.add(decision["member_id"])
            if decision["attended_booking_id"] is not None:
                raise Unmodelled("an attended booking")
            self._occupancy(room, decision["occupancy"], at)
        elif kind == "checkin.denied":
            room.month(room.month_of(at)).checkins_denied += 1
        elif kind == "checkout.recorded":
            if decision["kiosk_id"] is None:
                raise Unmodelled("a closing check-out")
            self._occupancy(room, decision["occupancy"], at)

    @staticmethod
    def _add_hours(room: _RoomUsage, interval: tuple[datetime, datetime], sign: int) -> None:
        for key, seconds in split_by_month(*interval, room.timezone).items():
            room.month(key).booked_seconds += sign * seconds

    @staticmethod
    def _occupancy(room: _RoomUsage, occupancy: int, at: datetime) -> None:
        """Persons × time since the last occupancy decision; time never runs backwards."""
        if room.since is not None and room.occupancy > 0 and at > room.since:
            for key, seconds in split_by_month(room.since, at, room.timezone).items():
                room.month(key).person_seconds += room.occupancy * seconds
        room.since = at if room.since is None else max(room.since, at)
        room.occupancy = max(0, occupancy)
        month = room.month(room.month_of(at))
        month.peak_occupancy = max(month.peak_occupancy, room.occupancy)

    def open_hours(self, room: _RoomUsage, month: str) -> float:
        """Each local day of ``month`` on or after the first configuration: the real hours
        of the opening that starts that day, with the hours in force that day."""
        if not room.periods:
            return 0.0
        year, number = (int(part) for part in month.split("-"))
        day = date(year, number, 1)
        seconds = 0.0
        periods = sorted(room.periods)
        while day.month == number:
            in_force = [p for p in periods if p[0] <= day]
            if in_force:
                _, opens, closes = in_force[-1]
                start, end = opening_window(opens, closes, room.timezone, day)
                seconds += (end - start).total_seconds()
            day += timedelta(days=1)
        return seconds / 3600

    def keys(self) -> set[str]:
        """Every ``usage-monthly`` key with activity in the reference."""
        out: set[str] = set()
        for room_id, room in self.rooms.items():
            for month in room.months:
                out.add(f"room:{room_id}:{month}")
                if room.center_id is not None:
                    out.add(f"center:{room.center_id}:{month}")
        return out

    def expected(self, key: str) -> dict[str, float | int]:
        """The compared fields of ``room:<id>:<month>`` or ``center:<id>:<month>`` (zeros
        and the open hours for a month without decisions)."""
        scope, ident, month = key.split(":")
        if scope == "room":
            rooms = [self.rooms.get(ident, _RoomUsage())]
            names: tuple[str, ...] = ROOM_FIELDS
        else:
            rooms = [r for r in self.rooms.values() if r.center_id == ident]
            names = CENTER_FIELDS
        stats = [room.months.get(month, _Month()) for room in rooms]
        members: set[str] = set()
        for one in stats:
            members |= one.members
        values: dict[str, float | int] = {
            "bookings_confirmed": sum(s.bookings_confirmed for s in stats),
            "bookings_rejected": sum(s.bookings_rejected for s in stats),
            "bookings_cancelled": sum(s.bookings_cancelled for s in stats),
            "no_shows": sum(s.no_shows for s in stats),
            "booked_hours": round(sum(s.booked_seconds for s in stats) / 3600, 4),
            "visits": sum(s.visits for s in stats),
            "checkins_denied": sum(s.checkins_denied for s in stats),
            "unique_members": len(members),
            "peak_occupancy": max((s.peak_occupancy for s in stats), default=0),
            "bookings_attended": sum(s.bookings_attended for s in stats),
            "person_hours": round(sum(s.person_seconds for s in stats) / 3600, 4),
            "open_hours": round(sum(self.open_hours(room, month) for room in rooms), 4),
        }
        return {name: values[name] for name in names}
