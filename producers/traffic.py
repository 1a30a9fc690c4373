"""Seeded, realistic traffic for a community center: the demo's and the tests' input.

Pure: no Kafka and no database. Everything is drawn from one ``random.Random`` seeded
from the arguments, so the same call returns the same events, event ids included.

The default center is the Seosan Citizens Center (서산시민센터) as the seed documents
describe it: club rooms of up to 15 people, a shared office, a shared kitchen and a book
café on the GongyuNuri portal, about 400 citizens a month; and, as in Gwangju's village
education, one-day classes of at most 20 residents.

``generate`` returns one ``Day`` per local date: that day's input events in time order,
and separately the clock ticks of the day, which are meant to be sent *after* the day's
events (the demo replays a day at a time). The generator keeps its own tally of who is
inside each room, predicting the rules' admissions and denials, so it never checks out
more people than it checked in, and ``Day.expected_visits`` is what it expects the rules
to admit that day.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from producers.ids import new_event_id
from schemas.common import parse_hhmm
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingMode,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomConfigured,
    SessionScheduled,
)

RoomKind = Literal["club", "office", "kitchen", "bookcafe", "edu"]
BookingKind = Literal["good", "outside_opening_hours", "in_the_past", "overlap"]

_TICK_NAMESPACE = uuid.UUID("3f0c6a52-8f0e-4a8e-9a35-2d8b7c1e4b61")
_CONFIG_NAMESPACE = uuid.UUID("a6d2f1c4-0b7e-4f55-8c19-6e3a9d0b2f77")

DAYTIME = (7 * 60 + 30, 22 * 60)
"""Requests from members (web, phone, counter) happen between 07:30 and 22:00 local time."""
TICK_EVERY = timedelta(hours=2)
CANCEL_SHARE = 0.10
NO_SHOW_SHARE = 0.08
OUTSIDE_HOURS_SHARE = 0.02
IN_THE_PAST_SHARE = 0.015
OVERLAP_SHARE = 0.05
"""Share of confirmed exclusive bookings someone else then asks to overlap."""
FORGETFUL = 0.03
"""Share of walk-in parties that leave without checking out."""

SESSION_TITLES = (
    "원데이 클래스: 천연 비누 만들기 (One-day class: natural soap making)",
    "원데이 클래스: 가죽 공예 (One-day class: leather craft)",
    "원데이 클래스: 손뜨개 (One-day class: hand knitting)",
    "원데이 클래스: 제철 반찬 (One-day class: seasonal side dishes)",
    "마을교육: 협치 마을 이해하기 (Village education: cooperative governance)",
    "마을교육: 마을 의제 찾기 (Village education: finding village agendas)",
    "나눔 자원봉사 오리엔테이션 (Sharing volunteers' orientation)",
    "공유누리 활용 교육 (Using the GongyuNuri sharing portal)",
)


@dataclass(frozen=True)
class WeeklyGroup:
    """A club that meets every week in the same slot; its leader books it each week."""

    label: str
    weekday: int
    """Monday is 0."""
    starts: str
    minutes: int
    party: tuple[int, int]


@dataclass(frozen=True)
class RoomPlan:
    """One room and how it is used; rates are means per day."""

    room_id: str
    name: str
    kind: RoomKind
    capacity: int
    booking_mode: BookingMode
    opens: str
    closes: str
    kiosk_id: str
    weekly: tuple[WeeklyGroup, ...] = ()
    bookings_weekday: float = 0.0
    """Mean one-off bookings per weekday, besides the weekly groups."""
    bookings_weekend: float = 0.0
    party: tuple[int, int] = (1, 1)
    """Smallest and largest one-off booking party."""
    durations: tuple[int, ...] = (120,)
    """One-off booking lengths in minutes."""
    walk_ins_weekday: float = 0.0
    """Mean walk-in parties per weekday (rooms without a booking use only)."""
    walk_ins_weekend: float = 0.0
    monthly_book_talk: bool = False
    """A book talk on the last Saturday afternoon of the month that fills the room."""
    busy_afternoon_weekend: float = 0.0
    """Chance of another crowded weekend afternoon."""
    group_visit_chance: float = 0.0
    """Chance per day of a large group walking in (a school class, a reading circle)."""
    session_saturdays: tuple[int, ...] = ()
    """Saturdays of the month (1-5) that always have a one-day class, e.g. the 2nd and 4th."""
    session_saturday: float = 0.0
    """Chance of a one-day class on any other Saturday."""
    session_sunday: float = 0.0
    session_seats: int = 0


@dataclass(frozen=True)
class CenterPlan:
    center_id: str
    name: str
    rooms: tuple[RoomPlan, ...]
    timezone: str = "Asia/Seoul"
    members: int = 400
    """Members ``m-0001`` .. ``m-NNNN`` book, enroll and check in."""

    def room(self, room_id: str) -> RoomPlan:
        for room in self.rooms:
            if room.room_id == room_id:
                return room
        raise KeyError(room_id)


@dataclass
class Day:
    """One local day: its input events in time order and, separately, its clock ticks."""

    date: dt.date
    events: list[AnyInput]
    ticks: list[ClockTick]
    expected_visits: int = 0
    """Persons the generator's own tally expects the rules to admit this day."""


