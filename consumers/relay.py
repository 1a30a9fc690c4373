"""The outbox relay: publishes what the consumers committed, in commit order.

One relay per database publishes: it holds a lock of the database
(``Database.exclusive``); any other relay waits as a standby. The lock alone cannot stop
a relay that lost it without noticing (a PostgreSQL connection that dropped), so the
relay also publishes in Kafka transactions under the outbox's own ``transactional.id``
(``Database.outbox_transactional_id``): the relay taking over starts its producer with
that id, which aborts the open transaction of the one before and fences it; the fenced
relay's next write or commit fails, and it goes back to waiting as a standby.

Every message carries the header ``spaces-outbox-uid``, the row's id unique forever. On
start the relay reads the committed tail of each output partition and marks the rows it
finds there as published, so a transaction committed just before a crash, and not yet
marked in the database, is not published a second time. Integer ids come back after a
reset or a restore, uids do not: recovery matches only rows that were really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.producer.message_accumulator import BatchBuilder

from infra.db import Database, PendingMessage
from infra.kafka import encode, make_reader, make_transactional_producer, partition_for
from infra.observability import METRICS, observe_relay_transaction
from infra.settings import Settings

log = logging.getLogger(__name__)
HEADER = "spaces-outbox-id"
"""The row's integer id, for people reading the log; recovery does not use it."""
UID_HEADER = "spaces-outbox-uid"
"""The row's ``uid``: what recovery matches."""
ROWS_PER_TRANSACTION = 8_000
"""Rows sent in one Kafka transaction, at most (one record batch per partition, pipelined).

Large because a transaction's cost is mostly waiting, not work: its requests and its commit
each need a turn of the event loop, which the room authority in this process holds for a
whole batch at a time during a backlog. At 1,000 rows per transaction the relay fell behind
the authority it relays (at 10,000 rooms it had sent 20,000 rows when the authority had
decided 25,000 inputs, about 45,000 rows), and the statistics, which read only what it
committed, waited with a core idle. Live traffic forms small transactions whatever the
limit: a transaction carries only what was committed while the one before was in flight.
"""
MARKING = 2
"""Committed transactions waiting for the database to mark their rows, at most."""
T = TypeVar("T")


