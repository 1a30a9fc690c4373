"""The outbox relay: publishes what the consumers committed, in commit order.

Every message carries the header ``spaces-outbox-id``. On start the relay reads
the tail of each output partition and marks the rows it finds there as
published, so a crash between Kafka's acknowledgement and the database update
does not publish them a second time. One relay per database publishes: it holds a lock
of the database (``Database.exclusive``); any other relay waits as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.db import Database, PendingMessage
from infra.kafka import encode, make_producer
from infra.observability import METRICS
from infra.settings import Settings

log = logging.getLogger(__name__)
HEADER = "spaces-outbox-id"
BATCH = 500
IN_FLIGHT = 4
"""Batches sent and not yet acknowledged, at most."""


class OutboxRelay:
    def __init__(
        self, settings: Settings, db: Database, outbox_written: asyncio.Event | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.outbox_written = outbox_written or asyncio.Event()
        """Set by a consumer in this process after it commits; otherwise the relay polls."""
        self.published = 0

    def output_topics(self) -> tuple[str, ...]:
        topics = self.settings.topics
        return (topics.decisions, topics.occupancy, topics.dead_letters, topics.usage_monthly)

    async def recover(self) -> int:
        """Mark as published the unpublished rows already in the log; returns how many.

        Rows sent but not yet marked are at most: the batches the acknowledger holds
        (up to ``IN_FLIGHT``), the queue behind it (as many again) and the one being sent.
        They are the oldest that many unpublished rows, and lie within the last that many
        records of a partition.
        """
        unmarked_at_most = BATCH * (2 * IN_FLIGHT + 1)
        pending = await self.db.unpublished(unmarked_at_most)
        if not pending:
            return 0
        wanted = {row.id for row in pending}
        found = await self._ids_in_tails(self.output_topics(), depth=unmarked_at_most)
        done = sorted(wanted & found)
        await self.db.mark_published(done)
        if done:
            log.warning("outbox recovery: rows already in the log", extra={"rows": len(done)})
        return len(done)

    async def _ids_in_tails(self, topics: tuple[str, ...], depth: int) -> set[int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        found: set[int] = set()
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
            ends = await consumer.end_offsets(partitions)
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
                            if name == HEADER:
                                found.add(int(value))
                        if record.offset + 1 >= remaining.get(tp, 0):
                            remaining.pop(tp, None)
                if not fetched:
                    # Compaction can leave the last offsets empty: ask where we are.
                    for tp in list(remaining):
                        if await consumer.position(tp) >= remaining[tp]:
                            remaining.pop(tp)
        finally:
            await consumer.stop()
        return found

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        if ready is not None:
            ready.set()  # a standby relay is up too: it waits for the lock below
        async with self.db.exclusive("outbox-relay", stop) as leading:
            if not leading:
                return
            log.info("outbox relay leading")
            producer = make_producer(self.settings)
            await producer.start()
            try:
                await self.recover()
                await self._publish_until(stop, producer)
            finally:
                await producer.stop()

    async def _publish_until(self, stop: asyncio.Event, producer: AIOKafkaProducer) -> None:
        """Send rows as soon as they are committed; mark them once Kafka has them.

        Sending does not wait for the previous rows' acknowledgements: up to
        ``IN_FLIGHT`` batches are on their way while the next rows are read and sent.
        The one idempotent producer keeps them in order per partition, and a row is
        marked published only after Kafka acknowledged it (rows sent but not marked
        when the process dies are found in the topics' tails by ``recover``).
        """
        in_flight: asyncio.Queue[tuple[list[int], list[asyncio.Future[Any]]]] = asyncio.Queue(
            IN_FLIGHT
        )
        sent: set[int] = set()
        """Rows sent; dropped from here once a read began after they were marked."""
        marked: set[int] = set()
        """Rows of ``sent`` marked published (a read begun before that may still list them)."""
        acknowledging = asyncio.create_task(self._acknowledge(in_flight, marked))

        async def unless_failed(step: Awaitable[Any]) -> None:
            """``step``, or the acknowledging task's error if it fails first."""
            waiting = asyncio.ensure_future(step)
            await asyncio.wait([waiting, acknowledging], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                acknowledging.result()  # raises why sending failed

        try:
            while True:
                settled = set(marked)
                unpublished = await self.db.unpublished(BATCH + len(sent))
                sent -= settled
                marked -= settled
                rows = [row for row in unpublished if row.id not in sent][:BATCH]
                if not rows:
                    if stop.is_set():
                        break  # a graceful stop leaves nothing committed unpublished
                    await unless_failed(self._wait_for_rows(stop))
                    continue
                futures = [await self._send(producer, row) for row in rows]
                ids = [row.id for row in rows]
                sent.update(ids)
                await unless_failed(in_flight.put((ids, futures)))
            await unless_failed(in_flight.join())
        finally:
            acknowledging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acknowledging

    async def _acknowledge(
        self,
        in_flight: asyncio.Queue[tuple[list[int], list[asyncio.Future[Any]]]],
        marked: set[int],
    ) -> None:
        while True:
            ids, futures = await in_flight.get()
            batches = 1
            # Batches queued meanwhile are marked in the same transaction.
            while not in_flight.empty():
                more, more_futures = in_flight.get_nowait()
                ids, futures = ids + more, futures + more_futures
                batches += 1
            await asyncio.gather(*futures)
            await self.db.mark_published(ids)
            marked.update(ids)
            self.published += len(ids)
            METRICS.inc("outbox_published_total", len(ids))
            log.debug("outbox published", extra={"rows": len(ids), "last_id": ids[-1]})
            for _ in range(batches):
                in_flight.task_done()

    @staticmethod
    async def _send(producer: AIOKafkaProducer, row: PendingMessage) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send(
            row.topic,
            value=encode(row.value),
            key=row.key.encode("utf-8") if row.key is not None else None,
            headers=[(HEADER, str(row.id).encode())],
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
