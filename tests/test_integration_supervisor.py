"""``spaces run`` as a supervisor of one process per role, on the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import pytest

from infra.settings import Settings
from schemas.inputs import Checkin, RoomConfigured
from tests.stack import produce, read_topic
from tests.test_integration_crash import service_env

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
async def sqlite_stack(kafka_settings: Settings, tmp_path: Path) -> Settings:
    """Process supervision does not depend on the database: SQLite only."""
    from infra.kafka_local import ensure_topics
    from tests.conftest import isolated_settings

    settings = isolated_settings(
        kafka_settings, f"sqlite+aiosqlite:///{tmp_path / 'spaces.db'}", partitions=3
    )
    await ensure_topics(settings)
    return settings


def start_supervisor(settings: Settings, log: BinaryIO) -> subprocess.Popen[bytes]:
    env = {**service_env(settings), "SPACES_RUN_PROCESSES": "per-role"}
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "run"], env=env, stdout=log, stderr=log
    )


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def part_of(pid: int) -> str:
    """The ``--only`` argument a child was started with."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return args[args.index(b"--only") + 1].decode()


def niceness_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


async def test_roles_run_apart_and_die_with_a_killed_supervisor(
    sqlite_stack: Settings, tmp_path: Path
) -> None:
    now = datetime.now(SEOUL)
    room = "jeonju.hall-1"
    configured = RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=now,
        room_id=room,
        center_id="jeonju",
        name="Hall",
        capacity=20,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
    )
    walk_in = Checkin(
        event_id=uuid.uuid4(), occurred_at=now, room_id=room, kiosk_id="k", party_size=3
    )
    await produce(sqlite_stack, [configured, walk_in])
    log = (tmp_path / "service.log").open("ab")
    supervisor = start_supervisor(sqlite_stack, log)
    try:
        # Both roles decide: the authority answers, the statistics count the visit.
        decisions = await read_topic(sqlite_stack, sqlite_stack.topics.decisions, expect=2)
        assert [d["type"] for d in decisions] == ["room.configured", "checkin.admitted"]
        for _ in range(30):
            usage = await read_topic(
                sqlite_stack, sqlite_stack.topics.usage_monthly, expect=1, timeout=5
            )
            if any(u["scope"] == "center" and u["visits"] == 3 for u in usage):
                break
        assert any(u["scope"] == "center" and u["visits"] == 3 for u in usage)
        children = children_of(supervisor.pid)
        assert len(children) == 2
        # The statistics yield the CPU to the kiosk path; the authority does not.
        nice_by_part = {part_of(child): niceness_of(child) for child in children}
        base = os.getpriority(os.PRIO_PROCESS, supervisor.pid)
        assert nice_by_part == {
            "authority,relay,clock": base,
            "statistics": min(19, base + sqlite_stack.statistics_nice),
        }
        assert sqlite_stack.statistics_nice > 0
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + 60
        while any(alive(child) for child in children) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not any(alive(child) for child in children), "children outlived the supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        for child in children_of(supervisor.pid):
            os.kill(child, signal.SIGKILL)
        log.close()


async def test_a_dead_role_stops_the_supervisor_with_an_error(
    sqlite_stack: Settings, tmp_path: Path
) -> None:
    log = (tmp_path / "service.log").open("ab")
    supervisor = start_supervisor(sqlite_stack, log)
    try:
        deadline = time.monotonic() + 30
        while len(children_of(supervisor.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        children = children_of(supervisor.pid)
        assert len(children) == 2
        os.kill(min(children), signal.SIGKILL)
        code = await asyncio.to_thread(supervisor.wait, 90)
        assert code != 0
        assert not any(alive(child) for child in children)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        log.close()
