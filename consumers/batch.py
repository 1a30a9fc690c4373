"""The effectively-once consume loop shared by the room authority and the statistics.

Per batch: read many records, decide them inside ONE database transaction
(state, processed ``event_id`` s and outbox rows together), commit it, and only
then commit the Kafka offsets. A crash before the database commit redelivers
the batch and it is decided again from the old state; a crash between the two
commits redelivers it and the ``event_id`` check skips what was already done.

FastStream 0.7 cannot give this loop what it needs (the range assignor, a
database commit between fetch and offset commit, per-partition offsets, a
rebalance hook that waits for the batch in flight), so it is plain aiokafka.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid5

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from infra.db import Database, UnitOfWork
from infra.kafka import make_group_consumer
from infra.observability import METRICS
from infra.settings import Settings
from schemas.outputs import DeadLetter

log = logging.getLogger(__name__)


class Record(Protocol):
    """The fields of an aiokafka ``ConsumerRecord`` this code reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class BatchProcessor(Protocol):
    """What a consumer does with one batch, inside the unit of work it is given."""

    name: str

    async def process(self, uow: UnitOfWork, records: Sequence[Record]) -> None: ...


class TimeAlignedBuffer:
    """Hands out records of co-partitioned topics in timestamp order, across fetches.

    A room's inputs arrive on three topics whose partition p all hold that room
    (same key, same partition count). A record is released only when every other
    topic's partition p either has buffered records (so the earliest head goes
    first) or has nothing more to read; a partition that is behind but has not
    been fetched yet holds its group back, for at most ``max_idle_s`` (the idea
    of Kafka Streams' ``max.task.idle.ms``). So a room configured a moment before
    its first check-in is decided first, even when the check-ins' partition was
    fetched earlier. Within a partition, order is never changed.
    """

    def __init__(self, max_idle_s: float, topic_order: Sequence[str] = ()) -> None:
        self.max_idle_s = max_idle_s
        # Equal timestamps: rooms and sessions before bookings before check-ins.
        self.rank = {topic: i for i, topic in enumerate(topic_order)}
        self.buffers: dict[TopicPartition, deque[Record]] = {}
        self.waiting_on: set[TopicPartition] = set()
        """Partitions that held a group back at the last ``take``: fetch these next."""
        self._blocked_since: float | None = None

    def add(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        for tp, records in fetched.items():
            self.buffers.setdefault(tp, deque()).extend(records)

    def clear(self) -> None:
        self.buffers.clear()
        self.waiting_on.clear()
        self._blocked_since = None

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def take(
        self,
        assigned: Iterable[TopicPartition],
        lagging: set[TopicPartition],
        limit: int,
        now: float,
    ) -> list[Record]:
        groups: dict[int, list[TopicPartition]] = {}
        for tp in assigned:
            groups.setdefault(tp.partition, []).append(tp)
        blocked = False
        forced = self._blocked_since is not None and now - self._blocked_since >= self.max_idle_s
        out: list[Record] = []
        self.waiting_on = set()
        for members in groups.values():
            while len(out) < limit:
                heads = [tp for tp in members if self.buffers.get(tp)]
                if not heads:
                    break
                waiting = [tp for tp in members if not self.buffers.get(tp) and tp in lagging]
                if waiting and not forced:
                    blocked = True
                    self.waiting_on.update(waiting)
                    break
                first = min(
                    heads,
                    key=lambda tp: (
                        self.buffers[tp][0].timestamp,
                        self.rank.get(tp.topic, len(self.rank)),
                        tp.topic,
                    ),
                )
                out.append(self.buffers[first].popleft())
        if blocked and not out:
            self._blocked_since = self._blocked_since if self._blocked_since is not None else now
        else:
            self._blocked_since = None
        return out


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "message"
        parts.append(f"{where}: {problem['msg']}")
    return "contract violation: " + "; ".join(parts)


def dead_letter(
    uow: UnitOfWork,
    settings: Settings,
    record: Record,
    reason: str,
    group: str,
    now: datetime,
) -> None:
    """Park an input nobody can decide, with its original bytes and where it came from."""
    letter = DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=base64.b64encode(record.key).decode() if record.key is not None else None,
        original=base64.b64encode(record.value or b"").decode(),
        reason=reason,
        consumer_group=group,
        received_at=now,
    )
    key = record.key.decode("utf-8", "replace") if record.key else None
    uow.publish(settings.topics.dead_letters, key, letter.model_dump(mode="json"))
    METRICS.inc("dead_letters_total")
    log.warning(
        "dead letter",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
        },
    )


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are given up only between batches, after their offsets are committed."""

    def __init__(self, lock: asyncio.Lock, buffer: TimeAlignedBuffer) -> None:
        self.lock = lock
        self.buffer = buffer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            # Records fetched but not decided are read again, from the committed offsets,
            # by whoever owns the partitions next (maybe us).
            self.buffer.clear()
            log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(map(str, assigned))})


@dataclass
class LoopOptions:
    group_id: str
    topics: tuple[str, ...]
    max_records: int
    timeout_ms: int
    db_retries: int = 5
    max_idle_s: float = 1.0


class EffectivelyOnceLoop:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        processor: BatchProcessor,
        options: LoopOptions,
        outbox_written: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.processor = processor
        self.options = options
        self.outbox_written = outbox_written
        """Set after each committed batch, so a relay in this process publishes at once."""
        self._lock = asyncio.Lock()
        self.buffer = TimeAlignedBuffer(options.max_idle_s, options.topics)
        self.batches = 0

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        consumer = make_group_consumer(self.settings, self.options.group_id, ())
        consumer.subscribe(
            list(self.options.topics), listener=_WaitForBatch(self._lock, self.buffer)
        )
        await consumer.start()
        log.info(
            "consumer started",
            extra={"group": self.options.group_id, "topics": list(self.options.topics)},
        )
        if ready is not None:
            ready.set()
        more_ready = False
        try:
            while not stop.is_set():
                # A group held back by a partition not read yet: read that partition first.
                # Records already buffered and ready are decided without waiting for more.
                fetched = await consumer.getmany(
                    *(self.buffer.waiting_on & consumer.assignment()),
                    timeout_ms=0 if more_ready else self.options.timeout_ms,
                    max_records=self.options.max_records,
                )
                async with self._lock:
                    self.buffer.add(fetched)
                    if not len(self.buffer):
                        continue
                    assigned = consumer.assignment()
                    records = self.buffer.take(
                        assigned,
                        await self._lagging(consumer, assigned),
                        self.options.max_records,
                        asyncio.get_running_loop().time(),
                    )
                    more_ready = len(records) == self.options.max_records and bool(len(self.buffer))
                    if not records:
                        continue
                    await self._decide(records)
                    if self.outbox_written is not None:
                        self.outbox_written.set()
                    offsets: dict[TopicPartition, int] = {}
                    for record in records:
                        offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    try:
                        await consumer.commit(offsets)
                    except (CommitFailedError, IllegalStateError) as error:
                        # The database already holds the batch; whoever owns these
                        # partitions now will see its event ids and skip them.
                        METRICS.inc(f"{self.processor.name}_commit_failures_total")
                        log.warning("offset commit failed", extra={"error": str(error)})
                    self.batches += 1
                    METRICS.inc(f"{self.processor.name}_records_total", len(records))
                    log.debug(
                        "batch committed",
                        extra={
                            "group": self.options.group_id,
                            "records": len(records),
                            "offsets": {str(tp): off for tp, off in offsets.items()},
                        },
                    )
        finally:
            # Leaving the group here hands our partitions over at once (graceful SIGTERM).
            await consumer.stop()
            log.info("consumer stopped", extra={"group": self.options.group_id})

    @staticmethod
    async def _lagging(
        consumer: AIOKafkaConsumer, assigned: Iterable[TopicPartition]
    ) -> set[TopicPartition]:
        """Partitions with records in Kafka that this consumer has not fetched yet."""
        behind: set[TopicPartition] = set()
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                behind.add(tp)
        return behind

    async def _decide(self, records: Sequence[Record]) -> None:
        attempt = 0
        while True:
            try:
                async with self.db.unit_of_work(self.options.group_id) as uow:
                    await self.processor.process(uow, records)
                return
            except DBAPIError as error:
                # Lock timeouts, serialization failures and a new room inserted by the
                # previous owner during a rebalance: the transaction rolled back, retry it.
                attempt += 1
                METRICS.inc(f"{self.processor.name}_db_retries_total")
                if attempt > self.options.db_retries:
                    raise
                log.warning(
                    "batch rolled back, retrying",
                    extra={"attempt": attempt, "error": str(error.orig)[:200]},
                )
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))


_POSITION_NAMESPACE = UUID("0b7c3f0e-52a4-4d6e-9f1d-6a0c8e2b4d17")


def position_id(record: Record) -> str:
    """Identity of an unreadable record, so it is dead-lettered once however often it arrives."""
    return str(uuid5(_POSITION_NAMESPACE, f"{record.topic}:{record.partition}:{record.offset}"))


def record_key(record: Record) -> str | None:
    return record.key.decode("utf-8", "replace") if record.key is not None else None
