"""Helpers for integration tests: run the services in-process, produce, read topics back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from entrypoints.service import PARTS, Services
from infra.settings import Settings
from producers.client import publish_all
from schemas.inputs import AnyInput


@asynccontextmanager
async def running(settings: Settings, parts: tuple[str, ...] = PARTS) -> AsyncIterator[Services]:
    services = Services(settings, parts)
    task = asyncio.create_task(services.run())
    ready = asyncio.create_task(services.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
    assert ready in done, "services did not become ready within 60 s"
    try:
        yield services
    finally:
        services.stop.set()
        await asyncio.wait_for(task, timeout=60)


async def produce(settings: Settings, events: Sequence[AnyInput]) -> None:
    """With the idempotent producer (``acks=all``), as every producer of the contract."""
    await publish_all(settings, events)


async def read_topic(
    settings: Settings, topic: str, *, expect: int = 0, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Everything committed on ``topic`` from the beginning; waits for ``expect`` values.

    Committed only, as every reader of the output topics must read (the relay writes
    them in transactions; a fenced or crashed relay's aborted writes stay in the log).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    values: list[dict[str, Any]] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    values.append(json.loads(record.value))
            ends = await consumer.end_offsets(partitions)
            caught_up = all([await consumer.position(tp) >= ends[tp] for tp in partitions])
            if (caught_up and len(values) >= expect) or loop.time() > deadline:
                break
    finally:
        await consumer.stop()
    return values


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