def seosan_center() -> CenterPlan:
    """서산시민센터 (Seosan Citizens Center), Asia/Seoul: about 400 visitors a month."""
    return CenterPlan(
        center_id="seosan",
        name="서산시민센터 (Seosan Citizens Center)",
        rooms=(
            _club(
                "seosan.club-1",
                "동아리방 1 (Club room 1)",
                WeeklyGroup("시니어 합창 (Seniors' choir)", 1, "10:00", 120, (8, 14)),
                WeeklyGroup(
                    "마을 공동체 모임 (Village community meeting)", 3, "19:00", 120, (5, 10)
                ),
            ),
            _club(
                "seosan.club-2",
                "동아리방 2 (Club room 2)",
                WeeklyGroup("청년 독서 모임 (Youth reading club)", 0, "19:30", 120, (4, 9)),
                WeeklyGroup(
                    "공익활동 스터디 (Public-interest study group)", 2, "14:00", 120, (3, 8)
                ),
            ),
            RoomPlan(
                room_id="seosan.office",
                name="공유오피스 (Shared office)",
                kind="office",
                capacity=10,
                booking_mode="shared",
                opens="09:00",
                closes="18:00",
                kiosk_id="seosan.kiosk-2f",
                bookings_weekday=0.55,
                bookings_weekend=0.1,
                party=(1, 3),
                durations=(120, 180, 240, 360),
            ),
            RoomPlan(
                room_id="seosan.kitchen",
                name="공유주방 (Shared kitchen)",
                kind="kitchen",
                capacity=12,
                booking_mode="exclusive",
                opens="10:00",
                closes="20:00",
                kiosk_id="seosan.kiosk-1f",
                weekly=(WeeklyGroup("반찬 나눔 (Side-dish sharing)", 2, "10:00", 150, (6, 10)),),
                bookings_weekday=0.08,
                bookings_weekend=0.2,
                party=(3, 12),
                durations=(120, 150, 180),
            ),
            RoomPlan(
                room_id="seosan.bookcafe",
                name="공유 북카페 (Shared book café)",
                kind="bookcafe",
                capacity=30,
                booking_mode="shared",
                opens="09:00",
                closes="21:00",
                kiosk_id="seosan.kiosk-2f",
                walk_ins_weekday=1.0,
                walk_ins_weekend=2.4,
                monthly_book_talk=True,
                busy_afternoon_weekend=0.03,
                group_visit_chance=0.015,
            ),
            RoomPlan(
                room_id="seosan.edu",
                name="마을교육실 (Village education room)",
                kind="edu",
                capacity=20,
                booking_mode="exclusive",
                opens="09:00",
                closes="22:00",
                kiosk_id="seosan.kiosk-1f",
                bookings_weekday=0.06,
                bookings_weekend=0.04,
                party=(8, 20),
                durations=(90, 120),
                session_saturdays=(2, 4),
                session_saturday=0.05,
                session_sunday=0.05,
                session_seats=20,
            ),
        ),
    )


def _club(room_id: str, name: str, *weekly: WeeklyGroup) -> RoomPlan:
    return RoomPlan(
        room_id=room_id,
        name=name,
        kind="club",
        capacity=15,
        booking_mode="exclusive",
        opens="09:00",
        closes="22:00",
        kiosk_id="seosan.kiosk-1f",
        weekly=weekly,
        bookings_weekday=0.12,
        bookings_weekend=0.15,
        party=(3, 15),
        durations=(60, 90, 120, 120, 180),
    )


def configuration(center: CenterPlan, at: datetime) -> list[RoomConfigured]:
    """``room.configured`` for every room, at ``at`` (before the first day's first event:
    e.g. 06:00 local on the first day; requests start at 07:30)."""
    return [
        RoomConfigured(
            event_id=uuid.uuid5(_CONFIG_NAMESPACE, f"{room.room_id}|{at.isoformat()}"),
            occurred_at=at,
            room_id=room.room_id,
            center_id=center.center_id,
            name=room.name,
            capacity=room.capacity,
            booking_mode=room.booking_mode,
            opens=room.opens,
            closes=room.closes,
            timezone=center.timezone,
            center_name=center.name,
        )
        for room in center.rooms
    ]


def ticks_of(center: CenterPlan, day: dt.date) -> list[ClockTick]:
    """Per room: every 2 hours after opening, and one a minute after closing."""
    tz = ZoneInfo(center.timezone)
    ticks: list[ClockTick] = []
    for room in center.rooms:
        opens, closes = _local(tz, day, parse_hhmm(room.opens)), _local(tz, day, _closes(room))
        times = []
        at = opens + TICK_EVERY
        while at < closes:
            times.append(at)
            at += TICK_EVERY
        times.append(closes + timedelta(minutes=1))
        ticks.extend(
            ClockTick(
                event_id=uuid.uuid5(_TICK_NAMESPACE, f"{room.room_id}|{t.isoformat()}"),
                occurred_at=t,
                room_id=room.room_id,
            )
            for t in times
        )
    ticks.sort(key=lambda tick: tick.occurred_at)
    return ticks


