"""Issue 3: SIGKILL the consumer process mid-stream, restart it: nothing lost, nothing twice.

``spaces run`` runs as a real OS process against the real broker; the test
kills it with SIGKILL while inputs are still arriving (so batches, database
commits, offset commits and relay publishes are cut at arbitrary points),
starts it again, and reads the whole ``decisions`` topic back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from infra.settings import Settings
from schemas.inputs import AnyInput, Checkin, Checkout, RoomConfigured
from tests.stack import produce, read_topic

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
ROOMS = [f"seosan.room-{i}" for i in range(6)]


def service_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_DATABASE_URL": settings.database_url,
            "SPACES_AUTHORITY_GROUP": settings.authority_group,
            "SPACES_STATISTICS_GROUP": settings.statistics_group,
            "SPACES_RELAY_INTERVAL_S": "0.02",
            "SPACES_BATCH_MAX_RECORDS": "50",
            "SPACES_BATCH_TIMEOUT_MS": "50",
        }
    )
    for name in type(settings.topics).model_fields:
        env[f"SPACES_TOPIC_{name.upper()}"] = getattr(settings.topics, name)
    return env


def start_service(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "run", "--only", "authority,relay"],
        env=service_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def traffic(count: int) -> list[AnyInput]:
    now = datetime.now(SEOUL)
    events: list[AnyInput] = []
    for i in range(count):
        room = ROOMS[i % len(ROOMS)]
        common = {"event_id": uuid.uuid4(), "occurred_at": now, "room_id": room}
        if i % 3 == 2:
            events.append(Checkout(**common, kiosk_id="kiosk-1", party_size=1))
        else:
            events.append(Checkin(**common, kiosk_id="kiosk-1", party_size=1 + i % 4))
    return events


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    stack_settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(SEOUL)
    rooms: list[AnyInput] = [
        RoomConfigured(
            event_id=uuid.uuid4(),
            occurred_at=now,
            room_id=room,
            center_id="seosan",
            name=room,
            capacity=15,
            booking_mode="shared",
            opens="00:00",
            closes="24:00",
        )
        for room in ROOMS
    ]
    inputs = traffic(1200)
    await produce(stack_settings, rooms)
    log = tmp_path / "service.log"
    service = start_service(stack_settings, log)
    kills = 0
    try:
        for chunk_start in range(0, len(inputs), 100):
            await produce(stack_settings, inputs[chunk_start : chunk_start + 100])
            await asyncio.sleep(0.15)
            if chunk_start in (300, 700):
                # Mid-stream: the service is busy deciding and publishing.
                service.send_signal(signal.SIGKILL)
                service.wait(timeout=30)
                kills += 1
                service = start_service(stack_settings, log)
        expected = len(rooms) + len(inputs)
        decisions = await read_topic(
            stack_settings, stack_settings.topics.decisions, expect=expected, timeout=120
        )
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
    assert kills == 2
    per_input = Counter(d["caused_by"] for d in decisions)
    sent = {str(e.event_id) for e in [*rooms, *inputs]}
    missing = sent - set(per_input)
    twice = {cause: n for cause, n in per_input.items() if n > 1}
    assert not missing, f"{len(missing)} inputs never decided; log: {log.read_text()[-2000:]}"
    assert not twice, f"{len(twice)} inputs decided more than once"
    assert len({d["event_id"] for d in decisions}) == len(decisions)
    # Per room, occupancy follows the decisions in order and stays within capacity.
    for room in ROOMS:
        ours = [d for d in decisions if d["room_id"] == room and "occupancy" in d]
        assert all(0 <= d["occupancy"] <= 15 for d in ours)
    assert service.returncode == 0, "graceful stop after SIGTERM"
