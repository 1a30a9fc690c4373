"""The effectively-once consume loop shared by the room authority and the statistics.

Per batch: read many records, decide them inside ONE database transaction
(state, processed ``event_id`` s and outbox rows together), commit it, and only
then commit the Kafka offsets. A crash before the database commit redelivers
the batch and it is decided again from the old state; a crash between the two
commits redelivers it and the ``event_id`` check skips what was already done.
A handler that publishes some outputs later than their batch (the statistics during a
backlog) keeps the offsets back until it has (``Handler.settled``): the loop has it
publish when idle, revoked or stopped.

FastStream 0.7 cannot give this loop what it needs (the range assignor, a
database commit between fetch and offset commit, per-partition offsets, a
rebalance hook that waits for the batch in flight), so it is plain aiokafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from infra.db import Database, StaleState
from infra.kafka import make_group_consumer
from infra.observability import DECISIONS, METRICS, observe_batch
from infra.settings import Settings
from service_layer.processing import (
    Handler,
    PoisonRecord,
    Position,
    Record,
    position,
    process_batch,
)

log = logging.getLogger(__name__)


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


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are given up only between batches, after their offsets are committed."""

    def __init__(
        self,
        lock: asyncio.Lock,
        buffer: TimeAlignedBuffer,
        handler: Handler[Any],
        settle: Callable[[], Awaitable[None]],
    ) -> None:
        self.lock = lock
        self.buffer = buffer
        self.handler = handler
        self.settle = settle

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            await self.settle()
            # Records fetched but not decided are read again, from the committed offsets,
            # by whoever owns the partitions next (maybe us). States kept in memory are
            # read again from the database: another member may change them meanwhile.
            self.buffer.clear()
            self.handler.revoked()
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
    linger_s: float = 0.0
    """After a small batch (``linger_below``), wait until this long after its start before
    the next: fewer, larger batches (the statistics, whose readers want monthly figures,
    not each decision at once). A larger batch means a backlog: it goes on at once."""

    @property
    def linger_below(self) -> int:
        """Records in a batch below which the loop is caught up with live traffic."""
        return max(1, self.max_records // 10)


class EffectivelyOnceLoop:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        handler: Handler[Any],
        options: LoopOptions,
        outbox_written: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.handler = handler
        self.options = options
        self.outbox_written = outbox_written
        """Set after each committed batch, so a relay in this process publishes at once."""
        self._lock = asyncio.Lock()
        self._committing: asyncio.Future[None] | None = None
        """The offset commit of the last batch, while in flight."""
        self._held: dict[TopicPartition, int] = {}
        """Offsets of batches decided whose outputs the handler has not all published
        (:meth:`Handler.settled`): committed to Kafka once it has."""
        self.buffer = TimeAlignedBuffer(options.max_idle_s, options.topics)
        self.batches = 0
        self.consumer: AIOKafkaConsumer | None = None
        """While running: the consumer, for the service's lag and broker samples, and the
        one offsets are committed with."""

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        consumer = make_group_consumer(self.settings, self.options.group_id, ())
        consumer.subscribe(
            list(self.options.topics),
            listener=_WaitForBatch(self._lock, self.buffer, self.handler, self._settle),
        )
        await consumer.start()
        self.consumer = consumer
        log.info(
            "consumer started",
            extra={"group": self.options.group_id, "topics": list(self.options.topics)},
        )
        if ready is not None:
            ready.set()
        name = self.handler.name
        linger_until: float | None = None
        try:
            while not stop.is_set():
                if linger_until is not None:
                    await self._linger(stop, linger_until)
                    linger_until = None
                    continue
                # Records already buffered and ready are decided without waiting for more;
                # a group held back by a partition not read yet reads that partition first.
                # (Decided from the buffer as it is now: a rebalance may have emptied it.)
                ready_now = bool(len(self.buffer)) and not self.buffer.waiting_on
                fetched = await consumer.getmany(
                    *(self.buffer.waiting_on & consumer.assignment()),
                    timeout_ms=0 if ready_now else self.options.timeout_ms,
                    max_records=self.options.max_records,
                )
                async with self._lock:
                    self.buffer.add(fetched)
                    if not len(self.buffer):
                        if not self.handler.settled():
                            await self._settle()  # idle: publish what a backlog held back
                        continue
                    assigned = consumer.assignment()
                    records = self.buffer.take(
                        assigned,
                        await self._lagging(consumer, assigned),
                        self.options.max_records,
                        asyncio.get_running_loop().time(),
                    )
                    if not records:
                        continue
                    started = time.perf_counter()
                    if self.options.linger_s > 0 and len(records) < self.options.linger_below:
                        linger_until = time.monotonic() + self.options.linger_s
                    await self._decide(records)
                    if self.outbox_written is not None:
                        self.outbox_written.set()
                    offsets: dict[TopicPartition, int] = {}
                    for record in records:
                        offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    self._held.update(offsets)
                    await self._commit_held()
                    self.batches += 1
                    METRICS.inc(f"{name}_records_total", len(records))
                    METRICS.inc(f"{name}_batches_total")
                    METRICS.set(f"{name}_last_batch_records", len(records))
                    seconds = time.perf_counter() - started
                    METRICS.set(f"{name}_last_batch_seconds", seconds)
                    observe_batch(name, len(records), seconds)
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "batch committed",
                            extra={
                                "group": self.options.group_id,
                                "records": len(records),
                                "offsets": {str(tp): off for tp, off in offsets.items()},
                            },
                        )
                # Let the heartbeat, the relay and the other consumer run between batches.
                await asyncio.sleep(0)
        finally:
            # Leaving the group here hands our partitions over at once (graceful SIGTERM).
            async with self._lock:
                await self._settle()
            self.consumer = None
            await consumer.stop()
            log.info("consumer stopped", extra={"group": self.options.group_id})

    @staticmethod
    async def _linger(stop: asyncio.Event, until: float) -> None:
        """Wait until ``until`` (monotonic) or a stop; the heartbeat and fetching go on."""
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, until - time.monotonic()))

    async def _commit_held(self) -> None:
        """Send the offsets decided to Kafka, if the handler has published what they changed.

        They go while the next batch is fetched and decided (one commit in flight, in
        order): the database already holds the batches, so the commit only saves a
        restart from reading them again. Held back, they make a restart read those
        inputs again, which is how a handler publishes what a crash left unpublished.
        """
        if not self._held or not self.handler.settled() or self.consumer is None:
            return
        offsets, self._held = self._held, {}
        await self._offsets_committed()
        self._committing = asyncio.ensure_future(self.consumer.commit(offsets))

    async def _settle(self) -> None:
        """Have the handler publish what it holds back, then commit every offset decided.

        Between batches (idle, a revoke, a stop). If publishing fails, the offsets are
        dropped uncommitted: the partitions' next reader (maybe us) reads those inputs
        again and publishes then.
        """
        try:
            if not self.handler.settled():
                await self._decide([])
            await self._commit_held()
        except Exception as error:  # the database is away: the next reader catches up
            self._held.clear()
            METRICS.inc(f"{self.handler.name}_settle_failures_total")
            log.warning("could not publish what was held back", extra={"error": str(error)})
        await self._offsets_committed()

    async def _offsets_committed(self) -> None:
        """Wait for the offset commit in flight, if any (a rebalance waits for it too)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            await committing
        except KafkaError as error:  # CommitFailedError, IllegalStateError among them
            # The database already holds the batch; whoever owns these partitions
            # now will see its event ids and skip them.
            METRICS.inc(f"{self.handler.name}_commit_failures_total")
            log.warning("offset commit failed", extra={"error": str(error)})

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
        """Decide and commit ``records``, then the writes the handler left for more
        transactions (:meth:`Handler.more_to_write`), before anything else is read."""
        await self._decide_batch(records)
        while self.handler.more_to_write():
            await asyncio.sleep(0)  # between two transactions: the heartbeat, the relay
            await self._decide_batch([])

    async def _decide_batch(self, records: Sequence[Record]) -> None:
        """Decide and commit ``records`` in one transaction, whatever one of them holds.

        A record whose decision raises is dead-lettered with the reason and the batch
        is decided again without it; a database error (lock timeout, serialization
        failure, a state changed by a zombie) rolls back and retries with the states
        read again.
        """
        poison: dict[Position, str] = {}
        attempt = 0
        name = self.handler.name
        while True:
            DECISIONS.discard(self.handler)  # what an attempt rolled back is decided again
            try:
                async with self.db.unit_of_work(self.options.group_id) as uow:
                    await process_batch(uow, self.settings, self.handler, records, poison)
                self.handler.committed()
                DECISIONS.commit(self.handler)
                return
            except PoisonRecord as bad:
                self.handler.forget(everything=False)
                poison[position(bad.record)] = bad.reason
                METRICS.inc(f"{name}_poison_records_total")
                log.error(
                    "record could not be decided; dead-lettering it",
                    extra={
                        "topic": bad.record.topic,
                        "partition": bad.record.partition,
                        "offset": bad.record.offset,
                        "reason": bad.reason,
                    },
                    exc_info=bad.__cause__,
                )
            except (DBAPIError, StaleState) as error:
                self.handler.forget(everything=True)
                attempt += 1
                METRICS.inc(f"{name}_db_retries_total")
                if attempt > self.options.db_retries:
                    raise
                # A state another writer changed meanwhile (the month close, a zombie
                # owner) is expected now and then: INFO. A database error is not.
                log.log(
                    logging.INFO if isinstance(error, StaleState) else logging.WARNING,
                    "batch rolled back, retrying",
                    extra={"attempt": attempt, "error": str(error)[:200]},
                )
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
            except BaseException:
                self.handler.forget(everything=True)
                raise
