"""Issue 7: the relay can neither lose nor double a decision (real broker).

1. Outbox ids that come back (a prune, then a reset or restore of the id counter) must not
   be taken for the old rows already in the topics' tails: recovery would mark rows never
   sent as published.
2. A relay that lost its lock without noticing (a zombie) must not publish once a standby
   took over: no decision twice, none out of order in the committed log.
3. Recovery matches only rows it really sent: records that name a row but were never
   committed (an aborted transaction) do not count.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select, text

from consumers.relay import OutboxRelay
from infra.db import Database, OutboxRow, is_sqlite, utcnow
from infra.kafka import encode
from infra.settings import Settings
from tests.stack import wait_for

pytestmark = pytest.mark.integration
HEADER, UID_HEADER = "spaces-outbox-id", "spaces-outbox-uid"
"""The relay's headers, spelled out: what a record in the log says about its row."""


async def add_rows(db: Database, settings: Settings, start: int, count: int) -> None:
    async with db.unit_of_work("test") as uow:
        for n in range(start, start + count):
            uow.publish(settings.topics.decisions, f"room-{n % 3}", {"n": n})


async def unpublished_count(db: Database) -> int:
    async with db.read_session() as session:
        found = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.published.is_(False))
        )
    return int(found or 0)


async def committed(settings: Settings, topic: str, expect: int) -> list[tuple[str, int]]:
    """(key, n) of every committed record of ``topic``, in log order per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[tuple[str, int]] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    assert record.key is not None and record.value is not None
                    out.append((record.key.decode(), json.loads(record.value)["n"]))
            ends = await consumer.end_offsets(partitions)
            caught_up = all([await consumer.position(tp) >= ends[tp] for tp in partitions])
            if (caught_up and len(out) >= expect) or loop.time() > deadline:
                break
    finally:
        await consumer.stop()
    return out


@asynccontextmanager
async def relaying(
    relay: OutboxRelay, errors: list[BaseException] | None = None
) -> AsyncIterator[asyncio.Event]:
    """Run ``relay`` while inside; its error, if any, goes to ``errors`` (else raised)."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 60)
        except Exception as error:
            if errors is None:
                raise
            errors.append(error)


async def restart_outbox_ids(db: Database) -> None:
    """What a restore from an old backup, or a reset, does to the id counter."""
    async with db.writing(), db.session() as session, session.begin():
        if is_sqlite(db.settings.database_url):
            has_sequence = await session.scalar(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")
            )
            if has_sequence:
                await session.execute(text("DELETE FROM sqlite_sequence WHERE name = 'outbox'"))
        else:
            await session.execute(text("ALTER SEQUENCE outbox_id_seq RESTART WITH 1"))


async def test_ids_that_come_back_after_a_prune_and_a_reset_are_still_published(
    stack_settings: Settings,
) -> None:
    settings = stack_settings
    db = Database(settings)
    await db.migrate()
    first = OutboxRelay(settings, db)
    async with relaying(first):
        await add_rows(db, settings, 0, 30)

        async def all_marked() -> bool:
            return first.published == 30

        await wait_for(all_marked)
    async with db.read_session() as session:
        old_ids = set(await session.scalars(select(OutboxRow.id)))
    assert await db.prune(utcnow() + timedelta(days=365)) == (0, 30)
    await restart_outbox_ids(db)
    await add_rows(db, settings, 100, 30)
    new_ids = {row.id for row in await db.unpublished(100)}
    assert new_ids <= old_ids, "the old-id situation: the new rows reuse the published ids"

    second = OutboxRelay(settings, db)
    async with relaying(second):

        async def none_left() -> bool:
            return await unpublished_count(db) == 0

        await wait_for(none_left)
    values = sorted(n for _, n in await committed(settings, settings.topics.decisions, 60))
    assert values == [*range(30), *range(100, 130)], "every row of both generations, once"
    assert second.published == 30
    await db.dispose()


