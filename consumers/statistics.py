"""The statistics consumer: folds ``decisions`` into monthly usage per room and center.

Same effectively-once loop as the room authority: each decision's ``event_id``
is recorded with the new fold state and the changed aggregates (stored and put
in the outbox for the compacted ``usage-monthly`` topic) in one transaction.
The rules of the fold are in ``domain.usage``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError
from sqlalchemy import select

from domain.usage import CenterUsage, RoomUsage, close_month, fold, previous_month
from infra.db import Database, StaleState, UnitOfWork, UsageStateRow, utcnow
from infra.observability import METRICS
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER, AnyDecision
from schemas.outputs import UsageMonthly
from service_layer.processing import Record, dead_letter, describe_validation_error

log = logging.getLogger(__name__)

UsageState = RoomUsage | CenterUsage
CLOSE_ATTEMPTS = 5


def scope_id(scope: str, ident: str) -> str:
    return f"{scope}:{ident}"


def load_state(scope: str, document: dict[str, Any]) -> UsageState:
    if scope.startswith("room:"):
        return RoomUsage.from_json(document)
    return CenterUsage.from_json(document)


class UsageStatistics:
    """Folds decisions into monthly usage: per room (kept in memory) and per center.

    A room's usage is owned by whoever owns the room's partition of ``decisions``, so it
    stays in memory between batches like the authority's rooms. A center's usage sums
    rooms from every partition, so it is read (locked, on PostgreSQL) in each batch.
    """

    name = "statistics"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.group = settings.statistics_group
        self.clock = clock
        self.rooms: dict[str, RoomUsage] = {}
        self.versions: dict[str, int] = {}
        """Stored versions by scope id, of the rooms kept and the centers of this batch."""
        self.centers: dict[str, CenterUsage] = {}
        self.touched: set[str] = set()
        self.changed: set[str] = set()
        """Scope ids the batch in flight changed."""
        self.pending: dict[str, UsageMonthly] = {}

    def parse(self, record: Record) -> AnyDecision | str:
        try:
            decision: AnyDecision = DECISION_ADAPTER.validate_json(record.value or b"")
        except ValidationError as error:
            return describe_validation_error(error)
        return decision

    def identity(self, event: AnyDecision) -> str:
        return str(event.event_id)

    async def load(self, uow: UnitOfWork, events: Sequence[AnyDecision]) -> None:
        missing = {event.room_id for event in events} - self.rooms.keys()
        stored = await uow.load_states(
            UsageStateRow, [scope_id("room", r) for r in missing], lock=False
        )
        for room_id in missing:
            found = stored.get(scope_id("room", room_id))
            self.rooms[room_id] = (
                RoomUsage(room_id) if found is None else RoomUsage.from_json(found.state)
            )
            self.versions[scope_id("room", room_id)] = 0 if found is None else found.version
        centers = {event.center_id for event in events if event.center_id}
        stored = await uow.load_states(
            UsageStateRow, [scope_id("center", c) for c in centers], lock=True
        )
        for center_id in centers:
            found = stored.get(scope_id("center", center_id))
            self.centers[center_id] = (
                CenterUsage(center_id) if found is None else CenterUsage.from_json(found.state)
            )
            self.versions[scope_id("center", center_id)] = 0 if found is None else found.version

    def handle(self, uow: UnitOfWork, record: Record, event: AnyDecision) -> None:
        now = self.clock()
        room = self.rooms[event.room_id]
        self.touched.add(event.room_id)
        center = self.centers[event.center_id] if event.center_id else None
        if room.center_id is None and event.center_id:
            room.center_id = event.center_id
        try:
            changed = fold(room, center, event, now)
        except ValueError as error:
            reason = f"cannot count decision: {error}"
            dead_letter(uow, self.settings, record, reason, self.group, now)
            changed = []
        self.changed.add(scope_id("room", event.room_id))
        if center is not None:
            self.changed.add(scope_id("center", center.center_id))
        for aggregate in changed:
            self.pending[aggregate.key] = aggregate

    async def save(self, uow: UnitOfWork) -> None:
        states: dict[str, UsageState] = {}
        for sid in self.changed:
            scope, ident = sid.split(":", 1)
            states[sid] = self.rooms[ident] if scope == "room" else self.centers[ident]
        await save_states(uow, states, self.versions)
        await write_aggregates(uow, self.settings, self.pending)

    def committed(self) -> None:
        self.touched.clear()
        self.changed.clear()
        self.pending.clear()
        for center_id in self.centers:
            self.versions.pop(scope_id("center", center_id), None)
        self.centers.clear()
        excess = len(self.rooms) - self.settings.state_cache_size
        if excess > 0:
            for room_id in list(self.rooms)[:excess]:
                del self.rooms[room_id]
                del self.versions[scope_id("room", room_id)]

    def forget(self, *, everything: bool) -> None:
        dropped = set(self.rooms) if everything else set(self.touched)
        for room_id in dropped:
            self.rooms.pop(room_id, None)
            self.versions.pop(scope_id("room", room_id), None)
        self.touched.clear()
        self.changed.clear()
        self.pending.clear()
        for center_id in self.centers:
            self.versions.pop(scope_id("center", center_id), None)
        self.centers.clear()


async def save_states(
    uow: UnitOfWork, states: dict[str, UsageState], versions: dict[str, int]
) -> None:
    """Write back ``states`` (by scope id), each expecting its stored version."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for sid in sorted(states):
        version = versions.get(sid, 0) + 1
        versions[sid] = version
        rows.append(
            {
                "scope_id": sid,
                "state": states[sid].to_json(),
                "updated_at": now,
                "version": version,
            }
        )
    await uow.save_states(UsageStateRow, rows)


