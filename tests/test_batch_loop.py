"""The consume loop against a scripted consumer: rebalances and poison records.

What is tested here is the loop's own logic (``consumers.batch.EffectivelyOnceLoop``);
delivery, commits and crashes on the real broker are in the integration tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select

import consumers.batch as batch
from infra.db import Database, OutboxRow, UnitOfWork
from infra.settings import Settings
from service_layer.processing import Record, content_digest

TP = TopicPartition("inputs", 0)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = b"r"
    value: bytes | None = b"{}"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def records(start: int, count: int) -> list[Rec]:
    return [Rec(TP.topic, TP.partition, offset, offset) for offset in range(start, start + count)]


class ScriptedConsumer:
    """Hands out scripted fetches; a rebalance (revoke, then assign) happens on cue."""

    def __init__(self, fetches: list[list[Rec]], rebalance_at_call: int | None = None) -> None:
        self.fetches = fetches
        self.rebalance_at_call = rebalance_at_call
        self.timeouts: list[int] = []
        self.polled_at: list[float] = []
        self.committed: dict[TopicPartition, int] = {}
        self.listener: Any = None
        self.done = asyncio.Event()

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 0

    async def position(self, tp: TopicPartition) -> int:
        return 0  # nothing more to read: the loop never waits on a lagging partition

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Rec]]:
        self.timeouts.append(timeout_ms)
        self.polled_at.append(asyncio.get_running_loop().time())
        if len(self.timeouts) == self.rebalance_at_call:
            await self.listener.on_partitions_revoked([TP])
            await self.listener.on_partitions_assigned([TP])
        if self.fetches:
            return {TP: self.fetches.pop(0)}
        if len(self.timeouts) >= 200:
            self.done.set()  # a loop that spins gets here at once
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)


class ListHandler:
    """Publishes one outbox row per record; raises on the offsets it is told to."""

    name = "test"
    group = "test"

    def __init__(self, failing: frozenset[int] = frozenset()) -> None:
        self.failing = failing
        self.handled: list[int] = []
        self.forgotten: list[bool] = []

    def parse(self, record: Record) -> int:
        return record.offset

    def identity(self, event: int) -> str:
        return f"e{event}"

    def digest(self, record: Record, event: int) -> str:
        return content_digest(record, event)

    async def load(self, uow: UnitOfWork, events: Sequence[int]) -> None: ...

    def handle(self, uow: UnitOfWork, record: Record, event: int) -> None:
        if event in self.failing:
            raise OverflowError("date value out of range")
        self.handled.append(event)
        uow.publish("out", "r", {"offset": event})

    async def save(self, uow: UnitOfWork) -> None: ...

    def skipped(self, event: int) -> None: ...

    def committed(self) -> None: ...

    def settled(self) -> bool:
        return True

    def more_to_write(self) -> bool:
        return False

    def forget(self, *, everything: bool) -> None:
        self.forgotten.append(everything)

    def revoked(self) -> None:
        self.forget(everything=True)


async def run_loop(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    consumer: ScriptedConsumer,
    handler: ListHandler,
    calls: int,
    linger_s: float = 0.0,
    max_records: int = 10,
) -> Database:
    """Run the loop until the consumer has been polled ``calls`` times (or spins)."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'loop.db'}")
    db = Database(settings)
    await db.migrate()
    monkeypatch.setattr(batch, "make_group_consumer", lambda *args, **kwargs: consumer)
    options = batch.LoopOptions(
        group_id="g", topics=("inputs",), max_records=max_records, timeout_ms=30, linger_s=linger_s
    )
    loop = batch.EffectivelyOnceLoop(settings, db, handler, options)  # type: ignore[arg-type]
    stop = asyncio.Event()

    async def stop_after() -> None:
        while len(consumer.timeouts) < calls and not consumer.done.is_set():
            await asyncio.sleep(0.005)
        stop.set()

    watcher = asyncio.create_task(stop_after())
    await asyncio.wait_for(loop.run(stop), timeout=30)
    await watcher
    return db


async def test_a_rebalance_that_empties_the_buffer_does_not_make_the_loop_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 25 records fetched at once, 10 decided per batch: records stay buffered, so the
    # next poll does not wait. The rebalance then drops the buffer; polls must wait again.
    consumer = ScriptedConsumer([records(0, 25)], rebalance_at_call=2)
    handler = ListHandler()
    loop_started = asyncio.get_running_loop().time()
    db = await run_loop(tmp_path, monkeypatch, consumer, handler, calls=12)
    elapsed = asyncio.get_running_loop().time() - loop_started
    await db.dispose()
    assert not consumer.done.is_set(), f"the loop spun: {len(consumer.timeouts)} polls"
    assert consumer.timeouts[1] == 0  # records were ready: decided without waiting
    assert all(timeout > 0 for timeout in consumer.timeouts[2:])
    assert handler.forgotten == [True]  # states kept in memory are read again
    assert handler.handled == list(range(10))  # the rest is read again from Kafka
    assert elapsed >= 9 * 0.03 - 0.01  # the idle polls really waited


