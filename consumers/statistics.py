"""The statistics consumer: folds ``decisions`` into monthly usage per room and center.

Same effectively-once loop as the room authority: each decision's ``event_id``
is recorded with the new fold state and the changed aggregates (stored and put
in the outbox for the compacted ``usage-monthly`` topic) in one transaction.
The rules of the fold are in ``domain.usage``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import pydantic_core
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError
from sqlalchemy import or_, select

from domain.month_close import close_due, month_ends_at, zones_of
from domain.usage import AggregateDocument, CenterUsage, RoomUsage, fold_changes
from infra.db import (
    ConsumerPositionRow,
    Database,
    JsonText,
    MonthCloseRow,
    StaleState,
    UnitOfWork,
    UsageStateRow,
    utcnow,
)
from infra.observability import METRICS
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER, AnyDecision
from schemas.outputs import usage_key
from service_layer.processing import Record, dead_letter, describe_validation_error

log = logging.getLogger(__name__)

UsageState = RoomUsage | CenterUsage
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
CLOSE_ATTEMPTS = 5
AGGREGATES_PER_TRANSACTION = 250
"""Aggregates one transaction writes at most: the rest of a publishing go in the next
transactions, at once (``more_to_write``). One transaction with every aggregate of a
backlog held SQLite's writer long enough (longer when this process yields the CPU,
``statistics_nice``) for the kiosk's decisions waiting behind it to show as spikes
every ``statistics_publish_interval_ms`` (``tools/latency_probe.py``, ``TIMELINE=1``)."""


def decision_identity(decision: AnyDecision) -> str:
    """The id the statistics remember a decision by: its ``decided_at`` (milliseconds, 12 hex
    digits), ``/``, its ``event_id``.

    Why not the ``event_id`` alone: a decision's id is ``uuid5`` (the contract says so), so
    random, and the id memory is a B-tree keyed by it. Random keys land each on a page of
    their own, and SQLite writes every page a batch touched to its WAL: the cost of
    remembering one decision grew with the ids already remembered (30 days of them), 6.5
    us per decision on an empty memory, 17 at 100,000 and 31 at 1,000,000 (``HISTORY=``
    in ``tools/consumer_bench.py``). Led by the time they were decided, the ids land
    together at the end of the index, as the inputs' version 7 ids do. A re-sent decision
    is the same bytes (the relay re-sends what it stored), so the same key. Rows written
    before this key are found under the bare ``event_id``
    (``UnitOfWork.processed_digests``).
    """
    # Exact milliseconds (``timestamp() * 1000`` rounds some whole milliseconds down by one).
    ms = (decision.decided_at - _EPOCH) // _MILLISECOND
    return f"{ms:012x}/{decision.event_id}"


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

    Each batch stores its states, but the aggregates the batches changed go out at most
    once per ``statistics_publish_interval_ms``, each as the last batch left it, and as
    soon as no more decisions come (the loop, idle, decides a batch without records):
    under load most rooms change in every batch, and an aggregate costs more to send
    than the decisions that changed it cost to fold. Until then the loop keeps the
    batches' offsets from Kafka (``settled``): a crash reads them again, and the
    redelivered decisions (:meth:`skipped`) have their room's and center's aggregates
    published.
    """

    name = "statistics"

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.group = settings.statistics_group
        self.clock = clock
        self.rooms: dict[str, RoomUsage] = {}
        self.versions: dict[str, int] = {}
        """Stored versions by scope id, of the rooms and centers kept."""
        self.centers: dict[str, CenterUsage] = {}
        """Centers kept between batches, as stored at ``versions`` (checked each batch)."""
        self.touched: set[str] = set()
        self.touched_centers: set[str] = set()
        """Centers the batch in flight may have changed (dropped if it rolls back)."""
        self.changed: set[str] = set()
        """Scope ids the batch in flight changed."""
        self.pending: set[tuple[str, str | None]] = set()
        """(scope id, month) of the aggregates the batch in flight changed; month ``None``:
        every month of the scope (a decision it skipped as counted before)."""
        self.positions: dict[tuple[str, int], int] = {}
        """Next offset per partition of the batch in flight."""
        self.publish_interval_s = settings.statistics_publish_interval_ms / 1000
        self.publishing = False
        """Whether the batch in flight publishes every aggregate not published yet."""
        self.last_published = time.monotonic()
        self.unpublished: set[tuple[str, str | None]] = set()
        """``pending`` of the committed batches since the last publishing one."""
        self.unsaved_positions: dict[tuple[str, int], int] = {}
        """Positions of committed batches, stored with the last aggregate published."""
        self.left: list[tuple[str, tuple[str, str]]] = []
        """(usage key, (scope id, month)), in key order, of the aggregates the publishing
        batch in flight leaves for the next transactions (over ``AGGREGATES_PER_TRANSACTION``)."""
        self.queue: list[tuple[str, tuple[str, str]]] = []
        """Held back too (besides ``unpublished``): ``left`` as the last batch committed it;
        while it is not empty, a publishing is draining (``more_to_write``). Each of the next
        transactions takes its first
        ``AGGREGATES_PER_TRANSACTION`` and checks only their states (checking every state
        left in each of them cost a version read per state per transaction: quadratic in
        the rooms changed, at 10,000 rooms a fifth of this process's time)."""
        self.continuing = False
        """Whether the batch in flight goes on with ``queue`` (a publishing's next transaction)."""

    def parse(self, record: Record) -> AnyDecision | str:
        # Every record of a batch is parsed (or dead-lettered as poison): where the
        # batch ends in each partition is where a restart without offsets resumes.
        where = (record.topic, record.partition)
        if record.offset >= self.positions.get(where, 0):
            self.positions[where] = record.offset + 1
        try:
            decision: AnyDecision = DECISION_ADAPTER.validate_json(record.value or b"")
        except ValidationError as error:
            return describe_validation_error(error)
        return decision

    def identity(self, event: AnyDecision) -> str:
        return decision_identity(event)

    def digest(self, record: Record, event: AnyDecision) -> str:
        # Decisions come from the relay, which re-sends the bytes it stored: hashing them
        # costs a fraction of re-serializing the decision (``content_digest``), and gives
        # the same digest (tests/test_schemas.py).
        return hashlib.sha256(record.value or b"").hexdigest()

    async def load(self, uow: UnitOfWork, events: Sequence[AnyDecision]) -> None:
        self.publishing = (
            not events or time.monotonic() - self.last_published >= self.publish_interval_s
        )
        self.continuing = bool(self.queue) and not events
        wanted_rooms = {event.room_id for event in events}
        centers = {event.center_id for event in events if event.center_id}
        if self.publishing:  # every state with an aggregate to publish, as stored now
            if self.continuing:
                scopes = {sid for _, (sid, _) in self.queue[:AGGREGATES_PER_TRANSACTION]}
            else:
                scopes = {sid for sid, _ in self.unpublished}
                scopes.update(sid for _, (sid, _) in self.queue)
            for sid in scopes:
                scope, ident = sid.split(":", 1)
                (wanted_rooms if scope == "room" else centers).add(ident)
        # A center sums rooms of several partitions, maybe of other members: its stored
        # version is read (locked, on PostgreSQL) in every batch, and the state only
        # when it is not the one kept from an earlier batch. (Centers before rooms: the
        # order the month close locks them in.)
        versions = await uow.load_versions(
            UsageStateRow, [scope_id("center", c) for c in centers], lock=True
        )
        stale = {
            c
            for c in centers
            if c not in self.centers
            or versions.get(scope_id("center", c), 0) != self.versions.get(scope_id("center", c))
        }
        await self._read(uow, "center", stale)
        self.touched_centers.update(centers)
        if self.publishing:
            # A room kept in memory that the month close wrote meanwhile is read again
            # (locked on PostgreSQL), so no aggregate goes out older than the close's.
            kept = [scope_id("room", r) for r in wanted_rooms if r in self.rooms]
            for sid, version in (await uow.load_versions(UsageStateRow, kept, lock=True)).items():
                if version != self.versions.get(sid):
                    del self.rooms[sid.split(":", 1)[1]]
        await self._read(uow, "room", wanted_rooms - self.rooms.keys())

    async def _read(self, uow: UnitOfWork, scope: str, idents: set[str]) -> None:
        """Read these rooms' or centers' states as stored (a new one starts empty)."""
        stored = await uow.load_states(
            UsageStateRow, [scope_id(scope, i) for i in idents], lock=False
        )
        for ident in idents:
            sid = scope_id(scope, ident)
            found = stored.get(sid)
            if found is not None:
                state = load_state(sid, found.state)
            else:
                state = RoomUsage(ident) if scope == "room" else CenterUsage(ident)
            if isinstance(state, RoomUsage):
                self.rooms[ident] = state
            else:
                self.centers[ident] = state
            self.versions[sid] = 0 if found is None else found.version

    def handle(self, uow: UnitOfWork, record: Record, event: AnyDecision) -> None:
        room = self.rooms[event.room_id]
        self.touched.add(event.room_id)
        center = self.centers[event.center_id] if event.center_id else None
        if room.center_id is None and event.center_id:
            room.center_id = event.center_id
        try:
            changed = fold_changes(room, center, event)
        except ValueError as error:
            reason = f"cannot count decision: {error}"
            dead_letter(uow, self.settings, record, reason, self.group, self.clock())
            changed = []
        self.changed.add(scope_id("room", event.room_id))
        if center is not None:
            self.changed.add(scope_id("center", center.center_id))
        for state, month in changed:
            if isinstance(state, RoomUsage):
                self.pending.add((scope_id("room", state.room_id), month))
            else:
                self.pending.add((scope_id("center", state.center_id), month))

    def skipped(self, event: AnyDecision) -> None:
        # Counted before, maybe by a member that crashed before publishing: its room's
        # and center's aggregates go out again, as stored.
        self.pending.add((scope_id("room", event.room_id), None))
        if event.center_id:
            self.pending.add((scope_id("center", event.center_id), None))

    async def save(self, uow: UnitOfWork) -> None:
        states = {sid: self._state(sid) for sid in self.changed}
        await save_states(uow, states, self.versions)
        if not self.publishing:
            return
        now = self.clock()
        if self.continuing:
            ordered = self.queue
        else:
            due: dict[str, tuple[str, str]] = {}
            held_back = chain(self.unpublished | self.pending, (entry for _, entry in self.queue))
            for sid, wanted in held_back:
                for month in self._state(sid).months if wanted is None else (wanted,):
                    due[_usage_key(sid, month)] = (sid, month)
            ordered = sorted(due.items())
        # Each changed aggregate once, as the batches left it; a few hundred per
        # transaction, and the positions with the last of them.
        self.left = ordered[AGGREGATES_PER_TRANSACTION:]
        aggregates = {
            key: self._state(sid).aggregate_document(month, now)
            for key, (sid, month) in ordered[:AGGREGATES_PER_TRANSACTION]
        }
        await write_aggregates(uow, self.settings, aggregates)
        if not self.left:
            uow.save_positions({**self.unsaved_positions, **self.positions})

    def settled(self) -> bool:
        return not (self.unpublished or self.queue or self.unsaved_positions)

    def more_to_write(self) -> bool:
        return bool(self.queue)

    def committed(self) -> None:
        if self.publishing and not self.left:
            self.queue = []
            self.unpublished.clear()
            self.unsaved_positions.clear()
            self.last_published = time.monotonic()
        elif self.publishing:  # the rest goes in the next transactions (``more_to_write``)
            self.queue = self.left  # everything held back is in it now
            self.unpublished.clear()
            self.unsaved_positions.update(self.positions)
        else:
            self.unpublished |= self.pending
            self.unsaved_positions.update(self.positions)
        METRICS.set("usage_aggregates_unpublished", len(self.unpublished) + len(self.queue))
        self._end_batch()
        excess = len(self.rooms) - self.settings.state_cache_size
        if excess > 0:
            for room_id in list(self.rooms)[:excess]:
                del self.rooms[room_id]
                del self.versions[scope_id("room", room_id)]
        excess = len(self.centers) - self.settings.state_cache_size
        if excess > 0:
            self._drop_centers(list(self.centers)[:excess])

    def forget(self, *, everything: bool) -> None:
        dropped = set(self.rooms) if everything else set(self.touched)
        for room_id in dropped:
            self.rooms.pop(room_id, None)
            self.versions.pop(scope_id("room", room_id), None)
        self._drop_centers(set(self.centers) if everything else self.touched_centers)
        self._end_batch()

    def revoked(self) -> None:
        self.forget(everything=True)
        self.unpublished.clear()
        self.unsaved_positions.clear()
        self.queue = []
        METRICS.set("usage_aggregates_unpublished", 0)

    def _end_batch(self) -> None:
        self.positions.clear()
        self.touched.clear()
        self.touched_centers.clear()
        self.changed.clear()
        self.pending.clear()
        self.left = []
        self.publishing = False
        self.continuing = False

    def _state(self, sid: str) -> UsageState:
        scope, ident = sid.split(":", 1)
        return self.rooms[ident] if scope == "room" else self.centers[ident]

    def _drop_centers(self, center_ids: Iterable[str]) -> None:
        for center_id in list(center_ids):
            self.centers.pop(center_id, None)
            self.versions.pop(scope_id("center", center_id), None)


