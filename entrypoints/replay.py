"""``spaces replay``: rebuild every room from the ``decisions`` log and compare with live state.

It reads the topic from the beginning to its current end (no consumer group,
nothing committed), folds each room's decisions in order into an empty
database, and reports every room whose rebuilt state differs from the live one,
or whose booking ids answered (``booking_ids``, kept apart from the state) do.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import select

from domain.capacity import Room
from domain.rebuild import apply, comparable, seen_booking_id
from infra.db import BookingIdRow, Database, RoomRow, utcnow
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER


@dataclass
class ReplayReport:
    decisions: int = 0
    unreadable: int = 0
    rooms_rebuilt: int = 0
    rooms_live: int = 0
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    target: str = ""

    @property
    def matches(self) -> bool:
        return not self.mismatches and self.rooms_rebuilt == self.rooms_live

    def summary(self) -> str:
        lines = [
            f"replayed {self.decisions} decisions into {self.target}",
            f"rooms rebuilt: {self.rooms_rebuilt}, rooms live: {self.rooms_live}",
        ]
        if self.unreadable:
            lines.append(f"unreadable decisions skipped: {self.unreadable}")
        for room_id, problems in sorted(self.mismatches.items()):
            lines.append(f"MISMATCH {room_id}: " + "; ".join(problems))
        lines.append("state matches the live database" if self.matches else "STATE DIFFERS")
        return "\n".join(lines)


Progress = Callable[[int, int], None]
"""Told (decisions read, decisions to read) as the log is read: the CLI draws a bar."""


async def read_decisions(settings: Settings, on_progress: Progress | None = None) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",  # the relay writes in transactions
    )
    values: list[bytes] = []
    try:
        await consumer.start()
        await consumer._client.force_metadata_update()
        topic = settings.topics.decisions
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        total = 0
        if on_progress is not None and partitions:
            starts = await consumer.beginning_offsets(partitions)
            total = sum(ends[tp] - starts[tp] for tp in partitions)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                values.extend(r.value for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            if on_progress is not None:
                on_progress(len(values), max(total, len(values)))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return values


def rebuild(
    values: list[bytes],
    report: ReplayReport,
    booking_ids: set[tuple[str, str]] | None = None,
) -> dict[str, Room]:
    """The rooms the decisions ``values`` describe; ``booking_ids`` gets the (room_id,
    booking_id) they say were answered (never to be taken again)."""
    rooms: dict[str, Room | None] = {}
    for value in values:
        try:
            decision = DECISION_ADAPTER.validate_json(value)
        except ValidationError:
            report.unreadable += 1
            continue
        report.decisions += 1
        rooms[decision.room_id] = apply(rooms.get(decision.room_id), decision)
        if booking_ids is not None and (booking_id := seen_booking_id(decision)) is not None:
            booking_ids.add((decision.room_id, booking_id))
    return {rid: room for rid, room in rooms.items() if room is not None}


def differences(live: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    problems = []
    for key in sorted(set(live) | set(rebuilt)):
        if live.get(key) != rebuilt.get(key):
            shown_live = json.dumps(live.get(key), default=str)[:200]
            shown_rebuilt = json.dumps(rebuilt.get(key), default=str)[:200]
            problems.append(f"{key}: live={shown_live} rebuilt={shown_rebuilt}")
    return problems


async def replay(
    settings: Settings, into: Path | None = None, on_progress: Progress | None = None
) -> ReplayReport:
    target = into or Path(tempfile.mkdtemp(prefix="spaces-replay-")) / "replay.db"
    if target.exists():
        raise SystemExit(f"{target} exists: replay rebuilds into an empty database")
    report = ReplayReport(target=str(target))
    answered: set[tuple[str, str]] = set()
    rooms = rebuild(await read_decisions(settings, on_progress), report, answered)
    now: datetime = utcnow()

    rebuilt_db = Database(
        settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{target}"})
    )
    await rebuilt_db.migrate()
    async with rebuilt_db.unit_of_work("replay") as uow:
        for room in rooms.values():
            uow.add_room(
                RoomRow(
                    room_id=room.room_id,
                    center_id=room.center_id,
                    state=room.to_json(),
                    occupancy=room.occupancy,
                    capacity=room.capacity,
                    decisions=0,
                    updated_at=now,
                )
            )
        for room_id, booking_id in answered:
            uow.remember_booking_id(room_id, booking_id)
    await rebuilt_db.dispose()
    report.rooms_rebuilt = len(rooms)

    live_db = Database(settings)
    async with live_db.read_session() as session:
        live = {
            row.room_id: Room.from_json(row.state) for row in await session.scalars(select(RoomRow))
        }
        ids = await session.execute(select(BookingIdRow.room_id, BookingIdRow.booking_id))
        live_ids = {(room_id, booking_id) for room_id, booking_id in ids}
    await live_db.dispose()
    report.rooms_live = len(live)
    for room_id in sorted(set(live) | set(rooms)):
        if room_id not in rooms:
            report.mismatches[room_id] = ["missing from the decisions log"]
        elif room_id not in live:
            report.mismatches[room_id] = ["not in the live database"]
        else:
            problems = differences(comparable(live[room_id], now), comparable(rooms[room_id], now))
            if problems:
                report.mismatches[room_id] = problems
    for room_id in sorted({r for r, _ in live_ids ^ answered}):
        only_live = sorted(b for r, b in live_ids - answered if r == room_id)
        only_log = sorted(b for r, b in answered - live_ids if r == room_id)
        report.mismatches.setdefault(room_id, []).append(
            f"booking_ids: live only={only_live[:5]} ({len(only_live)}), "
            f"log only={only_log[:5]} ({len(only_log)})"
        )
    return report
