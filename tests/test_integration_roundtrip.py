"""Issue 2: a contract message produced with aiokafka, read back by a FastStream subscriber.

Runs against the real broker started by ``infra/`` (see conftest.kafka_settings).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from infra.kafka import encode, make_producer
from infra.kafka_local import ensure_topics
from infra.settings import Settings
from schemas.inputs import Checkin
from tests.conftest import isolated_topics

pytestmark = pytest.mark.integration


async def test_checkin_round_trips_through_faststream_subscriber(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"topics": isolated_topics(), "partitions": 3})
    await ensure_topics(settings)
    checkin = Checkin(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 11, 21, 10, 0, tzinfo=ZoneInfo("Asia/Seoul")),
        room_id="seosan.club-1",
        kiosk_id="kiosk-1",
        party_size=3,
        member_id="m-0001",
    )
    received: asyncio.Future[tuple[Checkin, bytes | None]] = (
        asyncio.get_running_loop().create_future()
    )
    broker = KafkaBroker(settings.bootstrap)

    @broker.subscriber(
        settings.topics.checkins,
        group_id=f"roundtrip-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    async def on_checkin(body: Checkin, message: KafkaMessage) -> None:
        if not received.done():
            received.set_result((body, message.raw_message.key))

    async with broker:
        await broker.start()
        producer = make_producer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.checkins,
                key=checkin.room_id.encode(),
                value=encode(checkin.model_dump(mode="json")),
            )
        finally:
            await producer.stop()
        event, key = await asyncio.wait_for(received, timeout=30)

    assert event == checkin
    assert key == b"seosan.club-1"
