"""One outbox relay publishes per database; a second waits as a standby and takes over."""

from __future__ import annotations

import asyncio

import pytest

from consumers.relay import OutboxRelay
from infra.db import Database
from infra.settings import Settings
from tests.stack import read_topic, wait_for

pytestmark = pytest.mark.integration


async def add_rows(db: Database, settings: Settings, start: int, count: int) -> None:
    async with db.unit_of_work("test") as uow:
        for n in range(start, start + count):
            uow.publish(settings.topics.decisions, f"room-{n % 3}", {"n": n})


async def test_a_second_relay_is_a_standby_and_takes_over(stack_settings: Settings) -> None:
    db = Database(stack_settings)
    await db.migrate()
    first, second = OutboxRelay(stack_settings, db), OutboxRelay(stack_settings, db)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    running_first = asyncio.create_task(first.run(stop_first))
    await asyncio.sleep(0)  # let the first take the lock
    await add_rows(db, stack_settings, 0, 50)
    running_second = asyncio.create_task(second.run(stop_second))
    values = await read_topic(stack_settings, stack_settings.topics.decisions, expect=50)
    assert sorted(v["n"] for v in values) == list(range(50))

    async def first_marked_all() -> bool:  # Kafka has them; the database is told next
        return first.published == 50

    await wait_for(first_marked_all)
    assert second.published == 0

    stop_first.set()
    await asyncio.wait_for(running_first, 30)
    await add_rows(db, stack_settings, 50, 20)
    values = await read_topic(stack_settings, stack_settings.topics.decisions, expect=70)
    assert sorted(v["n"] for v in values) == list(range(70))  # each exactly once

    async def second_marked_the_rest() -> bool:
        return second.published == 20

    await wait_for(second_marked_the_rest)
    stop_second.set()
    await asyncio.wait_for(running_second, 30)
    await db.dispose()
