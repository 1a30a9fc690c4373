"""The room authority: reads ``capacity``, ``bookings`` and ``checkins``, decides.

Translation only: bytes to contract events, rooms from and to rows, decisions
and occupancy into the outbox. The rules are in ``domain.capacity``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from consumers.batch import (
    BatchProcessor,
    Record,
    dead_letter,
    describe_validation_error,
    position_id,
    record_key,
)
from domain.capacity import Policy, Room, Unprocessable, decide
from infra.db import RoomRow, UnitOfWork, utcnow
from infra.observability import METRICS
from infra.settings import Settings
from schemas.inputs import BOOKING_ADAPTER, CAPACITY_ADAPTER, CHECKIN_ADAPTER, AnyInput
from schemas.outputs import Occupancy

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        no_show_grace=timedelta(minutes=settings.no_show_grace_minutes),
        early_arrival=timedelta(minutes=settings.no_show_grace_minutes),
        late_tolerance=timedelta(minutes=settings.late_checkin_tolerance_minutes),
    )


class RoomAuthority(BatchProcessor):
    name = "authority"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self.clock = clock
        topics = settings.topics
        self.adapters: dict[str, TypeAdapter[Any]] = {
            topics.capacity: CAPACITY_ADAPTER,
            topics.bookings: BOOKING_ADAPTER,
            topics.checkins: CHECKIN_ADAPTER,
        }

    def parse(self, record: Record) -> AnyInput | str:
        """The event, or why it cannot be read (a reason a person can act on)."""
        adapter = self.adapters.get(record.topic)
        if adapter is None:
            return f"topic {record.topic!r} is not an input of the room authority"
        if not record.value:
            return "empty message value: expected one JSON object"
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
        return event

    async def process(self, uow: UnitOfWork, records: Sequence[Record]) -> None:
        group = self.settings.authority_group
        parsed = [(record, self.parse(record)) for record in records]
        ids = {
            str(item.event_id) if not isinstance(item, str) else position_id(record)
            for record, item in parsed
        }
        seen = await uow.already_processed(ids)
        room_ids = {item.room_id for _, item in parsed if not isinstance(item, str)}
        rows = await uow.load_rooms(room_ids)
        rooms: dict[str, Room | None] = {
            rid: Room.from_json(rows[rid].state) if rid in rows else None for rid in room_ids
        }
        decided: dict[str, int] = {}
        before = {rid: _gauge(room) for rid, room in rooms.items()}
        topics = self.settings.topics
        for record, item in parsed:
            now = self.clock()
            where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
            if isinstance(item, str):
                marker = position_id(record)
                if marker not in seen:
                    seen.add(marker)
                    dead_letter(uow, self.settings, record, item, group, now)
                    uow.mark_processed(marker, record.topic, record.partition, record.offset)
                continue
            if self.settings.decide_at == "event":
                now = item.occurred_at
            event_id = str(item.event_id)
            if event_id in seen:
                METRICS.inc("authority_duplicates_total")
                log.info(
                    "duplicate input skipped",
                    extra={**where, "event_id": event_id, "room": item.room_id},
                )
                continue
            seen.add(event_id)
            try:
                room, decisions = decide(rooms[item.room_id], item, now, self.policy)
            except Unprocessable as error:
                dead_letter(uow, self.settings, record, str(error), group, now)
                uow.mark_processed(event_id, record.topic, record.partition, record.offset)
                continue
            rooms[item.room_id] = room
            for decision in decisions:
                uow.publish(topics.decisions, item.room_id, decision.model_dump(mode="json"))
                log.info(
                    "decided",
                    extra={
                        **where,
                        "room": item.room_id,
                        "event_id": event_id,
                        "decision": decision.type,
                    },
                )
            decided[item.room_id] = decided.get(item.room_id, 0) + len(decisions)
            METRICS.inc("decisions_total", len(decisions))
            if room is not None and _gauge(room) != before.get(item.room_id):
                before[item.room_id] = _gauge(room)
                occupancy = Occupancy(
                    room_id=room.room_id,
                    center_id=room.center_id,
                    occupancy=room.occupancy,
                    capacity=room.capacity,
                    as_of=now,
                )
                uow.publish(topics.occupancy, room.room_id, occupancy.model_dump(mode="json"))
            uow.mark_processed(event_id, record.topic, record.partition, record.offset)
        self._save(uow, rows, rooms, decided)

    @staticmethod
    def _save(
        uow: UnitOfWork,
        rows: dict[str, RoomRow],
        rooms: dict[str, Room | None],
        decided: dict[str, int],
    ) -> None:
        now = utcnow()
        for room_id, count in decided.items():
            room = rooms[room_id]
            if room is None:
                continue
            row = rows.get(room_id)
            if row is None:
                uow.add_room(
                    RoomRow(
                        room_id=room_id,
                        center_id=room.center_id,
                        state=room.to_json(),
                        occupancy=room.occupancy,
                        capacity=room.capacity,
                        decisions=count,
                        updated_at=now,
                    )
                )
            else:
                row.state = room.to_json()
                row.center_id = room.center_id
                row.occupancy = room.occupancy
                row.capacity = room.capacity
                row.decisions = row.decisions + count
                row.updated_at = now


def _gauge(room: Room | None) -> tuple[int, int] | None:
    return None if room is None else (room.occupancy, room.capacity)
