"""Issue 7, finding 5 on the real broker: retention that keeps the promises.

``decisions`` is the log of record and is created to be kept forever; a statistics group
whose offsets Kafka forgot resumes where the database says it stopped instead of counting
the whole log again; and ``spaces run`` refuses, with one line naming the setting, to
start a consumer whose topic keeps records longer than both its id memory and the
broker's memory of offsets.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.admin import DeleteGroupsRequest
from sqlalchemy import select

from consumers.statistics import save_states
from domain.usage import RoomUsage
from entrypoints.service import Services
from infra.db import Database, UsageMonthlyRow
from infra.kafka_local import ensure_topics, topic_configs
from infra.retention import DAY_MS, RetentionUnsafe, broker_retention
from infra.settings import Settings
from tests.conftest import isolated_topics
from tests.stack import running, wait_for
from tests.test_integration_month_close import admitted, append_decisions, configured

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
ROOM_KEY = "room:seoul.1:2026-11"


async def test_decisions_is_created_to_be_kept_forever(stack_settings: Settings) -> None:
    decisions = stack_settings.topics.decisions
    configs = await topic_configs(
        stack_settings.bootstrap, [decisions, stack_settings.topics.checkins]
    )
    assert configs[decisions]["retention.ms"] == "-1"
    # The inputs keep the broker's default: shorter than the 30-day id memory.
    assert int(configs[stack_settings.topics.checkins]["retention.ms"]) <= 30 * DAY_MS


async def stored_visits(settings: Settings, key: str) -> int | None:
    db = Database(settings)
    try:
        async with db.read_session() as session:
            row = await session.scalar(select(UsageMonthlyRow).where(UsageMonthlyRow.key == key))
    finally:
        await db.dispose()
    return None if row is None else int(row.value["visits"])


async def forget_group(settings: Settings, group: str) -> None:
    """What Kafka does ``offsets.retention.minutes`` after the group's last member left."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        coordinator = await admin.find_coordinator(group)
        response: Any = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
        assert [code for _, code in response.results] == [0]
        assert await admin.list_consumer_group_offsets(group) == {}
    finally:
        await admin.close()


async def test_a_group_whose_offsets_expired_resumes_without_counting_again(
    stack_settings: Settings,
) -> None:
    t = datetime(2026, 11, 5, 10, tzinfo=SEOUL)
    await append_decisions(
        stack_settings,
        [configured("seoul.1", "Asia/Seoul", t), *(admitted("seoul.1", t) for _ in range(5))],
    )

    async def visits_are(n: int) -> Any:
        async def check() -> bool:
            return await stored_visits(stack_settings, ROOM_KEY) == n

        return check

    async with running(stack_settings, ("statistics",)):
        await wait_for(await visits_are(10), timeout=60)
    # Stopped for longer than the broker keeps offsets and than the ids are remembered.
    await forget_group(stack_settings, stack_settings.statistics_group)
    db = Database(stack_settings)
    try:
        forgotten, _ = await db.prune(datetime.now(SEOUL) + timedelta(days=31))
    finally:
        await db.dispose()
    assert forgotten == 6

    await append_decisions(stack_settings, [admitted("seoul.1", t)])
    async with running(stack_settings, ("statistics",)):
        await wait_for(await visits_are(12), timeout=60)  # the new one, and only it
        assert await stored_visits(stack_settings, ROOM_KEY) == 12


async def topics_with(settings: Settings, **retention_ms: int) -> Settings:
    """``settings`` with topics of their own, created with these ``retention.ms``."""
    fresh = settings.model_copy(update={"topics": isolated_topics()})
    await ensure_topics(fresh)
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    getattr(fresh.topics, name),
                    configs={"retention.ms": str(value)},
                )
                for name, value in retention_ms.items()
            ]
        )
    finally:
        await admin.close()
    names = {getattr(fresh.topics, name): str(value) for name, value in retention_ms.items()}

    async def altered() -> bool:  # the brokers apply it from the metadata log, a moment later
        configs = await topic_configs(fresh.bootstrap, list(names))
        return all(configs[name]["retention.ms"] == value for name, value in names.items())

    await wait_for(altered, timeout=30)
    return fresh


def spaces_run(settings: Settings, only: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_DATABASE_URL": settings.database_url,
            "SPACES_AUTHORITY_GROUP": settings.authority_group,
            "SPACES_STATISTICS_GROUP": settings.statistics_group,
        }
    )
    for name in type(settings.topics).model_fields:
        env[f"SPACES_TOPIC_{name.upper()}"] = getattr(settings.topics, name)
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "run", "--only", only],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_spaces_run_refuses_an_input_topic_kept_longer_than_the_id_memory(
    stack_settings: Settings,
) -> None:
    unsafe = await topics_with(stack_settings, checkins=90 * DAY_MS)
    result = spaces_run(unsafe, "authority")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: refusing to start: topic {unsafe.topics.checkins!r} keeps records 90 days "
        "(retention.ms=7776000000), longer than the 30-day id memory "
        "(SPACES_PROCESSED_RETENTION_DAYS)"
    )
    assert "offsets.retention.minutes=" in errors[0]

    # The same with the broker's default retention (7 days) starts.
    async with running(stack_settings, ("authority",)) as services:
        assert services.ready.is_set()


async def test_statistics_that_counted_without_positions_or_offsets_are_refused(
    stack_settings: Settings,
) -> None:
    """A database from before positions were stored, whose group's offsets expired."""
    db = Database(stack_settings)
    await db.migrate()
    async with db.unit_of_work(stack_settings.statistics_group) as uow:
        await save_states(uow, {"room:seoul.1": RoomUsage("seoul.1", "town")}, {})
    await db.dispose()

    services = Services(stack_settings, ("statistics",))
    with pytest.raises(RetentionUnsafe) as refused:
        await asyncio.wait_for(services.run(), timeout=30)
    message = str(refused.value)
    assert f"the statistics (group {stack_settings.statistics_group!r}) have counted" in message
    assert "offsets.retention.minutes=" in message and "retention.ms=-1" in message

    # With `decisions` kept no longer than the id memory, a restart from the start is safe.
    safe = await topics_with(stack_settings, decisions=7 * DAY_MS)
    safe = safe.model_copy(update={"statistics_group": f"usage-statistics-{uuid.uuid4().hex[:8]}"})
    async with running(safe, ("statistics",)) as started:
        assert started.ready.is_set()


async def test_the_check_reads_the_broker_and_skips_topics_not_created_yet(
    stack_settings: Settings,
) -> None:
    missing = f"not-created-{uuid.uuid4().hex[:8]}"
    found = await broker_retention(
        stack_settings.bootstrap, [stack_settings.topics.decisions, missing]
    )
    assert found.topics == {stack_settings.topics.decisions: None}  # kept forever
    assert found.offsets_ms == 7 * DAY_MS  # the local broker keeps Kafka's default
