"""A room: its rules, its state, and the questions the rules ask about them.

``Room`` is the aggregate every decision goes through, and what the room authority
stores (``to_json``/``from_json``: that format is in databases, it does not change).
Besides its state a room keeps an index of its bookings and sessions by start
(``_HoldIndex``), so that finding the holds that overlap a new booking, the bookings
under way at the door or the no-shows to release does not scan every future booking.
The index is derived from the state: it is never stored, built on first use (after
``from_json`` or a copy) and rebuilt whenever the bookings or sessions were changed
other than through the room's methods (as ``domain.rebuild`` and tests do).

Opening hours come from ``domain.opening_hours`` (overnight and DST-correct); openings that
meet (00:00-24:00 day after day) count as one, so a booking may run across midnight there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from heapq import heapify, heappop, heappush
from typing import Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo

from domain import opening_hours
from domain.capacity.holds import Hold, Overload, StartIndex, max_concurrent
from domain.months import require_aware
from schemas.common import parse_hhmm
from schemas.inputs import BookingMode

KEEP_HISTORY = timedelta(days=2)
"""Bookings and sessions that ended longer ago than this are dropped from the state."""

HoldProblem = Literal["invalid", "in_the_past", "outside_opening_hours", "over_capacity", "overlap"]

_JOINED_OPENINGS = 400
"""Openings that meet, followed at most this far (a year of 00:00-24:00) to find where one ends."""


@dataclass(frozen=True)
class Policy:
    """Tunables of the rules; defaults match the contract."""

    no_show_grace: timedelta = timedelta(minutes=15)
    """A booking nobody came for by its start plus this is released."""
    early_arrival: timedelta = timedelta(minutes=15)
    """A booked party (or attendees) may come this early; the room is held for them from then."""
    late_tolerance: timedelta = timedelta(minutes=10)
    kiosk_clock_tolerance: timedelta | None = None
    """A check-in stamped further ahead of the decision time than this is denied
    ``clock_skew``; None (replaying history at event time) judges no kiosk clock."""


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def _opening(day: date, opens: int, closes: int, timezone: str) -> tuple[datetime, datetime]:
    """``opening_hours.opening_window``, remembered: a capacity change asks it per booking."""
    return opening_hours.opening_window(day, opens, closes, zone(timezone))


@dataclass
class Booking:
    booking_id: str
    member_id: str
    party_size: int
    starts_at: datetime
    ends_at: datetime
    status: Literal["confirmed", "cancelled", "released"] = "confirmed"
    checked_in: bool = False
    """Someone of the party came in: the booking is not a no-show."""
    arrived: int = 0
    """Persons of the party admitted so far; the places of the others stay theirs."""

    @property
    def holds_room(self) -> bool:
        return self.status == "confirmed"

    @property
    def expected(self) -> int:
        """Persons of the party still to come, whose places are kept for them."""
        return max(0, self.party_size - self.arrived) if self.holds_room else 0


@dataclass
class Enrollment:
    member_id: str
    party_size: int


@dataclass
class Session:
    session_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    enrolled: list[Enrollment] = field(default_factory=list)
    waitlist: list[Enrollment] = field(default_factory=list)

    @property
    def seats_taken(self) -> int:
        return sum(e.party_size for e in self.enrolled)

    def seats(self, room_capacity: int) -> int:
        """Seats in force: never more than the room holds (a capacity cut caps them)."""
        return min(self.capacity, room_capacity)

    def free_seats(self, room_capacity: int) -> int:
        return max(0, self.seats(room_capacity) - self.seats_taken)

    def find(self, member_id: str) -> tuple[list[Enrollment], Enrollment] | None:
        for queue in (self.enrolled, self.waitlist):
            for enrollment in queue:
                if enrollment.member_id == member_id:
                    return queue, enrollment
        return None


def _booking_hold(booking: Booking) -> Hold:
    return Hold(booking.booking_id, booking.party_size, booking.starts_at, booking.ends_at)


def _session_hold(session: Session) -> Hold:
    return Hold(
        f"session:{session.session_id}", session.capacity, session.starts_at, session.ends_at
    )


_V = TypeVar("_V")


class _Tracked(dict[str, _V]):
    """A dict that counts the changes made to it, so the room's index notices them.

    It is equal to, and printed like, a plain dict with the same items.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changes = 0

    def __setitem__(self, key: str, value: _V) -> None:
        self.changes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.changes += 1
        super().__delitem__(key)

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]  # as in typeshed
        self.changes += 1
        return super().__ior__(other)

    def clear(self) -> None:
        self.changes += 1
        super().clear()

    def pop(self, *args: Any) -> Any:
        self.changes += 1
        return super().pop(*args)

    def popitem(self) -> tuple[str, _V]:
        self.changes += 1
        return super().popitem()

    def setdefault(self, *args: Any) -> Any:
        self.changes += 1
        return super().setdefault(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.changes += 1
        super().update(*args, **kwargs)


class _HoldIndex:
    """A room's bookings and sessions by start, and its bookings that may still be no-shows.

    Valid while the room's two dicts are the ones it was built from, changed only through
    the room's methods since. It needs no bookkeeping for status changes: a booking's and
    a session's times never change, and a booking checked in, cancelled or released never
    goes back to holding the room unattended.
    """

    def __init__(self, bookings: _Tracked[Booking], sessions: _Tracked[Session]) -> None:
        self.dicts = (bookings, sessions)
        self.bookings = StartIndex(bookings.values())
        self.sessions = StartIndex(sessions.values())
        self.unattended = [
            (b.starts_at, b.booking_id, n, b)
            for n, b in enumerate(bookings.values())
            if b.holds_room and not b.checked_in
        ]
        """Heap by (starts_at, booking_id) of the bookings that may still become no-shows."""
        heapify(self.unattended)
        self._added = len(bookings)
        self.caught_up()

    def caught_up(self) -> None:
        """Mark the room's dicts as they are now as indexed."""
        bookings, sessions = self.dicts
        self.changes = (bookings.changes, sessions.changes)

    def describes(self, bookings: _Tracked[Booking], sessions: _Tracked[Session]) -> bool:
        return (
            self.dicts[0] is bookings
            and self.dicts[1] is sessions
            and self.changes == (bookings.changes, sessions.changes)
        )

    def add_booking(self, booking: Booking) -> None:
        self.bookings.add(booking)
        if booking.holds_room and not booking.checked_in:
            self._added += 1
            heappush(self.unattended, (booking.starts_at, booking.booking_id, self._added, booking))
        self.caught_up()

    def add_session(self, session: Session) -> None:
        self.sessions.add(session)
        self.caught_up()


@dataclass
class Room:
    """One room's rules and state; the aggregate every decision about the room goes through."""

    room_id: str
    center_id: str
    name: str
    capacity: int
    booking_mode: BookingMode
    opens: str
    closes: str
    timezone: str
    occupancy: int = 0
    bookings: dict[str, Booking] = field(default_factory=_Tracked)
    sessions: dict[str, Session] = field(default_factory=_Tracked)
    last_closing: datetime | None = None
    """The last closing time at which everyone still inside was checked out."""
    center_name: str | None = None
    """The center's name, if its configuration gave one (shown by dashboards)."""
    _held: _HoldIndex | None = field(default=None, init=False, repr=False, compare=False)
    """Derived from ``bookings`` and ``sessions`` on demand; not part of the state."""
    _closing_after: tuple[tuple[datetime, str, str, str], datetime | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """The last answer of ``next_closing_after`` and what it depends on: the room authority
    asks it at every save of the room, for the same last closing all day."""

    def __post_init__(self) -> None:
        # The defaults of the fields above left out of __init__: mypyc's build does not set them.
        self._held = None
        self._closing_after = None
        self._tracked()

    # --- opening hours --------------------------------------------------------------------

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(zone(self.timezone))

    def _hours(self) -> tuple[int, int, ZoneInfo]:
        return parse_hhmm(self.opens), parse_hhmm(self.closes), zone(self.timezone)

    def opening_window(self, day: date) -> tuple[datetime, datetime]:
        """The opening that starts on local ``day`` (it may end the next day)."""
        return _opening(day, parse_hhmm(self.opens), parse_hhmm(self.closes), self.timezone)

    def opening_at(self, instant: datetime) -> tuple[datetime, datetime] | None:
        """The opening containing ``instant``, or None when the room is closed then.

        As ``opening_hours.opening_at`` (the opening of the instant's local day, or an
        overnight one of the day before), through the remembered windows.
        """
        day = self.local(instant).date()
        for start_day in (day, day - timedelta(days=1)):
            start, end = self.opening_window(start_day)
            if start <= instant < end:
                return start, end
        return None

    def is_open(self, instant: datetime) -> bool:
        return self.opening_at(instant) is not None

    def _reopens_at(self, instant: datetime) -> bool:
        """Whether an opening starts at ``instant`` (another one ends there: they meet)."""
        found = self.opening_at(instant)
        return found is not None and found[0] == instant

    def open_until(self, instant: datetime, limit: datetime) -> datetime:
        """Until when the room stays open from ``instant``, openings that meet joined, but no
        later than ``limit``; ``instant`` itself when the room is closed then."""
        found = self.opening_at(instant)
        return instant if found is None else self.joined_end(found[1], limit)

    def joined_end(self, end: datetime, limit: datetime) -> datetime:
        """Where the opening ending at ``end`` ends with the openings that meet it, up to
        ``limit``: the end itself unless the room is open around the clock."""
        opens, closes = parse_hhmm(self.opens), parse_hhmm(self.closes)
        if closes % opening_hours.MINUTES_PER_DAY != opens:
            return min(end, limit)  # an opening starts at ``opens``: none starts when one ends
        for _ in range(_JOINED_OPENINGS):
            if end >= limit:
                return limit
            following = self.opening_at(end)
            if following is None or following[0] != end:
                break
            end = following[1]
        return min(end, limit)

    def within_opening_hours(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether ``[starts_at, ends_at)`` lies within one opening (or openings that meet)."""
        found = self.opening_at(starts_at)
        return found is not None and (
            ends_at <= found[1] or self.joined_end(found[1], ends_at) >= ends_at
        )

    def latest_closing(self, instant: datetime) -> datetime | None:
        """The most recent closing time at or before ``instant``; None for a room open around
        the clock, whose openings meet (a closing that is also an opening closes nothing).

        As ``opening_hours.latest_closing`` (the openings of the instant's local day and the
        two before), through the remembered windows: a configuration and a clock tick ask it,
        and working the windows out again was two fifths of deciding a configuration."""
        require_aware(instant, "instant")
        day = self.local(instant).date()
        for back in range(4):
            closing = self.opening_window(day - timedelta(days=back))[1]
            if closing <= instant:
                break
        return None if self._reopens_at(closing) else closing

    # --- holds ----------------------------------------------------------------------------

    def holds(self, *, exclude: str | None = None) -> list[Hold]:
        """Every hold of the room: confirmed bookings, then sessions."""
        holds = [
            _booking_hold(b)
            for b in self.bookings.values()
            if b.holds_room and b.booking_id != exclude
        ]
        holds.extend(_session_hold(s) for s in self.sessions.values() if s.session_id != exclude)
        return holds

    def holds_overlapping(self, starts_at: datetime, ends_at: datetime) -> list[Hold]:
        """The holds overlapping ``[starts_at, ends_at)``, found through the index."""
        index = self._index()
        holds = [
            _booking_hold(b) for b in index.bookings.overlapping(starts_at, ends_at) if b.holds_room
        ]
        holds.extend(_session_hold(s) for s in index.sessions.overlapping(starts_at, ends_at))
        return holds

    def fits(
        self, persons: int, starts_at: datetime, ends_at: datetime
    ) -> Literal["over_capacity", "overlap"] | None:
        """Why an interval holding ``persons`` cannot be confirmed, or None if it can."""
        if persons > self.capacity:
            return "over_capacity"
        holds = self.holds_overlapping(starts_at, ends_at)
        if self.booking_mode == "exclusive":
            return "overlap" if holds else None
        if max_concurrent(holds, starts_at, ends_at) + persons > self.capacity:
            return "over_capacity"
        return None

    def hold_problem(
        self, persons: int, starts_at: datetime, ends_at: datetime, now: datetime
    ) -> HoldProblem | None:
        """Why a new hold of the room (a booking or a session) cannot be confirmed, or None."""
        if ends_at <= starts_at:
            return "invalid"
        if starts_at < now:
            return "in_the_past"
        if not self.within_opening_hours(starts_at, ends_at):
            return "outside_opening_hours"
        return self.fits(persons, starts_at, ends_at)

    def active_bookings(self, instant: datetime, early: timedelta) -> list[Booking]:
        """Confirmed bookings under way at ``instant``, or starting within ``early`` of it."""
        return [b for b in self._index().bookings.under_way(instant, early) if b.holds_room]

    def active_sessions(self, instant: datetime, early: timedelta) -> list[Session]:
        """Sessions under way at ``instant``, or starting within ``early`` of it."""
        return self._index().sessions.under_way(instant, early)

    # --- arrivals -------------------------------------------------------------------------

    def arrival_opens(self, hold: Booking | Session, early: timedelta) -> datetime:
        """From when the party of ``hold`` (a booking or session) may come in.

        Up to ``early`` before it starts, but the room is not taken from a hold that has it
        then: in an exclusive room the early part waits until every other booking or session
        under way has ended (back to back, the next party comes at its own start); in a
        shared room, until the others held then and this party fit together. Others that
        start no later than ``hold`` count from ``early`` before their start, as their
        parties may come early too; so the places of the parties allowed in early never add
        up to more than the capacity.
        """
        starts = hold.starts_at
        earliest = starts - early
        if earliest >= starts:
            return starts
        index = self._index()
        bookings = [
            b for b in index.bookings.started_by(starts, earliest) if b is not hold and b.holds_room
        ]
        sessions = [s for s in index.sessions.started_by(starts, earliest) if s is not hold]
        if self.booking_mode == "exclusive":
            ends = [b.ends_at for b in bookings] + [s.ends_at for s in sessions]
            latest_end = max(ends, default=earliest)
            return min(max(earliest, latest_end), starts)
        others = [
            Hold(b.booking_id, b.party_size, b.starts_at - early, b.ends_at) for b in bookings
        ]
        others.extend(
            Hold(f"session:{s.session_id}", s.capacity, s.starts_at - early, s.ends_at)
            for s in sessions
        )
        persons = hold.party_size if isinstance(hold, Booking) else hold.capacity
        return Overload(others, self.capacity - persons).clear_from(earliest, starts)

    def arrived_bookings(self, instant: datetime, early: timedelta) -> list[Booking]:
        """Confirmed bookings whose party may be in the room at ``instant`` (``arrival_opens``
        up to the end), in the order made."""
        return [
            b
            for b in self.active_bookings(instant, early)
            if b.starts_at <= instant or self.arrival_opens(b, early) <= instant
        ]

    def arrived_sessions(self, instant: datetime, early: timedelta) -> list[Session]:
        """Sessions whose attendees may be in the room at ``instant``."""
        return [
            s
            for s in self.active_sessions(instant, early)
            if s.starts_at <= instant or self.arrival_opens(s, early) <= instant
        ]

    def booked_peak(self, starts_at: datetime, ends_at: datetime, early: timedelta) -> int:
        """Most persons booked at any instant of ``[starts_at, ends_at)``: the parties of the
        confirmed bookings whose arrival (``arrival_opens`` to the end) is under way then."""
        windows: list[Hold] = []
        for booking in self._index().bookings.overlapping(starts_at, ends_at + early):
            if booking.holds_room:
                opens = self.arrival_opens(booking, early)
                windows.append(Hold(booking.booking_id, booking.party_size, opens, booking.ends_at))
        return max_concurrent(windows, starts_at, ends_at)

    def booked_peak_within(
        self, starts_at: datetime, ends_at: datetime, early: timedelta, limit: int
    ) -> bool:
        """Whether ``booked_peak`` is at most ``limit``. Most rooms are far from full: counting
        every booking from ``early`` before its start (never less than its arrival window)
        answers without working out the windows."""
        bookings = [
            b
            for b in self._index().bookings.overlapping(starts_at, ends_at + early)
            if b.holds_room
        ]
        if sum(b.party_size for b in bookings) <= limit:
            return True
        widest = [
            Hold(b.booking_id, b.party_size, b.starts_at - early, b.ends_at) for b in bookings
        ]
        if max_concurrent(widest, starts_at, ends_at) <= limit:
            return True
        return self.booked_peak(starts_at, ends_at, early) <= limit

    # --- changes the index follows --------------------------------------------------------

    def add_booking(self, booking: Booking) -> None:
        index = self._index()
        new = booking.booking_id not in self.bookings
        self.bookings[booking.booking_id] = booking
        if new:  # (one replaced leaves the index behind: it is rebuilt when next needed)
            index.add_booking(booking)

    def add_session(self, session: Session) -> None:
        index = self._index()
        new = session.session_id not in self.sessions
        self.sessions[session.session_id] = session
        if new:
            index.add_session(session)

    def release_no_shows(self, at: datetime, grace: timedelta) -> list[Booking]:
        """Release the confirmed bookings nobody checked in for by ``starts_at + grace``.

        Returns them by (starts_at, booking_id). Only the bookings whose grace period is
        over are looked at, each once: a tick with nothing to release costs O(1).
        """
        index = self._index()
        released: list[Booking] = []
        waiting = index.unattended
        while waiting and waiting[0][0] + grace <= at:
            booking = heappop(waiting)[-1]
            if (
                booking.holds_room
                and not booking.checked_in
                and self.bookings.get(booking.booking_id) is booking
            ):
                booking.status = "released"
                released.append(booking)
        return released

    def next_no_show_deadline(self, grace: timedelta) -> datetime | None:
        """When ``release_no_shows`` will next release a booking: the earliest start plus
        ``grace`` of the bookings that may still be no-shows. Drops from the index the
        bookings that no longer can (checked in, cancelled, replaced), as a release would."""
        if not self.bookings:
            return None  # (no index to build for it)
        waiting = self._index().unattended
        while waiting:
            starts_at, _, _, booking = waiting[0]
            if (
                booking.holds_room
                and not booking.checked_in
                and self.bookings.get(booking.booking_id) is booking
            ):
                return starts_at + grace
            heappop(waiting)
        return None

    def first_end(self) -> datetime | None:
        """The earliest end of the bookings and sessions kept (``forget_ended``'s next)."""
        if not self.bookings and not self.sessions:
            return None
        index = self._index()
        ends = [end for end in (index.bookings.first_end(), index.sessions.first_end()) if end]
        return min(ends) if ends else None

    def never_closes(self) -> bool:
        """Open around the clock: every opening meets the next (``latest_closing`` is None)."""
        return parse_hhmm(self.closes) % opening_hours.MINUTES_PER_DAY == parse_hhmm(self.opens)

    def next_closing_after(self, instant: datetime) -> datetime | None:
        """The first closing strictly after ``instant`` (``latest_closing`` returns it from
        then on); None for a room open around the clock, which never closes."""
        key = (instant, self.opens, self.closes, self.timezone)
        if self._closing_after is not None and self._closing_after[0] == key:
            return self._closing_after[1]
        closing: datetime | None = None
        if not self.never_closes():
            day = self.local(instant).date()
            ends = (self.opening_window(day + timedelta(days=shift))[1] for shift in range(-1, 3))
            closing = min(end for end in ends if end > instant)
        self._closing_after = (key, closing)
        return closing

    def forget_ended(self, horizon: datetime) -> None:
        """Drop the bookings and sessions that ended at or before ``horizon``."""
        index = self._index()
        for booking in index.bookings.pop_ended(horizon):
            del self.bookings[booking.booking_id]
        for session in index.sessions.pop_ended(horizon):
            del self.sessions[session.session_id]
        index.caught_up()

    def _tracked(self) -> tuple[_Tracked[Booking], _Tracked[Session]]:
        """The room's dicts, made to count their changes if a plain dict was given."""
        bookings, sessions = self.bookings, self.sessions
        if not isinstance(bookings, _Tracked):
            bookings = self.bookings = _Tracked(bookings)
        if not isinstance(sessions, _Tracked):
            sessions = self.sessions = _Tracked(sessions)
        return bookings, sessions

    def _index(self) -> _HoldIndex:
        bookings, sessions = self._tracked()
        index = self._held
        if index is None or not index.describes(bookings, sessions):
            index = self._held = _HoldIndex(bookings, sessions)
        return index

    # --- serialisation --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def booking(b: Booking) -> dict[str, Any]:
            return {
                "booking_id": b.booking_id,
                "member_id": b.member_id,
                "party_size": b.party_size,
                "starts_at": b.starts_at.isoformat(),
                "ends_at": b.ends_at.isoformat(),
                "status": b.status,
                "checked_in": b.checked_in,
                "arrived": b.arrived,
            }

        def session(s: Session) -> dict[str, Any]:
            return {
                "session_id": s.session_id,
                "title": s.title,
                "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat(),
                "capacity": s.capacity,
                "enrolled": [[e.member_id, e.party_size] for e in s.enrolled],
                "waitlist": [[e.member_id, e.party_size] for e in s.waitlist],
            }

        return {
            "room_id": self.room_id,
            "center_id": self.center_id,
            "name": self.name,
            "capacity": self.capacity,
            "booking_mode": self.booking_mode,
            "opens": self.opens,
            "closes": self.closes,
            "timezone": self.timezone,
            "occupancy": self.occupancy,
            "bookings": [booking(b) for b in self.bookings.values()],
            "sessions": [session(s) for s in self.sessions.values()],
            "last_closing": self.last_closing.isoformat() if self.last_closing else None,
            "center_name": self.center_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Room:
        ts = datetime.fromisoformat
        room = cls(
            room_id=data["room_id"],
            center_id=data["center_id"],
            name=data["name"],
            capacity=data["capacity"],
            booking_mode=data["booking_mode"],
            opens=data["opens"],
            closes=data["closes"],
            timezone=data["timezone"],
            occupancy=data["occupancy"],
            last_closing=ts(data["last_closing"]) if data["last_closing"] else None,
            center_name=data.get("center_name"),
        )
        for b in data["bookings"]:
            room.bookings[b["booking_id"]] = Booking(
                booking_id=b["booking_id"],
                member_id=b["member_id"],
                party_size=b["party_size"],
                starts_at=ts(b["starts_at"]),
                ends_at=ts(b["ends_at"]),
                status=b["status"],
                checked_in=b["checked_in"],
                # Stored before parties were counted: a checked-in party came whole.
                arrived=b.get("arrived", b["party_size"] if b["checked_in"] else 0),
            )
        for s in data["sessions"]:
            room.sessions[s["session_id"]] = Session(
                session_id=s["session_id"],
                title=s["title"],
                starts_at=ts(s["starts_at"]),
                ends_at=ts(s["ends_at"]),
                capacity=s["capacity"],
                enrolled=[Enrollment(m, p) for m, p in s["enrolled"]],
                waitlist=[Enrollment(m, p) for m, p in s["waitlist"]],
            )
        return room