def generate(center: CenterPlan, start: dt.date, end: dt.date, seed: int) -> list[Day]:
    """Traffic for the local days ``start`` .. ``end`` (both included).

    Nothing is requested before ``start``: bookings early in the range are requested on
    the first day, for later that day or the days after.
    """
    if end < start:
        raise ValueError("end must not be before start")
    return _Traffic(center, start, end, seed).run()


def busy_hour(center: CenterPlan, start: datetime, seed: int) -> list[AnyInput]:
    """An hour of kiosk traffic from ``start``: walk-ins to the book café and club rooms.

    Assumes the rooms are empty and not booked at ``start`` (e.g. right after
    ``configuration``); parties that would not fit are sent anyway and get ``room_full``.
    Only parties this hour admitted check out. The book café must be open all hour.
    """
    rng = random.Random(f"busy:{center.center_id}:{start.isoformat()}:{seed}")
    tz = ZoneInfo(center.timezone)
    local = start.astimezone(tz)
    minute = local.hour * 60 + local.minute
    end = local + timedelta(hours=1)
    rooms = [
        room
        for room in center.rooms
        if room.kind in ("bookcafe", "club")
        and parse_hhmm(room.opens) <= minute
        and minute + 60 <= _closes(room)
    ]
    if not any(room.kind == "bookcafe" for room in rooms):
        raise ValueError("busy_hour needs the book café open for the whole hour")
    members = _members(center)
    out: list[tuple[datetime, int, AnyInput]] = []

    def new_id(at: datetime) -> uuid.UUID:
        return new_event_id(at, rng.getrandbits(128))  # as many bits as before: same traffic

    def emit(event: AnyInput) -> None:
        out.append((event.occurred_at, len(out), event))

    def arrival() -> datetime:
        return local + timedelta(seconds=rng.randrange(0, 3540))

    for room in rooms:
        visits: list[_Visit] = []
        if room.kind == "bookcafe":
            for _ in range(rng.randint(16, 22)):
                at = arrival()
                party = rng.choices((1, 2, 3, 4, 5, 6), weights=(38, 30, 14, 10, 5, 3))[0]
                stay = timedelta(minutes=rng.randint(15, 90))
                member = rng.choice(members) if rng.random() < 0.5 else None
                visits.append(_Visit(room, at, at + stay, party, member))
            # A class or a reading circle arriving together.
            at = arrival()
            stay = timedelta(minutes=rng.randint(30, 90))
            visits.append(_Visit(room, at, at + stay, rng.randint(6, 10), rng.choice(members)))
        else:
            for _ in range(rng.randint(2, 3)):
                at = arrival()
                stay = timedelta(minutes=rng.randint(20, 50))
                visits.append(_Visit(room, at, at + stay, rng.randint(4, 12), rng.choice(members)))
        _simulate(room, visits, [], [], end, new_id, emit)
    out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in out]


# --- internals ------------------------------------------------------------------------


def _members(center: CenterPlan) -> list[str]:
    return [f"m-{n:04d}" for n in range(1, center.members + 1)]


def _closes(room: RoomPlan) -> int:
    return parse_hhmm(room.closes)


def _local(tz: ZoneInfo, day: dt.date, minutes: float) -> datetime:
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return midnight + timedelta(minutes=minutes)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


@dataclass
class _Booking:
    room: RoomPlan
    booking_id: str
    member_id: str
    party: int
    starts_at: datetime
    ends_at: datetime
    requested_at: datetime
    kind: BookingKind = "good"
    cancelled_at: datetime | None = None
    no_show: bool = False
    checked_in: bool = False

    def holds(self, at: datetime) -> bool:
        """Confirmed (as the generator expects the rules to decide) and not cancelled."""
        return (
            self.kind == "good"
            and self.requested_at <= at
            and (self.cancelled_at is None or at < self.cancelled_at)
        )


@dataclass
class _Session:
    room: RoomPlan
    session_id: str
    starts_at: datetime
    ends_at: datetime
    scheduled_at: datetime
    enrolled: list[str] = field(default_factory=list)


@dataclass
class _Visit:
    room: RoomPlan
    at: datetime
    leaves_at: datetime | None
    """None: still inside at closing (the closing tick checks them out)."""
    party: int
    member_id: str | None = None
    booking: _Booking | None = None
    session: _Session | None = None


EARLY = timedelta(minutes=15)
"""How early a booker or attendee may check in (the rules' ``early_arrival``)."""