def _usage_key(sid: str, month: str) -> str:
    scope, ident = sid.split(":", 1)
    return usage_key(scope, ident, month)


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
    uow: UnitOfWork, settings: Settings, pending: dict[str, AggregateDocument]
) -> None:
    """Store each changed aggregate and queue it for ``usage-monthly`` (last value per key)."""
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for key, aggregate in pending.items():
        value = aggregate_json(aggregate)  # serialized once: message and row
        uow.publish(settings.topics.usage_monthly, key, value)
        rows.append(
            {
                "key": key,
                "scope": aggregate["scope"],
                "ident": aggregate["id"],
                "month": aggregate["month"],
                "value": value,
                "final": aggregate["final"],
                "updated_at": now,
            }
        )
    await uow.upsert_usage_rows(rows)
    if pending:
        METRICS.inc("usage_aggregates_published_total", len(pending))


def aggregate_json(document: AggregateDocument) -> JsonText:
    """An aggregate's ``usage-monthly`` JSON, from its document: the bytes its model would
    write, for about half the CPU of building the model and dumping it."""
    return JsonText(pydantic_core.to_json(document).decode())


async def resume_positions(settings: Settings, db: Database) -> dict[int, int]:
    """Put back the offsets on ``decisions`` Kafka forgot, from the database's positions.

    Kafka drops a group's offsets once it has been stopped for ``offsets.retention.minutes``;
    the group would then count the log from the start, beyond its 30-day id memory. Only
    partitions without any committed offset are set (the group is empty then); returns
    them, partition to offset.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from infra.retention import committed_offsets

    decisions = settings.topics.decisions
    async with db.read_session() as session:
        rows = await session.execute(
            select(ConsumerPositionRow.partition, ConsumerPositionRow.next_offset).where(
                ConsumerPositionRow.consumer == settings.statistics_group,
                ConsumerPositionRow.topic == decisions,
            )
        )
        stored = {int(partition): int(offset) for partition, offset in rows}
    if not stored:
        return {}
    committed = await committed_offsets(settings.bootstrap, settings.statistics_group, decisions)
    missing = {p: offset for p, offset in stored.items() if committed.get(p, -1) < 0}
    if not missing:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=settings.statistics_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        offsets = {TopicPartition(decisions, p): offset for p, offset in missing.items()}
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    except KafkaError as error:
        # A member that is running has its offsets; it is the one that counts.
        log.warning("could not restore offsets", extra={"error": str(error)})
        return {}
    finally:
        await consumer.stop()
    log.warning(
        "restored the statistics' offsets from the database",
        extra={"group": settings.statistics_group, "offsets": missing},
    )
    return missing


class MonthNotEnded(ValueError):
    """A close by hand asked for a month that has not ended everywhere yet."""


@dataclass
class CloseReport:
    """What one run of the month close did."""

    scopes: int = 0
    """Rooms and centers looked at."""
    closed: dict[str, int] = field(default_factory=dict)
    """Scopes that got each month final, by month."""
    aggregates: int = 0
    """Final ``usage-monthly`` values sent."""


async def close_months(
    settings: Settings, db: Database, month: str | None = None, now: datetime | None = None
) -> int:
    """Close every month that has ended where each room is; returns the aggregates sent.

    ``month``: close no further than it, and refuse (``MonthNotEnded``) if it has not
    ended in every room's time zone at ``now`` (the demo closes history this way).
    """
    report = await close_due_months(settings, db, through=month, now=now)
    return report.aggregates


async def close_due_months(
    settings: Settings, db: Database, *, through: str | None = None, now: datetime | None = None
) -> CloseReport:
    """Bring every room and center up to date: each month ended in its zone(s) is final.

    Catches up however many months were missed (a service down over the 1st), and is
    idempotent: a month already final is not sent again. Without ``through`` only the
    scopes whose ``next_close_at`` has passed (or that have no row yet) are read, so a
    run when nothing is due costs one small query. Every closed state's version moves
    on, so a statistics consumer holding it in memory reads it again before its next
    write; a consumer that wrote meanwhile makes the close read again (``StaleState``),
    and so does a second closer: nothing is closed or sent twice.
    """
    # In UTC: SQLite stores times without their offset, and compares them as text.
    now = (now or utcnow()).astimezone(UTC)
    if through is not None:
        check_month(through)
    report = CloseReport()
    candidates = await _close_candidates(db, now, everything=through is not None)
    report.scopes = len(candidates)
    if through is not None:
        await _refuse_unended(settings, db, candidates, through, now)
    for start in range(0, len(candidates), CLOSE_CHUNK):
        chunk = candidates[start : start + CLOSE_CHUNK]
        for attempt in range(1, CLOSE_ATTEMPTS + 1):
            try:
                closed, sent = await _close_chunk(settings, db, chunk, through, now)
                break
            except StaleState:
                # The statistics consumer (or another closer) wrote a state meanwhile
                # (SQLite reads take no lock): read again and close on top of it.
                if attempt == CLOSE_ATTEMPTS:
                    raise
                log.warning("month close met a newer state; again", extra={"attempt": attempt})
                await asyncio.sleep(0.2 * attempt)
        for month in closed:
            report.closed[month] = report.closed.get(month, 0) + closed[month]
        report.aggregates += sent
    if report.closed:
        log.info(
            "months closed",
            extra={"months": dict(sorted(report.closed.items())), "aggregates": report.aggregates},
        )
    return report


CLOSE_CHUNK = 500
"""Scopes closed in one transaction: a conflict with the consumer retries only these."""


def check_month(month: str) -> str:
    """``month`` if it is a ``YYYY-MM`` month, else ``ValueError`` saying so."""
    if not MONTH_PATTERN.fullmatch(month):
        raise ValueError(f"{month!r} is not a month: use YYYY-MM, e.g. 2026-11")
    return month


MONTH_PATTERN = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


async def _close_candidates(db: Database, now: datetime, *, everything: bool) -> list[str]:
    """Scope ids with a month to close: no close row yet, or ``next_close_at`` passed."""
    query = select(UsageStateRow.scope_id).outerjoin(
        MonthCloseRow, MonthCloseRow.scope_id == UsageStateRow.scope_id
    )
    if not everything:
        query = query.where(
            or_(MonthCloseRow.scope_id.is_(None), MonthCloseRow.next_close_at <= now)
        )
    async with db.read_session() as session:
        return sorted(await session.scalars(query.order_by(UsageStateRow.scope_id)))


async def _refuse_unended(
    settings: Settings, db: Database, ids: list[str], month: str, now: datetime
) -> None:
    """``MonthNotEnded`` naming a zone where ``month`` is not over at ``now``."""
    zones: set[str] = set()
    async with db.unit_of_work(settings.statistics_group) as uow:
        for start in range(0, len(ids), CLOSE_CHUNK):
            stored = await uow.load_states(
                UsageStateRow, ids[start : start + CLOSE_CHUNK], lock=False
            )
            for sid, found in stored.items():
                zones |= zones_of(load_state(sid, found.state))
    zones = zones or {settings.timezone}  # nothing counted yet: the settings' zone
    ends = month_ends_at(month, zones)
    if now < ends:
        last = max(zones, key=lambda zone: month_ends_at(month, {zone}))
        raise MonthNotEnded(
            f"{month} has not ended yet in {last}: it can be closed from {ends:%Y-%m-%d %H:%M} UTC"
        )


async def _close_chunk(
    settings: Settings, db: Database, ids: list[str], through: str | None, now: datetime
) -> tuple[dict[str, int], int]:
    """Close the due months of the scopes ``ids`` in one transaction."""
    closed: dict[str, int] = {}
    async with db.unit_of_work(settings.statistics_group) as uow:
        # States first (locked on PostgreSQL), then the close rows: a second closer
        # waiting on the lock reads the rows the first one wrote.
        stored = await uow.load_states(UsageStateRow, ids, lock=True)
        rows = {
            row.scope_id: row.closed_through
            for row in await uow.session.scalars(
                select(MonthCloseRow).where(MonthCloseRow.scope_id.in_(ids))
            )
        }
        states: dict[str, UsageState] = {}
        versions: dict[str, int] = {}
        pending: dict[str, AggregateDocument] = {}
        marks: list[dict[str, Any]] = []
        for sid, found in stored.items():
            state = load_state(sid, found.state)
            result = close_due(state, rows.get(sid), now, through)
            if result.months:
                states[sid], versions[sid] = state, found.version
                for aggregate in result.aggregates:
                    pending[aggregate.key] = dict(aggregate)
                for month in result.months:
                    closed[month] = closed.get(month, 0) + 1
            marks.append(
                {
                    "scope_id": sid,
                    "closed_through": result.closed_through,
                    "next_close_at": result.next_close_at,
                    "updated_at": now,
                }
            )
        await save_states(uow, states, versions)
        await write_aggregates(uow, settings, pending)
        uow.save_month_closes(marks)
    return closed, len(pending)


def schedule_month_close(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    db: Database,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Close what is due now (a restart catches up), then every few minutes.

    Rooms close by their own time zone, so some month ends every hour or so around the
    1st; a run when nothing is due is one small query.
    """

    async def close() -> None:
        await close_due_months(settings, db, now=clock())

    scheduler.add_job(
        close,
        "interval",
        seconds=settings.month_close_interval_s,
        id="month-close",
        max_instances=1,
        coalesce=True,
        next_run_time=utcnow(),
    )
