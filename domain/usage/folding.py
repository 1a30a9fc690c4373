"""Folding one decision into a room's and its center's usage, and closing a month.

``fold`` works out what a decision changes (``_effects``) before changing anything, applies
it to the room (``_fold_room``) and to its center (``_fold_center``), and returns the
aggregates whose value changed; ``fold_changes`` does the same without building them.
``close_month`` makes a month final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from domain.months import local_month, parse_month, require_aware
from domain.usage.center import CenterRoom, CenterUsage
from domain.usage.month import (
    Counter,
    MonthUsage,
    _insort_once,
    _keep_months,
    _month_of,
    _remove_sorted,
    _Values,
)
from domain.usage.periods import CapacityPeriod, OpeningPeriod, _with_capacity, _with_period
from domain.usage.room import ActiveBooking, RoomUsage
from domain.usage.slots import _Slots, _split_by_month, _split_stay
from schemas.common import parse_hhmm
from schemas.decisions import (
    AnyDecision,
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingReleased,
    CapacityChanged,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    RoomConfiguredDecision,
)
from schemas.outputs import UsageMonthly


@dataclass
class _Config:
    period: OpeningPeriod
    capacity: CapacityPeriod
    timezone: str
    month: str


@dataclass
class _Effects:
    """What one decision changes, worked out before anything is changed."""

    counts: dict[str, dict[Counter, int]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    room_peaks: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    occupancy: tuple[str, int, datetime] | None = None
    """(local month, room occupancy after the decision, local time) for the center's peak."""
    config: _Config | None = None
    capacity: CapacityPeriod | None = None
    """A ``capacity.changed``: the capacity in force from its local day on."""
    seen_capacity: tuple[int, date] | None = None
    """The capacity a door decision carries, and its local day: what a state that knows no
    capacity yet (one written before they were kept) takes, from its first opening on."""
    started: tuple[str, ActiveBooking] | None = None
    ended: tuple[str, datetime] | None = None
    attended: str | None = None
    """A booking of ``active`` a check-in was admitted for, the first time."""
    occupied: tuple[int, datetime] | None = None
    """The room's occupancy after an admission or check-out, and from when."""
    slots: list[tuple[str, str, _Slots]] = field(default_factory=list)
    """(month, time zone, person-seconds per weekday-hour slot) since the last change."""

    def add(self, month: str, counter: Counter, delta: int) -> None:
        if delta:
            per_month = self.counts.setdefault(month, {})
            per_month[counter] = per_month.get(counter, 0) + delta

    def add_seconds(self, seconds: dict[str, int], factor: int, counter: Counter) -> None:
        for month, part in seconds.items():
            self.add(month, counter, factor * part)

    def grown(self) -> set[str]:
        """Months where a counter grows: their figures change whatever they were (a
        counter never falls below 0, so only a positive change is certain), and the fold
        need not compare them before and after."""
        return {month for month, deltas in self.counts.items() if max(deltas.values()) > 0}

    def changes_rules(self) -> bool:
        return self.config is not None or self.capacity is not None

    def months(self) -> set[str]:
        touched = set(self.counts) | set(self.members) | set(self.room_peaks)
        touched.update(month for month, _, _ in self.slots)
        if self.occupancy is not None:
            touched.add(self.occupancy[0])
        if self.config is not None:
            touched.add(self.config.month)
        if self.capacity is not None:
            touched.add(f"{self.capacity.effective.year:04d}-{self.capacity.effective.month:02d}")
        return touched

    def apply_to(self, months: dict[str, MonthUsage], *, room_peaks: bool) -> None:
        for month, deltas in self.counts.items():
            stats = _month_of(months, month)
            for counter, delta in deltas.items():
                stats.bump(counter, delta)
        for month, members in self.members.items():
            stats = _month_of(months, month)
            for member in sorted(members):
                stats.add_member(member)
        if room_peaks:
            for month, (peak, at) in self.room_peaks.items():
                _month_of(months, month).reach(peak, at)
        for month, tz, slots in self.slots:
            _month_of(months, month).add_slots(month, tz, slots)


