"""The Kafka-fed dashboard as its own process, on the real broker, with only Kafka.

The process gets ``SPACES_KAFKA_BOOTSTRAP`` (and the test's topic names), a throwaway home
and working directory and no database URL: whatever it shows came from ``usage-monthly`` and
``occupancy``. ``dashboard_process`` is shared with the browser test.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas.outputs import Occupancy
from tests.conftest import isolated_topics
from tests.test_dashboard import AS_OF, MONTH, ROOMS, demo_values, free_port

pytestmark = pytest.mark.integration

CENTER_NAMES = {"seosan": "서산시민센터", "haemi": "해미 주민센터"}


def heatmap(seed: int) -> list[list[float]]:
    """A 7 x 24 ``occupancy_by_weekday_hour``: nobody at night, figures by day."""
    return [
        [0.0 if h < 9 or h >= 22 else round((seed + d * 3 + h) % 11 * 0.75, 2) for h in range(24)]
        for d in range(7)
    ]


def demo_messages() -> tuple[dict[str, dict[str, Any]], list[Occupancy]]:
    """The demo's ``usage-monthly`` values (this month's with a heatmap) and occupancy."""
    values = demo_values()
    for n, (_key, value) in enumerate(sorted(values.items())):
        if value["month"] == MONTH:
            value["occupancy_by_weekday_hour"] = heatmap(n)
    rooms = [
        Occupancy(
            room_id=room_id,
            center_id=center,
            occupancy=occupancy,
            capacity=capacity,
            as_of=AS_OF,
            room_name=name,
            center_name=CENTER_NAMES[center],
        )
        for room_id, center, name, capacity, occupancy in ROOMS
    ]
    return values, rooms


async def publish(
    settings: Settings,
    usage: Mapping[str, dict[str, Any]] = {},
    rooms: list[Occupancy] = [],  # noqa: B006 - read only
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value in usage.items():
            await producer.send(
                settings.topics.usage_monthly,
                json.dumps(value, ensure_ascii=False).encode(),
                key=key.encode(),
            )
        for room in rooms:
            await producer.send(
                settings.topics.occupancy,
                room.model_dump_json().encode(),
                key=room.room_id.encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()


class DashboardProcess:
    """``spaces dashboard`` in a child process that knows nothing but Kafka."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_HOME": str(workdir / "home"),
        }
        env |= {
            f"SPACES_TOPIC_{name.upper()}": getattr(settings.topics, name)
            for name in type(settings.topics).model_fields
        }
        self.env = env
        self.log = (workdir / "dashboard.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "dashboard", "--port", str(self.port)],
            cwd=workdir,
            env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_caught_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited: {self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/status", timeout=2).json()["caught_up"]:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"dashboard not caught up: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.workdir / "dashboard.log").read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextlib.asynccontextmanager
async def dashboard_process(settings: Settings, workdir: Path) -> AsyncIterator[DashboardProcess]:
    """Started, and rebuilt from the topics, before the body runs; stopped after it."""
    process = DashboardProcess(settings, workdir)
    try:
        await asyncio.to_thread(process.wait_until_caught_up)
        yield process
    finally:
        await asyncio.to_thread(process.stop)


@pytest.fixture
async def fed(kafka_settings: Settings) -> AsyncIterator[tuple[Settings, dict[str, Any]]]:
    """Fresh topics holding the demo's messages."""
    from infra.kafka_local import ensure_topics

    settings = kafka_settings.model_copy(update={"topics": isolated_topics(), "partitions": 3})
    await ensure_topics(settings)
    values, rooms = demo_messages()
    await publish(settings, values, rooms)
    yield settings, values


async def next_event(lines: AsyncIterator[str], name: str, timeout: float) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        current = None
        async for line in lines:
            if line.startswith("event:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and current == name:
                data: dict[str, Any] = json.loads(line.split(":", 1)[1])
                return data
        raise AssertionError("stream ended")

    return await asyncio.wait_for(read(), timeout)


async def test_dashboard_service_with_only_kafka(
    fed: tuple[Settings, dict[str, Any]], tmp_path: Path
) -> None:
    settings, values = fed
    async with dashboard_process(settings, tmp_path) as dashboard:
        assert "DATABASE" not in " ".join(dashboard.env)
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http:
            # /health is the broker's ping.
            assert (await http.get("/health")).status_code == 204

            # The read model was rebuilt from the topics: the demo's figures and names.
            centers = (await http.get("/api/centers")).json()["centers"]
            assert centers == [
                {"center_id": "haemi", "name": CENTER_NAMES["haemi"], "rooms": 1},
                {"center_id": "seosan", "name": CENTER_NAMES["seosan"], "rooms": 4},
            ]
            usage = (await http.get(f"/api/usage?center=seosan&month={MONTH}")).json()
            assert usage["center_name"] == CENTER_NAMES["seosan"]
            stored = values[f"center:seosan:{MONTH}"]
            for field in ("visits", "booked_hours", "utilization", "occupancy_utilization"):
                assert usage["center"][field] == stored[field], field
            assert (
                usage["center"]["occupancy_by_weekday_hour"] == stored["occupancy_by_weekday_hour"]
            )
            club = next(r for r in usage["rooms"] if r["room_id"] == "seosan-club-2")
            assert club["name"] == "동아리실 2" and club["capacity"] == 15
            assert club["visits"] == values[f"room:seosan-club-2:{MONTH}"]["visits"]
            assert [m["month"] for m in usage["months"]][-1] == MONTH

            csv_text = (await http.get(f"/api/usage.csv?center=seosan&month={MONTH}")).text
            rows = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
            assert rows[-1]["name"] == "total" and int(rows[-1]["visits"]) == stored["visits"]

            occupancy = (await http.get("/api/occupancy?center=seosan")).json()["rooms"]
            assert {r["room_id"]: r["occupancy"] for r in occupancy} == {
                r[0]: r[4] for r in ROOMS if r[1] == "seosan"
            }

            # /metrics: FastStream's Kafka metrics and the dashboard's own gauges.
            metrics = (await http.get("/metrics")).text
            received = [
                line
                for line in metrics.splitlines()
                if line.startswith("faststream_received_messages_total{")
            ]
            assert any(settings.topics.usage_monthly in line for line in received), metrics
            usage_topic = settings.topics.usage_monthly
            read_total = (
                f'spaces_dashboard_messages_read_total{{topic="{usage_topic}"}} {len(values)}.0'
            )
            assert read_total in metrics.splitlines()
            assert (
                f'spaces_dashboard_read_model_size{{kind="usage_values"}} {float(len(values))}'
                in metrics
            )
            assert 'spaces_dashboard_read_model_size{kind="rooms"} 5.0' in metrics
            lags = [
                line
                for line in metrics.splitlines()
                if line.startswith("spaces_dashboard_consumer_lag{")
            ]
            assert len(lags) == 6 and all(line.endswith(" 0.0") for line in lags), lags
            assert "spaces_dashboard_caught_up 1.0" in metrics

            # /docs/asyncapi: FastStream's document lists every contract topic and message.
            assert (await http.get("/docs/asyncapi")).status_code == 200
            doc = (await http.get("/docs/asyncapi.json")).json()
            addresses = {c["address"] for c in doc["channels"].values()}
            assert set(settings.topics.all()) <= addresses
            from schemas.export import TOPICS

            schemas = doc["components"]["schemas"]
            for topic in TOPICS:
                for model in topic.models():
                    assert model.__name__ in schemas, model
            ours = [c for c in doc["channels"] if c.endswith(":dashboard")]
            assert sorted(ours) == sorted(
                f"{t}:dashboard" for t in (settings.topics.usage_monthly, settings.topics.occupancy)
            )

            # The live stream is pushed by the occupancy subscriber.
            async with http.stream("GET", "/api/events") as stream:
                lines = stream.aiter_lines()
                first = await next_event(lines, "update", timeout=5)
                changed = Occupancy(
                    room_id="seosan-club-1",
                    center_id="seosan",
                    occupancy=12,
                    capacity=15,
                    as_of=AS_OF + timedelta(minutes=1),
                    room_name="동아리실 1",
                    center_name=CENTER_NAMES["seosan"],
                )
                started = time.monotonic()
                await publish(settings, rooms=[changed])
                pushed = await next_event(lines, "occupancy", timeout=10)
                assert pushed["room_id"] == "seosan-club-1" and pushed["occupancy"] == 12
                assert pushed["version"] > first["version"]
                assert time.monotonic() - started < 5

                value = dict(stored, visits=stored["visits"] + 1000)
                await publish(settings, usage={f"center:seosan:{MONTH}": value})
                update = await next_event(lines, "update", timeout=10)
                assert update["version"] > pushed["version"]
            usage = (await http.get(f"/api/usage?center=seosan&month={MONTH}")).json()
            assert usage["center"]["visits"] == stored["visits"] + 1000

    # It wrote no database anywhere it could.
    written = await asyncio.to_thread(lambda: sorted(tmp_path.rglob("*")))
    assert not [p for p in written if p.suffix in (".db", ".sqlite")], written


async def test_dashboard_rebuilds_from_the_topics_on_restart(
    fed: tuple[Settings, dict[str, Any]], tmp_path: Path
) -> None:
    settings, values = fed
    for run in ("first", "second"):  # nothing kept between runs: each rebuilds everything
        (tmp_path / run).mkdir()
        async with dashboard_process(settings, tmp_path / run) as again:
            async with httpx.AsyncClient(base_url=again.url, timeout=5) as http:
                status = (await http.get("/api/status")).json()
            assert status["usage_values"] == len(values) and status["rooms"] == len(ROOMS)
            assert status["caught_up"] is True


async def test_dashboard_reads_committed_transactions_only(
    fed: tuple[Settings, dict[str, Any]], tmp_path: Path
) -> None:
    """The relay writes in Kafka transactions (contract v1.1): an aborted value is never
    shown, and transaction markers do not leave the dashboard forever one record behind."""
    settings, values = fed
    key = f"center:seosan:{MONTH}"
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, transactional_id=f"dashboard-test-{tmp_path.name}"
    )
    await producer.start()
    try:
        for extra, commit in ((5, True), (999_999, False)):
            value = dict(values[key], visits=values[key]["visits"] + extra)
            await producer.begin_transaction()
            await producer.send_and_wait(
                settings.topics.usage_monthly, json.dumps(value).encode(), key=key.encode()
            )
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    async with (
        dashboard_process(settings, tmp_path) as dashboard,
        httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http,
    ):
        usage = (await http.get(f"/api/usage?center=seosan&month={MONTH}")).json()
        assert usage["center"]["visits"] == values[key]["visits"] + 5
        assert (await http.get("/api/status")).json()["caught_up"] is True
        metrics = (await http.get("/metrics")).text.splitlines()
        lags = [line for line in metrics if line.startswith("spaces_dashboard_consumer_lag{")]
        assert lags and all(line.endswith(" 0.0") for line in lags), lags


async def test_service_to_dashboard_end_to_end(stack_settings: Settings, tmp_path: Path) -> None:
    """The real chain: the authority, relay and statistics write the topics; the dashboard
    process, with only Kafka, names the rooms (``room_name`` on ``occupancy``, renamed too)
    and shows the statistics consumer's figures and the live occupancy."""
    from datetime import datetime
    from uuid import uuid4
    from zoneinfo import ZoneInfo

    from producers.client import DecisionClient
    from schemas.inputs import Checkin, RoomConfigured
    from tests.stack import read_topic, running, wait_for

    seoul = ZoneInfo("Asia/Seoul")
    room = "seosan.club-9"

    def configure(name: str) -> RoomConfigured:
        return RoomConfigured(
            event_id=uuid4(),
            occurred_at=datetime.now(seoul),
            room_id=room,
            center_id="seosan",
            name=name,
            capacity=15,
            booking_mode="exclusive",
            opens="00:00",
            closes="24:00",
            center_name="서산시민센터",
        )

    async with running(stack_settings, ("authority", "relay", "statistics")):
        async with DecisionClient(stack_settings, rooms=[room]) as client:
            assert (await client.request(configure("동아리실 9"))).type == "room.configured"
            for kiosk in ("k1", "k2", "k3"):
                checkin = Checkin(
                    event_id=uuid4(),
                    occurred_at=datetime.now(seoul),
                    room_id=room,
                    kiosk_id=kiosk,
                    party_size=2,
                )
                assert (await client.request(checkin)).type == "checkin.admitted"
        occupancy = await read_topic(stack_settings, stack_settings.topics.occupancy, expect=2)
        assert occupancy[0]["room_name"] == "동아리실 9"
        assert occupancy[0]["center_name"] == "서산시민센터"  # from room.configured
        month = datetime.now(seoul).strftime("%Y-%m")

        async def counted() -> bool:
            values = await read_topic(stack_settings, stack_settings.topics.usage_monthly)
            return any(v["id"] == room and v["visits"] == 6 for v in values)  # persons

        await wait_for(counted, timeout=60)

        async with (
            dashboard_process(stack_settings, tmp_path) as dashboard,
            httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http,
        ):
            usage = (await http.get(f"/api/usage?center=seosan&month={month}")).json()
            (shown,) = usage["rooms"]
            assert shown["name"] == "동아리실 9" and shown["visits"] == 6
            assert usage["center_name"] == "서산시민센터"  # the page's heading
            assert usage["center"]["visits"] == 6
            live = (await http.get("/api/occupancy?center=seosan")).json()["rooms"]
            assert [(r["room_id"], r["occupancy"], r["capacity"]) for r in live] == [(room, 6, 15)]

            # Renamed (same occupancy and capacity): the authority publishes the new name.
            async with DecisionClient(stack_settings, rooms=[room]) as client:
                assert (await client.request(configure("동아리실 아홉"))).type == (
                    "room.configured"
                )

            async def renamed() -> bool:
                rooms = (await http.get("/api/occupancy?center=seosan")).json()["rooms"]
                return bool(rooms and rooms[0]["name"] == "동아리실 아홉")

            await wait_for(renamed, timeout=30)