async def test_a_record_whose_decision_raises_is_dead_lettered_and_the_rest_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = ScriptedConsumer([records(0, 6)])
    handler = ListHandler(failing=frozenset({2, 4}))
    db = await run_loop(tmp_path, monkeypatch, consumer, handler, calls=3)
    async with db.session() as session:
        rows = list(await session.execute(select(OutboxRow.topic, OutboxRow.value)))
    await db.dispose()
    outputs = [value for topic, value in rows if topic == "out"]
    letters = [value for topic, value in rows if topic == "dead-letters"]
    assert [eval_offset(v) for v in outputs] == [0, 1, 3, 5]
    assert len(letters) == 2
    assert all("OverflowError: date value out of range" in letter for letter in letters)
    assert consumer.committed == {TP: 6}
    assert handler.forgotten == [False, False]  # the batch's states dropped before each retry


def eval_offset(value: str) -> int:
    import json

    return int(json.loads(value)["offset"])


async def test_after_a_batch_that_was_not_full_the_loop_lingers_and_a_full_one_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``linger_s`` (the statistics): fewer, larger batches under live traffic, none of the
    wait under a backlog."""
    # max_records 20: a batch of fewer than 2 records is caught up.
    # Poll 1: 10 records, half a batch but a backlog: the next poll comes at once. Poll 2:
    # 1 record, caught up: the next poll waits for the linger.
    consumer = ScriptedConsumer([records(0, 10), records(10, 1), records(11, 1)])
    handler = ListHandler()
    db = await run_loop(
        tmp_path, monkeypatch, consumer, handler, calls=4, linger_s=0.3, max_records=20
    )
    await db.dispose()
    assert handler.handled == list(range(12))
    gaps = [b - a for a, b in zip(consumer.polled_at, consumer.polled_at[1:], strict=False)]
    assert gaps[0] < 0.2  # after a large batch (a backlog): at once
    assert gaps[1] >= 0.3 - 0.01  # after a small one (caught up): lingered
    assert gaps[2] >= 0.3 - 0.01


class HoldingHandler(ListHandler):
    """Like the statistics during a backlog: a batch of records leaves outputs unpublished;
    a batch without records publishes them. Notes what Kafka had committed at that point."""

    def __init__(self, consumer: ScriptedConsumer) -> None:
        super().__init__()
        self.consumer = consumer
        self.holding = False
        self.committed_when_published: list[dict[TopicPartition, int]] = []
        self.revokes = 0

    async def load(self, uow: UnitOfWork, events: Sequence[int]) -> None:
        if not events:
            self.committed_when_published.append(dict(self.consumer.committed))
            uow.publish("out", "r", {"offset": -1})

    def committed(self) -> None:
        self.holding = bool(self.handled) and not self.committed_when_published

    def settled(self) -> bool:
        return not self.holding

    def revoked(self) -> None:
        self.revokes += 1
        super().revoked()


async def test_offsets_wait_until_the_handler_has_published_and_an_idle_loop_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = ScriptedConsumer([records(0, 10), records(10, 10)])
    handler = HoldingHandler(consumer)
    db = await run_loop(tmp_path, monkeypatch, consumer, handler, calls=5)
    await db.dispose()
    assert handler.handled == list(range(20))
    # Two full batches decided, nothing committed to Kafka; then the idle poll published,
    # once, and only then did both batches' offsets go.
    assert handler.committed_when_published == [{}]
    assert consumer.committed == {TP: 20}


async def test_a_revoke_publishes_what_was_held_back_before_giving_the_partitions_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = ScriptedConsumer([records(0, 10), records(10, 10)], rebalance_at_call=2)
    handler = HoldingHandler(consumer)
    db = await run_loop(tmp_path, monkeypatch, consumer, handler, calls=4)
    await db.dispose()
    assert handler.committed_when_published[0] == {}
    assert handler.revokes == 1
    # The revoke published the first batch's outputs and committed its offsets; the
    # second batch's went when the loop was next idle.
    assert consumer.committed == {TP: 20}
    assert handler.handled[:10] == list(range(10))


class ChunkingHandler(ListHandler):
    """Like the statistics publishing a backlog: the batch of records leaves ``chunks``
    more transactions, each a batch without records; notes when each came."""

    def __init__(self, consumer: ScriptedConsumer, chunks: int) -> None:
        super().__init__()
        self.consumer = consumer
        self.left = chunks
        self.writing = False
        self.follow_ups: list[tuple[int, int]] = []
        """(polls so far, records handled so far) at each batch without records."""

    async def load(self, uow: UnitOfWork, events: Sequence[int]) -> None:
        if not events:
            self.follow_ups.append((len(self.consumer.timeouts), len(self.handled)))
            uow.publish("out", "r", {"offset": -1})
            self.left -= 1
        self.writing = self.left > 0

    def more_to_write(self) -> bool:
        return self.writing


async def test_writes_left_for_more_transactions_are_made_before_the_next_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = ScriptedConsumer([records(0, 5), records(5, 5)])
    handler = ChunkingHandler(consumer, chunks=3)
    db = await run_loop(tmp_path, monkeypatch, consumer, handler, calls=3)
    async with db.session() as session:
        outputs = list(await session.scalars(select(OutboxRow.value).order_by(OutboxRow.id)))
    await db.dispose()
    # After the first batch (polled once, 5 handled): three transactions, one after the
    # other, before the second fetch; none after the second batch (nothing left).
    assert handler.follow_ups == [(1, 5), (1, 5), (1, 5)]
    assert [eval_offset(v) for v in outputs] == [0, 1, 2, 3, 4, -1, -1, -1, 5, 6, 7, 8, 9]
    assert consumer.committed == {TP: 10}