def _deny_reason(
    room: RoomPlan,
    visit: _Visit,
    occupancy: int,
    bookings: Sequence[_Booking],
    sessions: Sequence[_Session],
    closes_at: datetime,
) -> tuple[str | None, _Booking | None]:
    """The generator's model of the check-in rule: why it is denied, and the own booking."""
    at = visit.at
    if at >= closes_at:
        return "closed", None
    active = [b for b in bookings if b.holds(at) and b.starts_at - EARLY <= at < b.ends_at]
    running = [
        s for s in sessions if s.scheduled_at <= at and s.starts_at - EARLY <= at < s.ends_at
    ]
    own = next(
        (
            b
            for b in active
            if (visit.booking is not None and b.booking_id == visit.booking.booking_id)
            or (visit.member_id is not None and b.member_id == visit.member_id)
        ),
        None,
    )
    own_session = next(
        (
            s
            for s in running
            if (visit.session is not None and s.session_id == visit.session.session_id)
            or (visit.member_id is not None and visit.member_id in s.enrolled)
        ),
        None,
    )
    started = any(b.starts_at <= at for b in active) or any(s.starts_at <= at for s in running)
    if room.booking_mode == "exclusive" and own is None and own_session is None and started:
        return "reserved", None
    held = 0
    if room.booking_mode == "shared":
        held = sum(
            b.party for b in active if not b.checked_in and b.starts_at <= at and b is not own
        )
    if occupancy + visit.party + held > room.capacity:
        return "room_full", None
    return None, own


def _simulate(
    room: RoomPlan,
    visits: list[_Visit],
    bookings: Sequence[_Booking],
    sessions: Sequence[_Session],
    closes_at: datetime,
    new_id: Callable[[datetime], uuid.UUID],
    emit: Callable[[AnyInput], None],
) -> int:
    """Check-ins and check-outs of one room for one day in time order; persons admitted.

    Keeps the occupancy tally: a party the rules will deny never checks out, and nobody
    checks out who is not inside.
    """
    queue: list[tuple[datetime, int, int, _Visit]] = []
    for n, visit in enumerate(sorted(visits, key=lambda v: v.at)):
        heapq.heappush(queue, (visit.at, 1, n, visit))
    occupancy = admitted = 0
    counter = len(visits)
    while queue:
        at, is_checkin, _, visit = heapq.heappop(queue)
        member = visit.member_id
        if not is_checkin:
            emit(
                Checkout(
                    event_id=new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    kiosk_id=room.kiosk_id,
                    party_size=visit.party,
                    member_id=member,
                )
            )
            occupancy -= visit.party
            continue
        reason, own = _deny_reason(room, visit, occupancy, bookings, sessions, closes_at)
        emit(
            Checkin(
                event_id=new_id(at),
                occurred_at=at,
                room_id=room.room_id,
                kiosk_id=room.kiosk_id,
                party_size=visit.party,
                member_id=member,
                booking_id=visit.booking.booking_id if visit.booking else None,
                session_id=visit.session.session_id if visit.session else None,
            )
        )
        if reason is not None:
            continue
        occupancy += visit.party
        admitted += visit.party
        if own is not None:
            own.checked_in = True
        if visit.leaves_at is not None and visit.leaves_at < closes_at:
            counter += 1
            heapq.heappush(queue, (visit.leaves_at, 0, counter, visit))
    return admitted