def _occupancy_effects(
    room: RoomUsage, effects: _Effects, occupancy: int, at: datetime, *, closing: bool
) -> None:
    """The person-seconds since the room's last occupancy change, split by local month.

    The clock's check-out at closing stands for the closing time: the persons it checks out
    stop counting then, not when the tick came. Time never runs backwards: a decision dated
    before the last one adds nothing, and its occupancy counts from the last one's time on.
    """
    since = room.occupied_since
    if since is not None and room.occupancy > 0:
        until = max(since, room._closing_before(at)) if closing else at
        if until > since:
            seconds, by_slot = _split_stay(since, until, room.timezone)
            effects.add_seconds(seconds, room.occupancy, "person_seconds")
            for month, slots in by_slot.items():
                persons = {slot: room.occupancy * part for slot, part in slots.items()}
                effects.slots.append((month, room.timezone, persons))
    effects.occupied = (occupancy, at if since is None else max(since, at))
    local = at.astimezone(ZoneInfo(room.timezone))
    month = f"{local.year:04d}-{local.month:02d}"
    effects.room_peaks[month] = (occupancy, local)
    effects.occupancy = (month, occupancy, local)


def _effects(room: RoomUsage, decision: AnyDecision) -> _Effects:
    effects = _Effects()
    tz = room.timezone
    if isinstance(decision, RoomConfiguredDecision):
        day = decision.decided_at.astimezone(ZoneInfo(decision.timezone)).date()
        period = OpeningPeriod(day, parse_hhmm(decision.opens), parse_hhmm(decision.closes))
        capacity = CapacityPeriod(day, decision.capacity)
        effects.config = _Config(
            period, capacity, decision.timezone, f"{day.year:04d}-{day.month:02d}"
        )
    elif isinstance(decision, CapacityChanged):
        day = decision.decided_at.astimezone(ZoneInfo(tz)).date()
        effects.capacity = CapacityPeriod(day, decision.capacity)
    elif isinstance(decision, BookingConfirmed):
        month = local_month(decision.starts_at, tz)
        previous = room._active(decision.booking_id)
        if previous is not None:  # confirmed again: the new interval replaces the old one
            effects.add(previous.start_month, "bookings_confirmed", -1)
            effects.add_seconds(previous.seconds, -1, "booked_seconds")
            if previous.attended:  # and so does its attendance
                effects.add(previous.start_month, "bookings_attended", -1)
                effects.add(month, "bookings_attended", 1)
        effects.add(month, "bookings_confirmed", 1)
        effects.members.setdefault(month, set()).add(decision.member_id)
        if not room._has_ended(decision.booking_id):
            seconds = _split_by_month(decision.starts_at, decision.ends_at, tz)
            effects.add_seconds(seconds, 1, "booked_seconds")
            effects.started = (
                decision.booking_id,
                ActiveBooking(
                    member_id=decision.member_id,
                    starts_at=decision.starts_at,
                    ends_at=decision.ends_at,
                    start_month=month,
                    seconds=seconds,
                    attended=previous is not None and previous.attended,
                ),
            )
    elif isinstance(decision, BookingRejected):
        # Whatever the reason, a rejection changes no booking: one answering a reused id
        # (``duplicate_booking_id``) or a cancel after the end (``booking_ended``) names a
        # booking that stays as it was, with its count and hours.
        effects.add(local_month(decision.decided_at, tz), "bookings_rejected", 1)
    elif isinstance(decision, BookingCancelled | BookingReleased):
        counter: Counter = (
            "bookings_cancelled" if isinstance(decision, BookingCancelled) else "no_shows"
        )
        active = room._active(decision.booking_id)
        if active is not None:
            effects.add(active.start_month, counter, 1)
            effects.add_seconds(active.seconds, -1, "booked_seconds")
            effects.ended = (decision.booking_id, active.ends_at)
        else:  # never seen confirmed (or already ended): count it, subtract nothing
            effects.add(local_month(decision.starts_at, tz), counter, 1)
            effects.ended = (decision.booking_id, decision.ends_at)
    elif isinstance(decision, CheckinAdmitted):
        month = local_month(decision.decided_at, tz)
        effects.add(month, "visits", decision.party_size)
        if decision.member_id is not None:
            effects.members.setdefault(month, set()).add(decision.member_id)
        if decision.attended_booking_id is not None:
            booking = room._active(decision.attended_booking_id)
            if booking is None:  # not known (confirmed later, or forgotten): count it here
                effects.add(month, "bookings_attended", 1)
            elif not booking.attended:
                effects.add(booking.start_month, "bookings_attended", 1)
                effects.attended = decision.attended_booking_id
        _occupancy_effects(
            room, effects, max(0, decision.occupancy), decision.decided_at, closing=False
        )
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    elif isinstance(decision, CheckinDenied):
        effects.add(local_month(decision.decided_at, tz), "checkins_denied", 1)
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    elif isinstance(decision, CheckoutRecorded):
        _occupancy_effects(
            room,
            effects,
            max(0, decision.occupancy),
            decision.decided_at,
            closing=decision.kiosk_id is None,
        )
        effects.seen_capacity = (decision.capacity, _local_day(decision.decided_at, tz))
    # Other decisions (sessions, enrollments) do not enter these figures.
    return effects


