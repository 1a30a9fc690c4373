"""``spaces run`` serves ``/health`` and ``/metrics`` per process, on the real broker.

The per-role supervisor's two children (authority with relay and clock, and statistics)
each answer on a port of their own; the decisions, the lag, the batches and the outbox
backlog are what the inputs fed make them; a broker that goes away turns ``/health`` 503.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.settings import Settings
from schemas.inputs import Checkin, RoomConfigured
from tests.stack import produce, read_topic
from tests.test_integration_crash import service_env
from tests.test_integration_supervisor import sqlite_stack  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def two_free_ports() -> int:
    """A port p with p and p + 1 free (the supervisor's two children).

    Below the kernel's ephemeral range: a port from it (``bind(0)``) can be handed to one
    of the children's own Kafka connections before the child binds it for ``/metrics``."""
    ephemeral_from = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(10_000, max(10_002, ephemeral_from - 1))
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", base))
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


async def get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body); (0, b"") when nothing listens yet."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=5
        )
    except (OSError, TimeoutError):
        return 0, b""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def start(env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "run"], env=env, stdout=log, stderr=log
    )


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def until(
    port: int, path: str, check: Callable[[int, bytes], bool], timeout: float = 60
) -> bytes:
    """GET ``path`` until ``check(status, body)``; the last answer is in the failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status, body = 0, b""
    while loop.time() < deadline:
        status, body = await get(port, path)
        if status and check(status, body):
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"GET :{port}{path} never passed: {status} {body[:2000]!r}")


def metric(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lags(samples: Samples, group: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for (name, labels), value in samples.items():
        if name == "spaces_consumer_lag" and dict(labels)["group"] == group:
            found[(dict(labels)["topic"], dict(labels)["partition"])] = value
    return found


def caught_up(group: str, partitions: int) -> Callable[[int, bytes], bool]:
    def check(status: int, body: bytes) -> bool:
        found = lags(parse(body.decode()), group)
        return status == 200 and len(found) >= partitions and not any(found.values())

    return check


def healthy(status: int, body: bytes) -> bool:
    return status == 200 and json.loads(body)["status"] == "ok"


async def test_each_process_serves_health_and_metrics(
    sqlite_stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    from infra import kafka_local

    settings = sqlite_stack
    now = datetime.now(SEOUL)
    room = "daejeon.hall-1"

    def checkin(party: int) -> Checkin:
        return Checkin(
            event_id=uuid.uuid4(), occurred_at=now, room_id=room, kiosk_id="k", party_size=party
        )

    configured = RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=now,
        room_id=room,
        center_id="daejeon",
        name="Hall",
        capacity=20,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
    )
    await produce(settings, [configured, checkin(3), checkin(30)])  # the last: room_full

    port = two_free_ports()
    env = {
        **service_env(settings),
        "SPACES_RUN_PROCESSES": "per-role",
        "SPACES_METRICS_PORT": str(port),
        "SPACES_METRICS_INTERVAL_S": "0.3",
        "SPACES_HEALTH_STALE_S": "4",
        # No clock tick for the room while the counts below are read: a tick is a record
        # the authority counts (``spaces_batch_records_sum``) and decides nothing. At the
        # default 30 s, a slow broker let one in (4 records, not 3). The first run of the
        # tick job finds the room not configured yet; the next is 6 minutes later.
        "SPACES_CLOCK_INTERVAL_S": "3600",
    }
    log = (tmp_path / "service.log").open("ab")
    supervisor = start(env, log)
    broker_stopped = False
    try:
        decisions = await read_topic(settings, settings.topics.decisions, expect=3)
        assert [d["type"] for d in decisions] == [
            "room.configured",
            "checkin.admitted",
            "checkin.denied",
        ]
        authority, statistics = port, port + 1
        document = json.loads(await until(authority, "/health", healthy))
        assert document["parts"] == {
            "authority": "running",
            "relay": "running",
            "clock": "running",
        }
        assert document["broker"]["reachable"] is True
        document = json.loads(await until(statistics, "/health", healthy))
        assert document["parts"] == {"statistics": "running"}

        # the authority's process: its decisions, caught up on the three input topics
        inputs = len(settings.topics.inputs) * settings.partitions
        text = await until(authority, "/metrics", caught_up(settings.authority_group, inputs))
        samples = parse(text.decode())
        by_type = "spaces_decisions_by_type_total"
        assert metric(samples, by_type, type="room.configured", reason="") == 1
        assert metric(samples, by_type, type="checkin.admitted", reason="") == 1
        assert metric(samples, by_type, type="checkin.denied", reason="room_full") == 1
        assert sum(v for (name, _), v in samples.items() if name == by_type) == 3
        assert metric(samples, "spaces_decisions_total") == 3  # the existing counter
        topics = {topic for topic, _ in lags(samples, settings.authority_group)}
        assert topics == set(settings.topics.inputs)
        batches = metric(samples, "spaces_batch_records_count", consumer="authority")
        assert batches >= 1
        assert metric(samples, "spaces_batch_records_sum", consumer="authority") == 3
        assert metric(samples, "spaces_batch_seconds_count", consumer="authority") == batches
        assert metric(samples, "spaces_authority_records_total") == 3
        assert metric(samples, "spaces_broker_reachable") == 1
        # the relay publishes what was written: the backlog drains to 0
        samples = parse(
            (
                await until(
                    authority,
                    "/metrics",
                    lambda _, body: parse(body.decode()).get(("spaces_outbox_backlog", ())) == 0,
                )
            ).decode()
        )
        assert ("spaces_outbox_backlog", ()) in samples

        # the statistics' process: the decisions topic, its own batches, no authority counts
        decisions_partitions = settings.partitions
        everything = caught_up(settings.statistics_group, decisions_partitions)

        def folded(status: int, body: bytes) -> bool:
            samples = parse(body.decode())
            done = metric(samples, "spaces_batch_records_sum", consumer="statistics") == 3
            return done and everything(status, body)

        samples = parse((await until(statistics, "/metrics", folded)).decode())
        assert {t for t, _ in lags(samples, settings.statistics_group)} == {
            settings.topics.decisions
        }
        assert metric(samples, "spaces_batch_seconds_count", consumer="statistics") >= 1
        assert metric(samples, "spaces_decisions_by_type_total", type="checkin.admitted") == 0
        assert ("spaces_outbox_backlog", ()) not in samples  # sampled where the relay runs

        # the broker goes away: both processes say so within SPACES_HEALTH_STALE_S
        broker_stopped = True
        await asyncio.to_thread(kafka_local.down, settings)
        for process_port in (authority, statistics):
            body = await until(process_port, "/health", lambda status, _: status == 503, timeout=40)
            assert json.loads(body)["broker"]["reachable"] is False
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(supervisor.wait, 30)
            except subprocess.TimeoutExpired:
                supervisor.kill()
        log.close()
        if broker_stopped:  # the rest of the session's tests need it
            await asyncio.to_thread(kafka_local.up, settings)
