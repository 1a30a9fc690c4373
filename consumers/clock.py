"""The clock: time-driven decisions go through the log like every other input.

An APScheduler job appends a ``clock.tick`` per room to the ``capacity`` topic.
The room authority turns it into no-show releases and the closing check-out, so
those decisions are made by the room's one owner, in order, and recorded once.
The tick's ``event_id`` is derived from the room and the time slot, and a tick
at a time already ticked finds nothing left to decide, so two clocks of the service
running by mistake change nothing. Each tick is signed (``publish_input``,
``infra.tick_signature``): the room authority refuses ticks from anyone else, and
ticks ahead of its own clock (a scheduler whose clock runs fast).
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime
from uuid import UUID, uuid5

from aiokafka import AIOKafkaProducer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from infra.db import Database, RoomRow, utcnow
from infra.kafka import make_producer
from infra.settings import Settings
from producers.client import publish_input
from schemas.inputs import ClockTick

log = logging.getLogger(__name__)
SLICES = 10
"""Runs of the tick job per interval; each ticks a tenth of the rooms."""
_TICK_NAMESPACE = UUID("3f0b9d52-0c5e-4e61-9a3c-7f1f6f3b2d44")


def tick_for(room_id: str, now: datetime, interval_s: float) -> ClockTick:
    slot = int(now.timestamp() // interval_s)
    return ClockTick(
        event_id=uuid5(_TICK_NAMESPACE, f"{room_id}:{interval_s}:{slot}"),
        occurred_at=now,
        room_id=room_id,
    )


class Clock:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.producer: AIOKafkaProducer | None = None
        self.scheduler = AsyncIOScheduler(timezone=settings.timezone)

    async def room_ids(self) -> list[str]:
        async with self.db.read_session() as session:
            return list(await session.scalars(select(RoomRow.room_id).order_by(RoomRow.room_id)))

    async def tick(self, now: datetime | None = None) -> int:
        """Append a tick for one slice of the rooms; returns how many were sent.

        The job runs ``SLICES`` times per interval and each run ticks the rooms of one
        slice (by a hash of the id): every room is ticked once per interval, and a
        city's thousands of ticks do not arrive in one burst ahead of kiosks' inputs.
        """
        if self.producer is None:
            return 0
        now = now or utcnow()
        interval = self.settings.clock_interval_s
        current = int(now.timestamp() // (interval / SLICES)) % SLICES
        rooms = [r for r in await self.room_ids() if zlib.crc32(r.encode()) % SLICES == current]
        futures = [
            await publish_input(self.producer, self.settings, tick_for(room_id, now, interval))
            for room_id in rooms
        ]
        for future in futures:
            await future
        log.debug("clock ticked", extra={"rooms": len(rooms)})
        return len(rooms)

    async def start(self) -> None:
        self.producer = make_producer(self.settings)
        await self.producer.start()
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.settings.clock_interval_s / SLICES,
            id="clock-tick",
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow(),
        )
        self.scheduler.add_job(
            self.prune,
            "cron",
            hour=4,
            minute=30,
            timezone=self.settings.timezone,
            id="prune",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()

    async def prune(self) -> None:
        forgotten, deleted = await self.db.prune(utcnow())
        log.info("pruned", extra={"processed_ids": forgotten, "outbox_rows": deleted})

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