def _local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def _learnt_capacity(
    effects: _Effects, periods: list[OpeningPeriod], capacities: list[CapacityPeriod]
) -> list[CapacityPeriod] | None:
    """The capacities a state that knows none takes from a door decision, else ``None``."""
    if capacities or effects.seen_capacity is None:
        return None
    capacity, day = effects.seen_capacity
    if capacity <= 0:  # an unknown room's denial carries 0
        return None
    return [CapacityPeriod(periods[0].effective if periods else day, capacity)]


def _changed(
    state: RoomUsage | CenterUsage, before: dict[str, _Values | None], grown: set[str]
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    """The months of ``grown``, and those of ``before`` whose values changed; a closed one
    is revised."""
    changed: list[tuple[RoomUsage | CenterUsage, str]] = []
    for month in sorted(before.keys() | grown):
        if month not in grown and state._values(month) == before[month]:
            continue
        stats = state.months[month]
        if stats.final:
            stats.revision += 1
            stats.revised_after_close = True
        changed.append((state, month))
    return changed


def _fold_room(
    room: RoomUsage,
    effects: _Effects,
    learnt: list[CapacityPeriod] | None,
    decision: AnyDecision,
    candidates: set[str],
) -> None:
    """Apply ``effects`` to ``room``; every month in ``candidates`` ends up in its state."""
    if room.latest is None or decision.decided_at > room.latest:
        room.latest = decision.decided_at
    if effects.config is not None:
        room.periods = _with_period(room.periods, effects.config.period)
        room.capacities = _with_capacity(room.capacities, effects.config.capacity)
        room.timezone = effects.config.timezone
    if effects.capacity is not None:
        room.capacities = _with_capacity(room.capacities, effects.capacity)
    if learnt is not None:
        room.capacities = learnt
    if effects.ended is not None:
        room._end(*effects.ended)
    if effects.started is not None:
        room._start(*effects.started)
    if effects.attended is not None:
        room.active[effects.attended].attended = True
    if effects.occupied is not None:
        room.occupancy, room.occupied_since = effects.occupied
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
    require_aware(now, "now")
    return [state.aggregate(month, now) for state, month in fold_changes(room, center, decision)]


def fold_changes(
    room: RoomUsage, center: CenterUsage | None, decision: AnyDecision
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    """``fold`` without building the aggregates: (state, month) of each one that changed.

    A consumer folding many decisions builds each changed aggregate once, after the
    last of them (``state.aggregate(month, now)``): building one costs more than the fold.
    """
    if decision.room_id != room.room_id:
        raise ValueError(f"decision for room {decision.room_id!r} folded into {room.room_id!r}")
    center_id = decision.center_id or room.center_id
    if center is not None and center_id is not None and center.center_id != center_id:
        raise ValueError(f"room {room.room_id!r} belongs to center {center_id!r}")
    room.center_id = center_id

    effects = _effects(room, decision)
    seed: CenterRoom | None = None
    if center is not None and room.room_id not in center.rooms:
        seed = CenterRoom(
            timezone=room.timezone, periods=list(room.periods), capacities=list(room.capacities)
        )

    learnt = _learnt_capacity(effects, room.periods, room.capacities)
    candidates = effects.months()
    if effects.changes_rules() or learnt is not None:
        candidates.update(room._open)  # open hours of every open month may change
    grown = effects.grown()
    before = {m: room._values(m) for m in candidates if m not in grown}
    _fold_room(room, effects, learnt, decision, candidates)
    out = _changed(room, before, grown)

    if center is not None:
        out.extend(_fold_center(center, room.room_id, seed, effects, decision, grown))
    return out


def _fold_center(
    center: CenterUsage,
    room_id: str,
    seed: CenterRoom | None,
    effects: _Effects,
    decision: AnyDecision,
    grown: set[str],
) -> list[tuple[RoomUsage | CenterUsage, str]]:
    candidates = effects.months()
    info = center.rooms.get(room_id)
    learnt = None if info is None else _learnt_capacity(effects, info.periods, info.capacities)
    if effects.changes_rules() or learnt is not None or info is None:
        candidates.update(center._open)  # open hours of every open month may change
    before = {m: center._values(m) for m in candidates if m not in grown}

    if info is None:  # a center document younger than the room: learn the room's rules now
        assert seed is not None
        info = center.rooms[room_id] = seed
        center._add_room(room_id, info)
        learnt = _learnt_capacity(effects, info.periods, info.capacities)
    if effects.config is not None:
        center._set_rules(
            room_id,
            info,
            periods=_with_period(info.periods, effects.config.period),
            capacities=_with_capacity(info.capacities, effects.config.capacity),
            timezone=effects.config.timezone,
        )
    if effects.capacity is not None:
        center._set_rules(
            room_id, info, capacities=_with_capacity(info.capacities, effects.capacity)
        )
    if learnt is not None:
        center._set_rules(room_id, info, capacities=learnt)
    effects.apply_to(center.months, room_peaks=False)
    if effects.occupancy is not None:
        month, occupancy, at = effects.occupancy
        center._occupancy += occupancy - info.occupancy
        info.occupancy = occupancy
        _month_of(center.months, month).reach(center._occupancy, at)
    _keep_months(center.months, center._open, candidates)
    if center.latest is None or decision.decided_at > center.latest:
        center.latest = decision.decided_at
    center._prune(local_month(center.latest, info.timezone))
    return _changed(center, before, grown)


def _close(state: RoomUsage | CenterUsage, month: str) -> None:
    stats = _month_of(state.months, month)
    if stats.final:
        return
    stats.open_minutes, stats.capacity_minutes = state.minutes(month)
    stats.final = True
    _remove_sorted(state._open, month)
    if stats.members is not None:
        _insort_once(state._with_members, month)


def close_month(state: RoomUsage | CenterUsage, month: str, now: datetime) -> list[UsageMonthly]:
    """Mark ``month`` final and return its final aggregate.

    Freezes the month's open hours and capacity hours. Closing a month that nothing happened
    in still yields an aggregate (zeros, and the open hours). Closing an already final month
    changes nothing and returns the aggregate again.
    """
    parse_month(month)
    require_aware(now, "now")
    _close(state, month)
    state._prune(state._reference_month(now))
    return [state.aggregate(month, now)]