class OutboxRelay:
    def __init__(
        self, settings: Settings, db: Database, outbox_written: asyncio.Event | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.outbox_written = outbox_written or asyncio.Event()
        """Set by a consumer in this process after it commits; otherwise the relay polls."""
        self.published = 0
        self.fenced = 0
        """Times another relay took over while this one led."""
        self._partition_counts: dict[str, int] = {}
        self._sent_through = 0
        """The greatest id this leader has read to send (see ``_next_rows``)."""

    def output_topics(self) -> tuple[str, ...]:
        topics = self.settings.topics
        return (topics.decisions, topics.occupancy, topics.dead_letters, topics.usage_monthly)

    async def recover(self) -> int:
        """Mark as published the unpublished rows already committed to the log; how many.

        Runs after this relay's producer started, so the relay before it is fenced and
        its open transaction aborted: what is committed stays so. Rows committed but not
        marked are at most those of the transactions the marking task holds and has
        queued (``MARKING`` each) and the one committed behind them; they are among the
        oldest that many unpublished rows. A partition's tail holds them, the aborted
        transaction (one at most: each relay recovers before it sends) and a marker per
        transaction.
        """
        per_transaction = ROWS_PER_TRANSACTION
        unmarked_at_most = per_transaction * (2 * MARKING + 1)
        depth = unmarked_at_most + per_transaction + 2 * MARKING + 2
        pending = await self.db.unpublished(unmarked_at_most)
        if not pending:
            return 0
        by_uid = {row.uid: row.id for row in pending}
        found = await self._uids_in_tails(self.output_topics(), depth=depth)
        done = sorted(by_uid[uid] for uid in by_uid.keys() & found)
        await self.db.mark_published(done)
        if done:
            log.warning("outbox recovery: rows already in the log", extra={"rows": len(done)})
        return len(done)

    async def _uids_in_tails(self, topics: tuple[str, ...], depth: int) -> set[str]:
        """The ``spaces-outbox-uid`` of the last ``depth`` offsets' committed records."""
        consumer = make_reader(self.settings)
        await consumer.start()
        found: set[str] = set()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(
                    consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
                )
            ]
            if not partitions:
                return found
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)  # read_committed: the stable end
            begins = await consumer.beginning_offsets(partitions)
            remaining = {}
            for tp in partitions:
                start = max(begins[tp], ends[tp] - depth)
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    remaining[tp] = ends[tp]
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in fetched.items():
                    for record in records:
                        for name, value in record.headers or ():
                            if name == UID_HEADER:
                                found.add(value.decode())
                        if record.offset + 1 >= remaining.get(tp, 0):
                            remaining.pop(tp, None)
                if not fetched:
                    # Compaction, aborted records and transaction markers leave offsets
                    # that yield no record: ask where we are.
                    for tp in list(remaining):
                        if await consumer.position(tp) >= remaining[tp]:
                            remaining.pop(tp)
        finally:
            await consumer.stop()
        return found

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        if ready is not None:
            ready.set()  # a standby relay is up too: it waits for the lock below
        while not stop.is_set():
            async with self.db.exclusive("outbox-relay", stop) as leading:
                if not leading:
                    return
                log.info("outbox relay leading")
                if await self._lead(stop):
                    return
            # Fenced: another relay leads. Stand by for the lock again.

    async def _lead(self, stop: asyncio.Event) -> bool:
        """Publish until stopped (True) or fenced by a relay that took over (False)."""
        producer = make_transactional_producer(
            self.settings, await self.db.outbox_transactional_id()
        )
        await producer.start()  # fences the relay before this one, aborts its transaction
        self._partition_counts.clear()  # read again from this producer's metadata
        try:
            await self.recover()
            await self._publish_until(stop, producer)
            return True
        except ProducerFenced:
            self.fenced += 1
            METRICS.inc("outbox_relay_fenced_total")
            log.warning("outbox relay fenced: another relay took over; standing by")
            return False
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _publish_until(self, stop: asyncio.Event, producer: AIOKafkaProducer) -> None:
        """Send rows as soon as they are committed, in transactions; mark them after.

        One transaction carries what is unpublished, up to ``ROWS_PER_TRANSACTION`` rows:
        the producer pipelines their sends, and the commit waits for all of them. The
        committed rows are marked published by another task while the next transaction
        is sent (rows committed but not marked when the process dies are found by
        ``recover``).
        """
        marking: asyncio.Queue[list[int]] = asyncio.Queue(MARKING)
        self._sent_through = 0
        sent: set[int] = set()
        """Rows sent; dropped from here once a read began after they were marked."""
        marked: set[int] = set()
        """Rows of ``sent`` marked published (a read begun before that may still list them)."""
        marker = asyncio.create_task(self._mark(marking, marked))

        async def unless_failed(step: Awaitable[T]) -> T:
            """``step``, or the marking task's error if it fails first."""
            waiting = asyncio.ensure_future(step)
            await asyncio.wait([waiting, marker], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                marker.result()  # raises why marking failed
            return waiting.result()

        try:
            while True:
                rows = await unless_failed(self._next_rows(sent, marked))
                if not rows:
                    if stop.is_set():
                        break  # a graceful stop leaves nothing committed unpublished
                    await unless_failed(self._wait_for_rows(stop))
                    continue
                ids = [row.id for row in rows]
                sent.update(ids)
                # Rows committed meanwhile wait for this commit, and go in the next
                # transaction together: the busier, the larger the transactions.
                await unless_failed(self._transaction(producer, rows))
                await unless_failed(marking.put(ids))
            await unless_failed(marking.join())
        finally:
            marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await marker

    async def _next_rows(self, sent: set[int], marked: set[int]) -> list[PendingMessage]:
        """The oldest unpublished rows not already sent, up to one transaction's worth.

        Where ids follow commits (SQLite), no row committed after a read can have a
        smaller id than the rows it returned, so a read starts after the last row sent:
        rows sent and not yet marked are not read again (at full speed, they were three
        quarters of what each read returned).
        """
        settled = set(marked)
        if self.db.ids_follow_commits:
            unpublished = await self.db.unpublished(ROWS_PER_TRANSACTION, after=self._sent_through)
            if unpublished:
                self._sent_through = unpublished[-1].id
        else:
            unpublished = await self.db.unpublished(ROWS_PER_TRANSACTION + len(sent))
        sent -= settled
        marked -= settled
        return [row for row in unpublished if row.id not in sent][:ROWS_PER_TRANSACTION]

    async def _transaction(self, producer: AIOKafkaProducer, rows: list[PendingMessage]) -> None:
        """Send ``rows`` and commit them, all or none (a fenced producer raises here)."""
        began = time.perf_counter()
        await producer.begin_transaction()
        await asyncio.gather(*await self._send_batches(producer, rows))
        await producer.commit_transaction()
        observe_relay_transaction(time.perf_counter() - began)

    async def _send_batches(
        self, producer: AIOKafkaProducer, rows: list[PendingMessage]
    ) -> list[asyncio.Future[Any]]:
        """Queue ``rows`` as one record batch per partition, in order within each.

        Keyed rows go to the partition Kafka's default partitioner picks for the key (the
        one ``send`` would pick), appended to a batch we build: one ``send`` per row cost
        the relay more than everything else it does. A row without a key is ``send`` on
        its own (no order to keep), and so is one a fresh batch cannot hold.
        """
        batches: dict[tuple[str, int], BatchBuilder] = {}
        futures: list[asyncio.Future[Any]] = []
        for row in rows:
            if row.key is None:
                futures.append(await self._send(producer, row))
                continue
            where = (row.topic, partition_for(row.key, await self._partitions(producer, row.topic)))
            batch = batches.get(where)
            if batch is None:
                batch = batches[where] = producer.create_batch()
            if self._append(batch, row) is None:
                # Full: it goes now, and the row starts the next batch of its partition.
                futures.append(await producer.send_batch(batch, where[0], partition=where[1]))
                batch = batches[where] = producer.create_batch()
                if self._append(batch, row) is None:
                    del batches[where]
                    futures.append(await self._send(producer, row))
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    @staticmethod
    def _append(batch: BatchBuilder, row: PendingMessage) -> Any:
        return batch.append(
            timestamp=None,
            key=(row.key or "").encode("utf-8"),
            value=encode(row.value),
            headers=[(HEADER, str(row.id).encode()), (UID_HEADER, row.uid.encode())],
        )

    async def _partitions(self, producer: AIOKafkaProducer, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._partition_counts[topic] = len(await producer.partitions_for(topic))
        return count

    async def _mark(self, marking: asyncio.Queue[list[int]], marked: set[int]) -> None:
        while True:
            ids = await marking.get()
            transactions = 1
            # Transactions committed meanwhile are marked in the same database transaction.
            while not marking.empty():
                ids = ids + marking.get_nowait()
                transactions += 1
            await self.db.mark_published(ids)
            marked.update(ids)
            self.published += len(ids)
            METRICS.inc("outbox_published_total", len(ids))
            log.debug("outbox published", extra={"rows": len(ids), "last_id": ids[-1]})
            for _ in range(transactions):
                marking.task_done()

    @staticmethod
    async def _send(producer: AIOKafkaProducer, row: PendingMessage) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send(
            row.topic,
            value=encode(row.value),
            key=row.key.encode("utf-8") if row.key is not None else None,
            headers=[(HEADER, str(row.id).encode()), (UID_HEADER, row.uid.encode())],
        )
        return future

    async def _wait_for_rows(self, stop: asyncio.Event) -> None:
        """Until a consumer here commits, the poll interval passes, or we are stopped."""
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.outbox_written.wait()),
        ]
        try:
            await asyncio.wait(
                waits, timeout=self.settings.relay_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        self.outbox_written.clear()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