async def test_recovery_ignores_records_that_were_never_committed(
    stack_settings: Settings,
) -> None:
    """A transaction that named the pending rows but aborted (a relay that crashed or was
    fenced mid-transaction) did not send them: they are published, not marked."""
    settings = stack_settings
    db = Database(settings)
    await db.migrate()
    await add_rows(db, settings, 0, 40)
    pending = await db.unpublished(100)
    assert len(pending) == 40
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        transactional_id=f"aborted-{settings.topics.decisions}",
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for row in pending:
            headers = [(HEADER, str(row.id).encode())]
            uid = getattr(row, "uid", None)
            if uid is not None:
                headers.append((UID_HEADER, uid.encode()))
            await producer.send_and_wait(
                row.topic, value=encode(row.value), key=(row.key or "").encode(), headers=headers
            )
        await producer.abort_transaction()
    finally:
        await producer.stop()

    relay = OutboxRelay(settings, db)
    assert await relay.recover() == 0, "nothing of this outbox was committed to the log"
    async with relaying(relay):

        async def none_left() -> bool:
            return await unpublished_count(db) == 0

        await wait_for(none_left)
    values = sorted(n for _, n in await committed(settings, settings.topics.decisions, 40))
    assert values == list(range(40))
    await db.dispose()


class LostLock(Database):
    """A relay's database whose first leadership is a lock it no longer holds (a zombie).

    Whatever the backend, this is where a relay is after its lock went away unnoticed
    (a PostgreSQL connection that dropped): it believes it leads while a standby takes
    the lock. Later it asks for the lock like any relay.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.believed = False

    @asynccontextmanager
    async def exclusive(
        self, name: str, stop: asyncio.Event | None = None, poll_s: float = 0.5
    ) -> AsyncIterator[bool]:
        if not self.believed:
            self.believed = True
            yield True
            return
        async with super().exclusive(name, stop, poll_s) as leading:
            yield leading


def assert_once_and_in_order(records: list[tuple[str, int]], expected: range) -> None:
    counts = Counter(n for _, n in records)
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"{len(twice)} decisions published twice: {twice[:10]}"
    assert sorted(counts) == list(expected)
    per_key: defaultdict[str, list[int]] = defaultdict(list)
    for key, n in records:
        per_key[key].append(n)
    for key, ns in per_key.items():
        assert ns == sorted(ns), f"{key}: decisions out of order"


async def test_a_zombie_relay_cannot_publish_after_a_standby_took_over(
    stack_settings: Settings,
) -> None:
    settings = stack_settings
    db = Database(settings)
    await db.migrate()
    zombie_db = LostLock(settings)
    zombie, standby = OutboxRelay(settings, zombie_db), OutboxRelay(settings, db)
    async with relaying(zombie):
        await add_rows(db, settings, 0, 50)

        async def zombie_published() -> bool:
            return zombie.published == 50

        await wait_for(zombie_published)
        async with relaying(standby):
            await asyncio.sleep(1)  # the standby takes the lock nobody holds
            for start in range(50, 1250, 200):
                await add_rows(db, settings, start, 200)
                await asyncio.sleep(0.05)

            async def none_left() -> bool:
                return await unpublished_count(db) == 0

            await wait_for(none_left)
    records = await committed(settings, settings.topics.decisions, 1250)
    assert_once_and_in_order(records, range(1250))
    assert getattr(zombie, "fenced", 0) == 1, "the zombie was told it lost leadership"
    assert standby.published > 0
    await zombie_db.dispose()
    await db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_relay_whose_lock_connection_dropped_is_fenced(
    stack_settings: Settings,
) -> None:
    """PostgreSQL: the advisory lock goes with its connection; the relay does not notice."""
    settings = stack_settings
    assert not is_sqlite(settings.database_url)  # the advisory lock's connection is PostgreSQL's
    db_first, db_second = Database(settings), Database(settings)
    await db_first.migrate()
    first, second = OutboxRelay(settings, db_first), OutboxRelay(settings, db_second)
    errors: list[BaseException] = []
    async with relaying(first, errors):
        await add_rows(db_first, settings, 0, 50)

        async def first_published() -> bool:
            return first.published == 50

        await wait_for(first_published)
        async with relaying(second):
            await asyncio.sleep(0.5)
            assert second.published == 0, "a standby while the lock is held"
            async with db_second.engine.connect() as conn:
                killed = await conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                )
                await conn.commit()
            assert killed == 1
            await asyncio.sleep(1.5)  # the standby polls the lock every 0.5 s
            for start in range(50, 1250, 200):
                await add_rows(db_second, settings, start, 200)
                await asyncio.sleep(0.05)

            async def none_left() -> bool:
                return await unpublished_count(db_second) == 0

            await wait_for(none_left)
    records = await committed(settings, settings.topics.decisions, 1250)
    assert_once_and_in_order(records, range(1250))
    assert second.published > 0
    assert not errors, "the relay that lost its lock stops cleanly"
    await db_first.dispose()
    await db_second.dispose()