async def write_aggregates(
    uow: UnitOfWork, settings: Settings, pending: dict[str, UsageMonthly]
) -> None:
    """Store each changed aggregate and queue it for ``usage-monthly`` (last value per key)."""
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for key, aggregate in pending.items():
        value = aggregate.model_dump(mode="json")
        uow.publish(settings.topics.usage_monthly, key, aggregate.model_dump_json())
        rows.append(
            {
                "key": key,
                "scope": aggregate.scope,
                "ident": aggregate.id,
                "month": aggregate.month,
                "value": value,
                "final": aggregate.final,
                "updated_at": now,
            }
        )
    await uow.upsert_usage_rows(rows)
    if pending:
        METRICS.inc("usage_aggregates_published_total", len(pending))


async def close_months(
    settings: Settings, db: Database, month: str | None = None, now: datetime | None = None
) -> int:
    """Mark ``month`` (default: last month, locally) final everywhere; returns aggregates sent.

    Every state's version moves on, so a statistics consumer holding one in memory
    reads it again before its next write.
    """
    now = now or utcnow()
    month = month or previous_month(now, settings.timezone)
    for attempt in range(1, CLOSE_ATTEMPTS + 1):
        try:
            async with db.unit_of_work(settings.statistics_group) as uow:
                ids = list(await uow.session.scalars(select(UsageStateRow.scope_id)))
                stored = await uow.load_states(UsageStateRow, ids, lock=True)
                states = {sid: load_state(sid, found.state) for sid, found in stored.items()}
                versions = {sid: found.version for sid, found in stored.items()}
                pending: dict[str, UsageMonthly] = {}
                for state in states.values():
                    for aggregate in close_month(state, month, now):
                        pending[aggregate.key] = aggregate
                await save_states(uow, states, versions)
                await write_aggregates(uow, settings, pending)
            break
        except StaleState:
            # The statistics consumer wrote a state meanwhile (SQLite reads take no
            # lock): read everything again and close on top of it.
            if attempt == CLOSE_ATTEMPTS:
                raise
            log.warning("month close met a newer state; again", extra={"attempt": attempt})
            await asyncio.sleep(0.2 * attempt)
    log.info("month closed", extra={"month": month, "aggregates": len(pending)})
    return len(pending)


def schedule_month_close(scheduler: AsyncIOScheduler, settings: Settings, db: Database) -> None:
    """Shortly after local midnight on the 1st, last month's figures become final."""
    scheduler.add_job(
        close_months,
        "cron",
        args=(settings, db),
        day=1,
        hour=0,
        minute=5,
        timezone=settings.timezone,
        id="month-close",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=6 * 3600,
    )
