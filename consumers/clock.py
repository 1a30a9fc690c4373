"""The clock: time-driven decisions go through the log like every other input.

An APScheduler job appends a ``clock.tick`` to the ``capacity`` topic for each room whose
tick is due (``rooms.tick_due_at``, which the room authority writes with the room:
``domain.capacity.clock.next_tick_due``), at most once per ``clock_interval_s`` for a room.
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
import time
from datetime import datetime
from uuid import UUID, uuid5

from aiokafka import AIOKafkaProducer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import or_, select

from infra.db import Database, RoomRow, utcnow
from infra.kafka import make_producer
from infra.observability import METRICS
from infra.settings import Settings
from producers.client import publish_input
from schemas.inputs import ClockTick

log = logging.getLogger(__name__)
SLICES = 10
"""Runs of the tick job per interval: a room is ticked within ``clock_interval_s / SLICES``
(3 s) of falling due."""
TICKS_PER_RUN = 2_000
"""Rooms one run ticks at most, those due longest first: the rooms of a city that close at
the same minute (or every room of a database written before due times were kept) are
ticked over several runs, not in one burst ahead of kiosks' inputs."""
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
        self.ticked: dict[str, float] = {}
        """Rooms ticked within the last interval (``time.monotonic()`` of the tick): until
        the room authority has decided a tick and written the room's next due time, the
        room stays due, and is not ticked again before the interval is over."""

    async def due_room_ids(self, now: datetime) -> list[str]:
        """Rooms whose tick is due at ``now`` (or not known), due longest first."""
        due = RoomRow.tick_due_at
        query = (
            select(RoomRow.room_id)
            .where(or_(due.is_(None), due <= now))
            .order_by(due.asc().nulls_first(), RoomRow.room_id)
            .limit(TICKS_PER_RUN + len(self.ticked))
        )
        async with self.db.read_session() as session:
            return list(await session.scalars(query))

    async def tick(self, now: datetime | None = None) -> int:
        """Append a tick for each room due (not ticked within the interval, at most
        ``TICKS_PER_RUN``); returns how many were sent.

        The job runs ``SLICES`` times per interval. A room is due when a tick can change
        it (a no-show, a closing, history to forget) and at least once a day: a room with
        nothing happening is not ticked every interval, so the ticks grow with what the
        rooms hold, not with how many rooms there are.
        """
        if self.producer is None:
            return 0
        now = now or utcnow()
        interval = self.settings.clock_interval_s
        started = time.monotonic()
        self.ticked = {r: at for r, at in self.ticked.items() if started - at < interval}
        due = [r for r in await self.due_room_ids(now) if r not in self.ticked]
        rooms = due[:TICKS_PER_RUN]
        futures = [
            await publish_input(self.producer, self.settings, tick_for(room_id, now, interval))
            for room_id in rooms
        ]
        for future in futures:
            await future
        self.ticked.update(dict.fromkeys(rooms, started))
        METRICS.inc("clock_ticks_total", len(rooms))
        METRICS.set("clock_rooms_due", len(due))
        log.debug("clock ticked", extra={"rooms": len(rooms), "due": len(due)})
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
