"""The room authority: reads ``capacity``, ``bookings`` and ``checkins``, decides.

Translation only: bytes to contract events, rooms from and to rows, decisions and
occupancy into the outbox. The rules are in ``domain.capacity``; the batch skeleton
(idempotency, dead letters, poison records) is ``service_layer.processing``.

The rooms of the partitions this member owns stay in memory between batches: a
room is read from the database once after an assignment, and a batch writes back
only the rooms it changed, each guarded by its version (a member that lost the
partition cannot overwrite the new owner's state).

Booking ids are never reused, but a room's state forgets bookings two days after they
end: every id a room answered is kept apart, in ``booking_ids``. A batch reads the rows
of the ids its requests carry (one query), hands the rules what it found, and writes the
ids it answered with the rooms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from domain.capacity import Policy, Room, Unprocessable, decide
from domain.capacity.clock import next_tick_due
from infra import tick_signature
from infra.db import RoomRow, UnitOfWork, utcnow
from infra.observability import DECISIONS, METRICS
from infra.settings import Settings
from schemas.inputs import (
    BOOKING_ADAPTER,
    CAPACITY_ADAPTER,
    CHECKIN_ADAPTER,
    MAX_RECORD_BYTES,
    AnyInput,
    BookingRequested,
    ClockTick,
)
from schemas.outputs import Occupancy
from service_layer.processing import (
    Record,
    content_digest,
    dead_letter,
    describe_validation_error,
    record_key,
)

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        no_show_grace=timedelta(minutes=settings.no_show_grace_minutes),
        early_arrival=timedelta(minutes=settings.early_arrival_minutes),
        late_tolerance=timedelta(minutes=settings.late_checkin_tolerance_minutes),
        # Replayed history is decided at its own time: no kiosk clock to judge then.
        kiosk_clock_tolerance=(
            timedelta(seconds=settings.kiosk_clock_tolerance_s)
            if settings.decide_at == "wall"
            else None
        ),
    )


def _fingerprint(room: Room | None) -> tuple[Any, ...]:
    """What a tick can change without deciding anything (bookkeeping and pruning)."""
    if room is None:
        return ()
    return (room.last_closing, len(room.bookings), len(room.sessions), room.occupancy)


def _gauge(room: Room | None) -> tuple[int, int, str, str | None] | None:
    """What an ``occupancy`` message says: a renamed room (or center) is published again."""
    return None if room is None else (room.occupancy, room.capacity, room.name, room.center_name)


class RoomAuthority:
    name = "authority"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.group = settings.authority_group
        self.policy = policy_from(settings)
        self.clock = clock
        topics = settings.topics
        self.adapters: dict[str, TypeAdapter[Any]] = {
            topics.capacity: CAPACITY_ADAPTER,
            topics.bookings: BOOKING_ADAPTER,
            topics.checkins: CHECKIN_ADAPTER,
        }
        self.rooms: dict[str, Room | None] = {}
        """Rooms of the owned partitions; None for a room not configured yet."""
        self.versions: dict[str, int] = {}
        self.tick_due: dict[str, datetime] = {}
        """The ``tick_due_at`` this member last wrote for each room it keeps (absent: not
        known, e.g. read from the database)."""
        self.touched: set[str] = set()
        """Rooms the batch in flight handled (dropped if it rolls back)."""
        self.decided: dict[str, int] = {}
        """Rooms the batch in flight changed, with the decisions it made about each."""
        self.gauges: dict[str, Occupancy] = {}
        """Occupancy of rooms whose occupancy or capacity the batch in flight changed."""
        self.answered: dict[str, set[str]] = {}
        """Booking ids of the batch in flight's requests that their room answered before,
        by room, and the ones the batch answers: what the rules cannot see in the state."""

    def parse(self, record: Record) -> AnyInput | str:
        adapter = self.adapters.get(record.topic)
        if adapter is None:
            return f"topic {record.topic!r} is not an input of the room authority"
        if not record.value:
            return "empty message value: expected one JSON object"
        if len(record.value) > MAX_RECORD_BYTES:
            return (
                f"message of {len(record.value)} bytes is larger than {MAX_RECORD_BYTES}: "
                "no input of the contract is that large"
            )
        try:
            event: AnyInput = adapter.validate_json(record.value)
        except ValidationError as error:
            return describe_validation_error(error)
        key = record_key(record)
        if key != event.room_id:
            return (
                f"message key {key!r} does not match room_id {event.room_id!r}: "
                "the key must be the room_id so one consumer owns each room"
            )
        if isinstance(event, ClockTick):
            return self._refused_tick(record, event)
        return event

    def _refused_tick(self, record: Record, tick: ClockTick) -> ClockTick | str:
        """The tick, or why it may not move the room's clock (issue 7).

        Only the service's scheduler signs ticks, and none may run ahead of this
        authority's clock: one tick from the future would release tomorrow's bookings as
        no-shows and close the room until then. Replayed history (``decide_at=event``) is
        in the past, so the same rule holds there.
        """
        if not tick_signature.verified(
            self.settings, record.key, record.value or b"", record.headers
        ):
            return (
                "clock.tick without a valid spaces-clock-signature header: only the "
                "service's scheduler may tick (it signs with SPACES_CLOCK_SECRET)"
            )
        ahead = (tick.occurred_at - self.clock()).total_seconds()
        if ahead > self.settings.clock_tick_tolerance_s:
            return (
                f"clock.tick occurred_at {tick.occurred_at.isoformat()} is {ahead:.0f}s ahead "
                "of the room authority's clock: a scheduler's clock runs ahead (check NTP)"
            )
        return tick

    def identity(self, event: AnyInput) -> str | None:
        # A tick decided twice decides nothing the second time: it is not recorded,
        # so the ticks that find nothing to do write nothing at all.
        return None if isinstance(event, ClockTick) else str(event.event_id)

    def digest(self, record: Record, event: AnyInput) -> str:
        # A kiosk's retry may encode the same input differently: compare the content.
        return content_digest(record, event)

    async def load(self, uow: UnitOfWork, events: Sequence[AnyInput]) -> None:
        requested = {(e.room_id, e.booking_id) for e in events if isinstance(e, BookingRequested)}
        self.answered = {}
        for room_id, booking_id in await uow.booking_ids_seen(requested):
            self.answered.setdefault(room_id, set()).add(booking_id)
        missing = {event.room_id for event in events} - self.rooms.keys()
        if not missing:
            return
        stored = await uow.load_states(RoomRow, missing, lock=False)
        for room_id in missing:
            found = stored.get(room_id)
            self.rooms[room_id] = None if found is None else Room.from_json(found.state)
            self.versions[room_id] = 0 if found is None else found.version
        METRICS.inc("authority_rooms_loaded_total", len(missing))

    def handle(self, uow: UnitOfWork, record: Record, event: AnyInput) -> None:
        now = event.occurred_at if self.settings.decide_at == "event" else self.clock()
        room_id = event.room_id
        room = self.rooms[room_id]
        self.touched.add(room_id)
        before = _fingerprint(room)
        gauge = _gauge(room)
        answered = self.answered.setdefault(room_id, set())
        try:
            decided_by, decisions = decide(room, event, now, self.policy, answered)
        except Unprocessable as error:
            dead_letter(uow, self.settings, record, str(error), self.group, now)
            return
        # A configured room answered this id (whatever the answer): never taken again.
        requested = event.booking_id if isinstance(event, BookingRequested) else None
        if requested is not None and room is not None and requested not in answered:
            answered.add(requested)
            uow.remember_booking_id(room_id, requested)
        room = self.rooms[room_id] = decided_by
        if not decisions and _fingerprint(room) == before and not self._due_passed(room_id, now):
            return  # a tick with nothing to do
        topics = self.settings.topics
        for decision in decisions:
            uow.publish(topics.decisions, room_id, decision.model_dump_json())
        self.decided[room_id] = self.decided.get(room_id, 0) + len(decisions)
        METRICS.inc("decisions_total", len(decisions))
        DECISIONS.add(self, decisions)
        if room is not None and _gauge(room) != gauge:
            self.gauges[room_id] = Occupancy(
                room_id=room.room_id,
                center_id=room.center_id,
                occupancy=room.occupancy,
                capacity=room.capacity,
                as_of=now,
                room_name=room.name,
                center_name=room.center_name,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "decided",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "room": room_id,
                    "event_id": str(event.event_id),
                    "decisions": [decision.type for decision in decisions],
                },
            )

    def _due_passed(self, room_id: str, now: datetime) -> bool:
        """Whether the room's stored tick due time has come (or is not known): then even a
        tick with nothing to do writes the room, with its next due time, or the clock
        would tick it again and again."""
        due = self.tick_due.get(room_id)
        return self.rooms.get(room_id) is not None and (due is None or due <= now)

    async def save(self, uow: UnitOfWork) -> None:
        # ``occupancy`` is compacted: its readers want each room's latest figure, so a
        # batch writes one message per room it changed, after the decisions.
        for room_id, gauge in self.gauges.items():
            uow.publish(self.settings.topics.occupancy, room_id, gauge.model_dump_json())
        now = utcnow()
        decided_at = self.clock()
        rows: list[dict[str, Any]] = []
        for room_id, count in self.decided.items():
            room = self.rooms[room_id]
            if room is None:
                continue
            version = self.versions[room_id] + 1
            self.versions[room_id] = version
            due = self.tick_due[room_id] = next_tick_due(room, decided_at, self.policy)
            rows.append(
                {
                    "room_id": room_id,
                    "center_id": room.center_id,
                    "state": room.to_json(),
                    "occupancy": room.occupancy,
                    "capacity": room.capacity,
                    "decisions": count,
                    "updated_at": now,
                    "version": version,
                    "tick_due_at": due,
                }
            )
        await uow.save_states(RoomRow, rows)

    def committed(self) -> None:
        self.touched.clear()
        self.decided.clear()
        self.gauges.clear()
        self.answered = {}
        # Bounded memory: a member owning more rooms than it keeps reads the oldest
        # again when they come back (they were all written back by now).
        excess = len(self.rooms) - self.settings.state_cache_size
        if excess > 0:
            for room_id in list(self.rooms)[:excess]:
                del self.rooms[room_id]
                del self.versions[room_id]
                self.tick_due.pop(room_id, None)

    def skipped(self, event: AnyInput) -> None:
        """Nothing to do: a decision is in the outbox with the batch that made it."""

    def settled(self) -> bool:
        return True

    def more_to_write(self) -> bool:
        return False

    def revoked(self) -> None:
        self.forget(everything=True)

    def forget(self, *, everything: bool) -> None:
        dropped = set(self.rooms) if everything else self.touched
        for room_id in dropped:
            self.rooms.pop(room_id, None)
            self.versions.pop(room_id, None)
            self.tick_due.pop(room_id, None)
        self.touched.clear()
        self.decided.clear()
        self.gauges.clear()
        self.answered = {}