class _Traffic:
    def __init__(self, center: CenterPlan, start: dt.date, end: dt.date, seed: int) -> None:
        self.center = center
        self.tz = ZoneInfo(center.timezone)
        self.start, self.end = start, end
        self.rng = random.Random(f"traffic:{center.center_id}:{start}:{end}:{seed}")
        self.begin = _local(self.tz, start, 0)
        self.members = _members(center)
        self.regulars = {
            room.room_id: self.rng.sample(self.members, k=min(24, len(self.members)))
            for room in center.rooms
        }
        self.out: list[tuple[datetime, int, AnyInput]] = []
        self.bookings: dict[tuple[str, dt.date], list[_Booking]] = {}
        self.sessions: dict[tuple[str, dt.date], list[_Session]] = {}
        self.visits: dict[tuple[str, dt.date], list[_Visit]] = {}
        self.holds: dict[tuple[str, dt.date], list[tuple[datetime, datetime, int]]] = {}

    # --- plumbing -----------------------------------------------------------------------

    def new_id(self, at: datetime) -> uuid.UUID:
        """Version 7 (``producers.ids``), carrying the input's time; seeded random bits."""
        return new_event_id(at, self.rng.getrandbits(128))  # the same draws as before

    def emit(self, event: AnyInput) -> None:
        self.out.append((event.occurred_at, len(self.out), event))

    def at(self, day: dt.date, minutes: float) -> datetime:
        return _local(self.tz, day, minutes)

    def seconds(self, around: datetime, lo: int, hi: int) -> datetime:
        return around + timedelta(seconds=self.rng.randint(lo, hi))

    def between(self, lo: datetime, hi: datetime) -> datetime | None:
        """A random whole-second instant in ``[lo, hi)`` at daytime (07:30-22:00 local)."""
        if hi <= lo:
            return None
        windows: list[tuple[datetime, int]] = []
        day = lo.astimezone(self.tz).date()
        last = hi.astimezone(self.tz).date()
        while day <= last:
            s = max(self.at(day, DAYTIME[0]), lo)
            e = min(self.at(day, DAYTIME[1]), hi)
            length = int((e - s).total_seconds())
            if length >= 1:
                windows.append((s, length))
            day += timedelta(days=1)
        total = sum(length for _, length in windows)
        if total < 1:
            return None
        pick = self.rng.randrange(total)
        for s, length in windows:
            if pick < length:
                return (s + timedelta(seconds=pick)).replace(microsecond=0)
            pick -= length
        raise AssertionError("unreachable")  # pragma: no cover

    def member(self, room: RoomPlan) -> str:
        if self.rng.random() < 0.8:
            return self.rng.choice(self.regulars[room.room_id])
        return self.rng.choice(self.members)

    # --- the run ------------------------------------------------------------------------

    def run(self) -> list[Day]:
        days = [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]
        for day in days:
            for room in self.center.rooms:
                key = (room.room_id, day)
                self.bookings[key], self.sessions[key] = [], []
                self.visits[key], self.holds[key] = [], []
                self.plan_sessions(room, day)
                self.plan_bookings(room, day)
                self.plan_walk_ins(room, day)
        expected: dict[dt.date, int] = dict.fromkeys(days, 0)
        for day in days:
            for room in self.center.rooms:
                key = (room.room_id, day)
                expected[day] += _simulate(
                    room,
                    self.visits[key],
                    sorted(self.bookings[key], key=lambda b: b.requested_at),
                    self.sessions[key],
                    self.at(day, _closes(room)),
                    self.new_id,
                    self.emit,
                )
        by_day: dict[dt.date, list[tuple[datetime, int, AnyInput]]] = {d: [] for d in days}
        for item in self.out:
            local_day = item[0].astimezone(self.tz).date()
            if local_day not in by_day:  # pragma: no cover - a bug in the generator
                raise AssertionError(f"event outside the range: {item[2]!r}")
            by_day[local_day].append(item)
        return [
            Day(
                date=day,
                events=[e for _, _, e in sorted(by_day[day], key=lambda i: (i[0], i[1]))],
                ticks=ticks_of(self.center, day),
                expected_visits=expected[day],
            )
            for day in days
        ]

    # --- rooms and slots ----------------------------------------------------------------

    def fits(self, room: RoomPlan, day: dt.date, s: datetime, e: datetime, persons: int) -> bool:
        """Whether a hold fits next to what is planned, with a margin so that one party
        can leave before the next one arrives."""
        holds = self.holds[(room.room_id, day)]
        pad = timedelta(minutes=30)
        if room.booking_mode == "exclusive":
            return all(not (s < he + pad and hs < e + pad) for hs, he, _ in holds)
        lo, hi = s - pad, e + pad
        edges: list[tuple[datetime, int]] = []
        for hs, he, p in holds:
            if hs - pad < hi and lo < he + pad:
                edges += [(max(hs - pad, lo), p), (min(he + pad, hi), -p)]
        edges.sort(key=lambda edge: (edge[0], edge[1]))
        current = peak = 0
        for _, delta in edges:
            current += delta
            peak = max(peak, current)
        return peak + persons <= room.capacity

    def pick_slot(self, room: RoomPlan, day: dt.date) -> tuple[datetime, datetime] | None:
        duration = self.rng.choice(room.durations)
        opens, closes = parse_hhmm(room.opens), _closes(room)
        first = -(-opens // 30) * 30
        starts = list(range(first, closes - duration + 1, 30))
        if not starts:
            return None
        weekday = day.weekday() < 5
        weights = [self.start_weight(room, weekday, m) for m in starts]
        minute = self.rng.choices(starts, weights=weights)[0]
        return self.at(day, minute), self.at(day, minute + duration)

    @staticmethod
    def start_weight(room: RoomPlan, weekday: bool, minute: int) -> float:
        hour = minute / 60
        if room.kind == "club":
            if weekday:  # seniors' clubs in the day, working members' clubs at night
                return 3.0 if 18 <= hour <= 20 else (1.2 if 10 <= hour < 17 else 0.4)
            return 1.5 if 10 <= hour < 17 else 0.5
        if room.kind == "office":
            return 3.0 if hour < 11 else 1.0
        if room.kind == "kitchen":
            return 2.0 if 10 <= hour < 12 else (1.5 if 16 <= hour < 18 else 1.0)
        if room.kind == "edu":
            return 2.0 if weekday and 18 <= hour <= 20 else 1.0
        return 1.0

    def party(self, room: RoomPlan) -> int:
        low, high = room.party
        if low == high:
            return low
        return min(high, max(low, round(self.rng.triangular(low, high, low + (high - low) * 0.3))))

    def request_time(self, starts_at: datetime, lead: int | None = None) -> datetime | None:
        """1-14 days ahead (now and then the same day), never before the range starts."""
        day = starts_at.astimezone(self.tz).date()
        if lead is None:
            lead = 0
            if self.rng.random() >= 0.08:
                lead = self.rng.choices(range(1, 15), weights=range(14, 0, -1))[0]
        target = day - timedelta(days=lead)
        lo = max(self.begin, self.at(target, DAYTIME[0]))
        hi = min(self.at(target, DAYTIME[1]), starts_at - timedelta(hours=1))
        return self.between(lo, hi) or self.between(self.begin, starts_at - timedelta(hours=1))

    # --- bookings -----------------------------------------------------------------------

    def plan_bookings(self, room: RoomPlan, day: dt.date) -> None:
        for n, group in enumerate(room.weekly):
            if group.weekday != day.weekday():
                continue
            starts_at = self.at(day, parse_hhmm(group.starts))
            slot = (starts_at, starts_at + timedelta(minutes=group.minutes))
            party = self.rng.randint(*group.party)
            leader = self.regulars[room.room_id][n]
            # The leader books next week's meeting in the days after this week's.
            self.book(room, day, slot, party, leader, lead=self.rng.randint(4, 8))
        weekend = day.weekday() >= 5
        count = _poisson(self.rng, room.bookings_weekend if weekend else room.bookings_weekday)
        for _ in range(count):
            roll = self.rng.random()
            if roll < OUTSIDE_HOURS_SHARE:
                self.book_outside_hours(room, day)
            elif roll < OUTSIDE_HOURS_SHARE + IN_THE_PAST_SHARE:
                self.book_in_the_past(room, day)
            else:
                self.book(room, day)

    def book(
        self,
        room: RoomPlan,
        day: dt.date,
        slot: tuple[datetime, datetime] | None = None,
        party: int | None = None,
        member: str | None = None,
        lead: int | None = None,
    ) -> None:
        party = party or self.party(room)
        if slot is not None:
            if not self.fits(room, day, *slot, party):
                return
        else:
            for _ in range(6):
                slot = self.pick_slot(room, day)
                if slot is not None and self.fits(room, day, *slot, party):
                    break
            else:
                return
        starts_at, ends_at = slot
        requested_at = self.request_time(starts_at, lead)
        if requested_at is None:
            return
        member = member or self.member(room)
        if any(
            b.member_id == member and b.starts_at < ends_at and starts_at < b.ends_at
            for b in self.bookings[(room.room_id, day)]
        ):
            return  # the member already has the room then
        booking = self.request(room, day, member, party, starts_at, ends_at, requested_at)
        self.holds[(room.room_id, day)].append((starts_at, ends_at, party))
        roll = self.rng.random()
        if roll < CANCEL_SHARE:
            lo = requested_at + timedelta(minutes=10)
            booking.cancelled_at = self.between(lo, starts_at - timedelta(hours=1))
            if booking.cancelled_at is not None:
                self.emit(
                    BookingCancelRequested(
                        event_id=self.new_id(booking.cancelled_at),
                        occurred_at=booking.cancelled_at,
                        room_id=room.room_id,
                        booking_id=booking.booking_id,
                        member_id=booking.member_id,
                    )
                )
                return
        elif roll < CANCEL_SHARE + NO_SHOW_SHARE:
            booking.no_show = True
        if room.booking_mode == "exclusive" and self.rng.random() < OVERLAP_SHARE:
            self.book_overlapping(booking, day)
        if not booking.no_show:
            self.attend(booking)
            if room.kind == "club" and self.rng.random() < 0.08:
                self.knock(booking)

    def request(
        self,
        room: RoomPlan,
        day: dt.date,
        member: str,
        party: int,
        starts_at: datetime,
        ends_at: datetime,
        requested_at: datetime,
        kind: BookingKind = "good",
    ) -> _Booking:
        booking = _Booking(
            room=room,
            booking_id=f"bk-{self.rng.getrandbits(48):012x}",
            member_id=member,
            party=party,
            starts_at=starts_at,
            ends_at=ends_at,
            requested_at=requested_at,
            kind=kind,
        )
        self.bookings[(room.room_id, day)].append(booking)
        self.emit(
            BookingRequested(
                event_id=self.new_id(requested_at),
                occurred_at=requested_at,
                room_id=room.room_id,
                booking_id=booking.booking_id,
                member_id=member,
                party_size=party,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        )
        return booking

    def book_outside_hours(self, room: RoomPlan, day: dt.date) -> None:
        """Someone asks for the evening past closing, or for before opening."""
        duration = self.rng.choice(room.durations)
        if self.rng.random() < 0.7:
            start = _closes(room) - 30 * self.rng.randint(1, max(1, duration // 30 - 1))
        else:
            start = parse_hhmm(room.opens) - 60
        starts_at, ends_at = self.at(day, start), self.at(day, start + duration)
        if ends_at.astimezone(self.tz).date() != day:
            return
        requested_at = self.request_time(starts_at)
        if requested_at is not None:
            member, party = self.member(room), self.party(room)
            self.request(
                room, day, member, party, starts_at, ends_at, requested_at, "outside_opening_hours"
            )

    def book_in_the_past(self, room: RoomPlan, day: dt.date) -> None:
        """At the counter, for a slot that has already begun."""
        slot = self.pick_slot(room, day)
        if slot is None:
            return
        starts_at, ends_at = slot
        requested_at = self.seconds(starts_at, 5 * 60, 40 * 60)
        if requested_at >= ends_at or requested_at >= self.at(day, DAYTIME[1]):
            return
        member, party = self.member(room), self.party(room)
        self.request(room, day, member, party, starts_at, ends_at, requested_at, "in_the_past")

    def book_overlapping(self, booking: _Booking, day: dt.date) -> None:
        """Another member asks for a time that overlaps a confirmed booking."""
        room = booking.room
        shift = timedelta(minutes=self.rng.choice((-60, -30, 0, 30, 60)))
        duration = timedelta(minutes=self.rng.choice(room.durations))
        starts_at = booking.starts_at + shift
        ends_at = starts_at + duration
        opens, closes = self.at(day, parse_hhmm(room.opens)), self.at(day, _closes(room))
        if starts_at < opens or ends_at > closes:
            return
        if not (starts_at < booking.ends_at and booking.starts_at < ends_at):
            return
        latest = min(starts_at, booking.starts_at) - timedelta(minutes=30)
        requested_at = self.between(booking.requested_at + timedelta(minutes=1), latest)
        if requested_at is None:
            return
        member = self.rng.choice(self.members)
        if member == booking.member_id:
            return
        party = self.party(room)
        self.request(room, day, member, party, starts_at, ends_at, requested_at, "overlap")

    def attend(self, booking: _Booking) -> None:
        room, day = booking.room, booking.starts_at.astimezone(self.tz).date()
        opens = self.at(day, parse_hhmm(room.opens))
        at = max(self.seconds(booking.starts_at, -600, 600), opens + timedelta(seconds=30))
        party = booking.party
        if party > 1 and self.rng.random() < 0.2:
            party -= self.rng.randint(1, min(2, party - 1))
        if self.rng.random() < 0.1:
            leaves_at = self.seconds(booking.ends_at, -3600, -1800)
        else:
            leaves_at = self.seconds(booking.ends_at, -900, -30)
        leaves_at = max(leaves_at, at + timedelta(minutes=10))
        self.visits[(room.room_id, day)].append(
            _Visit(room, at, leaves_at, party, booking.member_id, booking=booking)
        )

    def knock(self, booking: _Booking) -> None:
        """A few members try the door of a club room someone has booked."""
        room, day = booking.room, booking.starts_at.astimezone(self.tz).date()
        length = int((booking.ends_at - booking.starts_at).total_seconds())
        if length < 45 * 60:
            return
        at = self.seconds(booking.starts_at, 20 * 60, length - 20 * 60)
        leaves_at = self.seconds(at, 30 * 60, 60 * 60)
        visit = _Visit(room, at, leaves_at, self.rng.randint(2, 4), self.rng.choice(self.members))
        self.visits[(room.room_id, day)].append(visit)

    # --- sessions -----------------------------------------------------------------------

    def plan_sessions(self, room: RoomPlan, day: dt.date) -> None:
        if room.session_seats < 1 or (day - self.start).days < 3:
            return
        chance = {5: room.session_saturday, 6: room.session_sunday}.get(day.weekday(), 0.0)
        if day.weekday() == 5 and (day.day + 6) // 7 in room.session_saturdays:
            chance = 1.0
        if self.rng.random() >= chance:
            return
        begins, minutes = self.rng.choice(((600, 120), (600, 180), (840, 120), (840, 180)))
        starts_at, ends_at = self.at(day, begins), self.at(day, begins + minutes)
        seats = min(room.session_seats, room.capacity)
        if ends_at > self.at(day, _closes(room)) or not self.fits(
            room, day, starts_at, ends_at, seats
        ):
            return
        week_before = starts_at - timedelta(days=7)
        scheduled_at = self.between(
            max(self.begin, week_before - timedelta(days=1)), week_before
        ) or self.between(self.begin, starts_at - timedelta(days=1))
        if scheduled_at is None:
            return
        session = _Session(
            room=room,
            session_id=f"cls-{day:%Y%m%d}-{self.rng.getrandbits(24):06x}",
            starts_at=starts_at,
            ends_at=ends_at,
            scheduled_at=scheduled_at,
        )
        self.emit(
            SessionScheduled(
                event_id=self.new_id(scheduled_at),
                occurred_at=scheduled_at,
                room_id=room.room_id,
                session_id=session.session_id,
                title=self.rng.choice(SESSION_TITLES),
                starts_at=starts_at,
                ends_at=ends_at,
                capacity=seats,
            )
        )
        self.sessions[(room.room_id, day)].append(session)
        self.holds[(room.room_id, day)].append((starts_at, ends_at, seats))
        self.enroll(session, seats)

    def enroll(self, session: _Session, seats: int) -> None:
        """22-26 requests for 20 seats, first come first served; 1-3 cancel and free seats."""
        room = session.room
        first = session.scheduled_at + timedelta(minutes=10)
        last = session.starts_at - timedelta(hours=2)
        requesters = self.rng.sample(self.members, self.rng.randint(seats + 2, seats + 6))
        times = sorted(t for t in (self.between(first, last) for _ in requesters) if t)
        timeline: list[tuple[datetime, str | None]] = list(zip(times, requesters, strict=False))
        if len(times) > seats:
            after = times[seats] + timedelta(minutes=1)
            for _ in range(self.rng.randint(1, 3)):
                at = self.between(after, session.starts_at - timedelta(hours=1))
                if at is not None:
                    timeline.append((at, None))
        timeline.sort(key=lambda item: (item[0], item[1] is None))
        enrolled, waitlist = session.enrolled, list[str]()
        for at, member in timeline:
            if member is not None:
                if not waitlist and len(enrolled) < seats:
                    enrolled.append(member)
                else:
                    waitlist.append(member)
                self.emit(
                    EnrollmentRequested(
                        event_id=self.new_id(at),
                        occurred_at=at,
                        room_id=room.room_id,
                        session_id=session.session_id,
                        member_id=member,
                    )
                )
                continue
            if waitlist and self.rng.random() < 0.15:
                leaving = self.rng.choice(waitlist)
                waitlist.remove(leaving)
            elif enrolled:
                leaving = self.rng.choice(enrolled)
                enrolled.remove(leaving)
                while waitlist and len(enrolled) < seats:
                    enrolled.append(waitlist.pop(0))
            else:  # pragma: no cover - nobody to cancel
                continue
            self.emit(
                EnrollmentCancelRequested(
                    event_id=self.new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    session_id=session.session_id,
                    member_id=leaving,
                )
            )
        day = session.starts_at.astimezone(self.tz).date()
        closes = self.at(day, _closes(room)) - timedelta(minutes=1)
        for member in enrolled:
            if self.rng.random() < 0.07:  # a no-show
                continue
            at = self.seconds(session.starts_at, -600, 480)
            leaves_at = min(self.seconds(session.ends_at, -600, 300), closes)
            self.visits[(room.room_id, day)].append(
                _Visit(room, at, leaves_at, 1, member, session=session)
            )

    # --- walk-ins -----------------------------------------------------------------------

    def plan_walk_ins(self, room: RoomPlan, day: dt.date) -> None:
        weekend = day.weekday() >= 5
        rate = room.walk_ins_weekend if weekend else room.walk_ins_weekday
        opens, closes = parse_hhmm(room.opens), _closes(room)
        visits = self.visits[(room.room_id, day)]
        for _ in range(_poisson(self.rng, rate)):
            minute = self.rng.triangular(opens, closes - 30, 15 * 60)
            party = self.rng.choices((1, 2, 3, 4, 5), weights=(45, 30, 12, 9, 4))[0]
            visits.append(self.walk_in(room, day, minute, party, (20, 120)))
        last_saturday = day.weekday() == 5 and (day + timedelta(days=7)).month != day.month
        busy = room.monthly_book_talk and last_saturday
        if busy or (weekend and self.rng.random() < room.busy_afternoon_weekend):
            # A book talk: the café fills up in the early afternoon.
            for _ in range(self.rng.randint(15, 20)):
                minute = self.rng.uniform(13 * 60 + 30, 14 * 60 + 15)
                party = self.rng.choices((1, 2, 3, 4), weights=(35, 35, 18, 12))[0]
                visits.append(self.walk_in(room, day, minute, party, (60, 150)))
        if self.rng.random() < room.group_visit_chance:
            minute = self.rng.uniform(13 * 60, 16 * 60)
            visits.append(self.walk_in(room, day, minute, self.rng.randint(12, 20), (40, 90)))

    def walk_in(
        self, room: RoomPlan, day: dt.date, minute: float, party: int, stay: tuple[int, int]
    ) -> _Visit:
        at = self.at(day, minute).replace(microsecond=0)
        closes = self.at(day, _closes(room))
        leaves_at: datetime | None = at + timedelta(minutes=self.rng.randint(*stay))
        if self.rng.random() < FORGETFUL:
            leaves_at = None  # leaves without the kiosk: the closing tick checks them out
        elif leaves_at is not None and leaves_at >= closes - timedelta(minutes=1):
            # Most leave at the closing call; some forget the kiosk.
            forgot = self.rng.random() < 0.3
            leaves_at = None if forgot else self.seconds(closes, -600, -120)
        member = self.rng.choice(self.members) if self.rng.random() < 0.6 else None
        return _Visit(room, at, leaves_at, party, member)
