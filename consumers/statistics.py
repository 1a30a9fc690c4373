"""The statistics consumer: folds ``decisions`` into monthly usage per room and center.

Same effectively-once loop as the room authority: each decision's ``event_id``
is recorded with the new fold state and the changed aggregates (stored and put
in the outbox for the compacted ``usage-monthly`` topic) in one transaction.
The rules of the fold are in ``domain.usage``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError
from sqlalchemy import select

from consumers.batch import (
    BatchProcessor,
    Record,
    dead_letter,
    describe_validation_error,
    position_id,
)
from domain.usage import CenterUsage, RoomUsage, close_month, fold, previous_month
from infra.db import Database, UnitOfWork, UsageStateRow, utcnow
from infra.observability import METRICS
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER, AnyDecision
from schemas.outputs import UsageMonthly

log = logging.getLogger(__name__)

UsageState = RoomUsage | CenterUsage


def scope_id(scope: str, ident: str) -> str:
    return f"{scope}:{ident}"


def load_state(row: UsageStateRow) -> UsageState:
    if row.scope_id.startswith("room:"):
        return RoomUsage.from_json(row.state)
    return CenterUsage.from_json(row.state)


class UsageStatistics(BatchProcessor):
    name = "statistics"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock

    async def process(self, uow: UnitOfWork, records: Sequence[Record]) -> None:
        group = self.settings.statistics_group
        parsed: list[tuple[Record, AnyDecision | str]] = []
        for record in records:
            try:
                parsed.append((record, DECISION_ADAPTER.validate_json(record.value or b"")))
            except ValidationError as error:
                parsed.append((record, describe_validation_error(error)))
        ids = {
            position_id(record) if isinstance(item, str) else str(item.event_id)
            for record, item in parsed
        }
        seen = await uow.already_processed(ids)
        wanted: set[str] = set()
        for _, item in parsed:
            if isinstance(item, str):
                continue
            wanted.add(scope_id("room", item.room_id))
            if item.center_id:
                wanted.add(scope_id("center", item.center_id))
        rows = await uow.load_usage_states(wanted)
        states: dict[str, UsageState] = {sid: load_state(row) for sid, row in rows.items()}
        touched: set[str] = set()
        pending: dict[str, UsageMonthly] = {}
        for record, item in parsed:
            now = self.clock()
            if isinstance(item, str):
                marker = position_id(record)
                if marker not in seen:
                    seen.add(marker)
                    dead_letter(uow, self.settings, record, item, group, now)
                    uow.mark_processed(marker, record.topic, record.partition, record.offset)
                continue
            event_id = str(item.event_id)
            if event_id in seen:
                METRICS.inc("statistics_duplicates_total")
                continue
            seen.add(event_id)
            room_key = scope_id("room", item.room_id)
            room = states.setdefault(room_key, RoomUsage(item.room_id, item.center_id))
            center: CenterUsage | None = None
            if item.center_id:
                center_state = states.setdefault(
                    scope_id("center", item.center_id), CenterUsage(item.center_id)
                )
                assert isinstance(center_state, CenterUsage)
                center = center_state
                touched.add(scope_id("center", item.center_id))
            assert isinstance(room, RoomUsage)
            if room.center_id is None and item.center_id:
                room.center_id = item.center_id
            try:
                changed = fold(room, center, item, now)
            except ValueError as error:
                dead_letter(
                    uow, self.settings, record, f"cannot count decision: {error}", group, now
                )
                changed = []
            touched.add(room_key)
            for aggregate in changed:
                pending[aggregate.key] = aggregate
            uow.mark_processed(event_id, record.topic, record.partition, record.offset)
        save_states(uow, rows, states, touched)
        await write_aggregates(uow, self.settings, pending)


def save_states(
    uow: UnitOfWork,
    rows: dict[str, UsageStateRow],
    states: dict[str, UsageState],
    touched: set[str],
) -> None:
    now = utcnow()
    for sid in touched:
        document: dict[str, Any] = states[sid].to_json()
        row = rows.get(sid)
        if row is None:
            uow.add(UsageStateRow(scope_id=sid, state=document, updated_at=now))
        else:
            row.state = document
            row.updated_at = now


async def write_aggregates(
    uow: UnitOfWork, settings: Settings, pending: dict[str, UsageMonthly]
) -> None:
    """Store each changed aggregate and queue it for ``usage-monthly`` (last value per key)."""
    for key, aggregate in pending.items():
        value = aggregate.model_dump(mode="json")
        uow.publish(settings.topics.usage_monthly, key, value)
        await uow.upsert_usage(
            key, aggregate.scope, aggregate.id, aggregate.month, value, aggregate.final
        )
    if pending:
        METRICS.inc("usage_aggregates_published_total", len(pending))


async def close_months(
    settings: Settings, db: Database, month: str | None = None, now: datetime | None = None
) -> int:
    """Mark ``month`` (default: last month, locally) final everywhere; returns aggregates sent."""
    now = now or utcnow()
    month = month or previous_month(now, settings.timezone)
    async with db.unit_of_work(settings.statistics_group) as uow:
        ids = list(await uow.session.scalars(select(UsageStateRow.scope_id)))
        rows = await uow.load_usage_states(ids)
        states = {sid: load_state(row) for sid, row in rows.items()}
        pending: dict[str, UsageMonthly] = {}
        for state in states.values():
            for aggregate in close_month(state, month, now):
                pending[aggregate.key] = aggregate
        save_states(uow, rows, states, set(states))
        await write_aggregates(uow, settings, pending)
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
