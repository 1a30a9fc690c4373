"""``make demo``: a Seosan-like center, months of traffic, a busy hour at the kiosks.

Runs the main job on the embedded defaults (the local broker, the SQLite file):
1. brings the broker up and starts from empty topics and an empty database;
2. runs the room authority, the outbox relay and the statistics in this process,
   deciding at each input's own time (``decide_at=event``) so months of history
   can be replayed in a minute;
3. configures the center and replays its months day by day, the clock's ticks
   after each day's traffic; closes the finished months;
4. drives a busy hour of kiosk and booking traffic through the kiosk client
   (publish, wait for the decision by ``caused_by``) from two kiosks at once;
5. prints what was decided, the occupancy now, this month's usage table, how full each room
   was next to how booked it was (occupancy utilization, e.g. the book café's, which nobody
   books) with each room's no-show rate, last month and this month, and the dashboard's
   address.
"""

from __future__ import annotations

import asyncio
import json
import statistics as stats
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from consumers.statistics import close_months
from entrypoints.progress import progress_bar
from entrypoints.service import Services
from infra import kafka_local
from infra.db import Database, OutboxRow, ProcessedInput, RoomRow, is_sqlite
from infra.observability import METRICS
from infra.settings import Settings
from producers.client import DecisionClient, publish_input
from producers.traffic import Day, busy_hour, configuration, generate, seosan_center
from schemas.decisions import Decision
from schemas.inputs import AnyInput, BookingRequested, Checkin, Checkout

DEMO_PARTS = ("authority", "relay", "statistics")


def first_of_month(day: date, months_back: int) -> date:
    year, month = day.year, day.month - months_back
    while month < 1:
        month += 12
        year -= 1
    return date(year, month, 1)


async def reset(settings: Settings) -> None:
    """Empty topics and database, so the demo's figures are the demo's alone."""
    if settings.uses_external_kafka:
        raise SystemExit(
            "the demo resets its topics; it runs only on the local broker "
            "(unset SPACES_KAFKA_BOOTSTRAP)"
        )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in settings.topics.all() if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
            for _ in range(100):
                if not set(await admin.list_topics()) & set(doomed):
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    await kafka_local.ensure_topics(settings)
    if is_sqlite(settings.database_url):
        database = make_url(settings.database_url).database
        if database:
            for suffix in ("", "-wal", "-shm"):
                await asyncio.to_thread(Path(database + suffix).unlink, missing_ok=True)


SETTLE_TIMEOUT_S = 120.0


class Driver:
    """Publishes inputs and waits until they are decided, published and counted."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        client: DecisionClient,
        service: asyncio.Task[None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.service = service
        """The service's task: a wait ends with its error if it stops."""
        self.sent = 0
        self._read_before = self.records_read()

    @staticmethod
    def records_read() -> int:
        """Inputs the room authority (in this process) read and committed, ticks included."""
        return METRICS.counters["authority_records_total"]

    async def send(self, events: list[AnyInput]) -> None:
        producer = self.client._producer
        assert producer is not None
        futures = [await publish_input(producer, self.settings, e) for e in events]
        await asyncio.gather(*futures)
        self.sent += len(events)

    async def settled(self) -> None:
        """Every input decided, every outbox row published, every decision counted.

        Raises the service's error if it stopped, and ``TimeoutError`` if nothing moved
        for ``SETTLE_TIMEOUT_S``: the demo never waits without a limit.
        """
        last: tuple[int, Any, Any, Any] | None = None
        moved = time.monotonic()
        while True:
            if self.service.done():
                self.service.result()
                raise RuntimeError("the service stopped before the demo's inputs were decided")
            decided = self.records_read() - self._read_before
            async with self.db.read_session() as session:
                backlog = await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.published.is_(False))
                )
                decisions = await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.topic == self.settings.topics.decisions)
                )
                counted = await session.scalar(
                    select(func.count())
                    .select_from(ProcessedInput)
                    .where(ProcessedInput.consumer == self.settings.statistics_group)
                )
            if decided >= self.sent and backlog == 0 and counted == decisions:
                return
            if (decided, backlog, decisions, counted) != last:
                last, moved = (decided, backlog, decisions, counted), time.monotonic()
            elif time.monotonic() - moved > SETTLE_TIMEOUT_S:
                raise TimeoutError(
                    f"nothing moved for {SETTLE_TIMEOUT_S:.0f}s: {decided}/{self.sent} decided, "
                    f"{backlog} outbox rows unpublished, {counted}/{decisions} decisions counted"
                )
            await asyncio.sleep(0.05)

    async def replay_days(self, days: list[Day]) -> None:
        with progress_bar("days decided", total=len(days)) as advance:
            for number, day in enumerate(days, 1):
                await self.send(day.events)
                await self.settled()
                await self.send(list(day.ticks))
                await self.settled()
                advance(number)
                if number % 15 == 0 or number == len(days):
                    print(f"  {day.date.isoformat()}: {self.sent:,} inputs decided", flush=True)


async def kiosk_hour(
    client: DecisionClient, events: list[AnyInput]
) -> tuple[list[Decision], list[float]]:
    """Two kiosks at the door, each sending its check-ins and waiting for the answers."""
    latencies: list[float] = []
    decisions: list[Decision] = []

    async def kiosk(mine: list[AnyInput]) -> None:
        for event in mine:
            started = time.perf_counter()
            decisions.append(await client.request(event))
            latencies.append(time.perf_counter() - started)

    door: list[AnyInput] = [e for e in events if isinstance(e, Checkin | Checkout)]
    await asyncio.gather(kiosk(door[0::2]), kiosk(door[1::2]))
    return decisions, latencies


def print_decisions(counts: Counter[str], title: str) -> None:
    print(f"\n{title}")
    for kind, count in sorted(counts.items()):
        print(f"  {kind:<28} {count:>6,}")


async def demo(settings: Settings, months: int = 3, seed: int = 7) -> int:
    # A replay that waits for each step's figures: the statistics fold at once (no linger).
    settings = settings.model_copy(
        update={
            "decide_at": "event",
            "relay_interval_s": 0.02,
            "batch_timeout_ms": 20,
            "statistics_linger_ms": 0,
        }
    )
    center = seosan_center()
    tz = ZoneInfo(center.timezone)
    today = datetime.now(tz).date()
    start = first_of_month(today, months - 1)
    yesterday = today - timedelta(days=1)
    began = time.perf_counter()

    print(f"community-spaces demo: {center.name}, {start} .. {today}")
    info = await asyncio.to_thread(kafka_local.up, settings)
    print(f"kafka at {info.bootstrap}; database {settings.database_url}")
    await reset(settings)

    services = Services(settings, DEMO_PARTS)
    running = asyncio.create_task(services.run())
    await asyncio.wait(
        [running, asyncio.ensure_future(services.ready.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    if running.done():
        running.result()
    db = Database(settings)
    try:
        async with DecisionClient(settings, rooms=[r.room_id for r in center.rooms]) as client:
            driver = Driver(settings, db, client, running)
            opening = datetime(start.year, start.month, start.day, 6, 0, tzinfo=tz)
            await driver.send(list(configuration(center, opening)))
            await driver.settled()
            days = generate(center, start, yesterday, seed) if yesterday >= start else []
            print(f"replaying {len(days)} days of traffic ...", flush=True)
            await driver.replay_days(days)
            for month_start in (first_of_month(today, back) for back in range(months - 1, 0, -1)):
                next_month = first_of_month(month_start + timedelta(days=32), 0)
                closed_at = datetime(next_month.year, next_month.month, 1, 0, 5, tzinfo=tz)
                await close_months(settings, db, month_start.strftime("%Y-%m"), closed_at)
            await driver.settled()

            # Today: a busy afternoon hour at the door, and bookings made at the counter.
            hour = datetime(today.year, today.month, today.day, 14, 0, tzinfo=tz)
            traffic = busy_hour(center, hour, seed)
            booking = BookingRequested(
                event_id=_uuid(seed),
                occurred_at=hour,
                room_id="seosan.club-1",
                booking_id=f"demo-{today:%Y%m%d}-evening",
                member_id="m-0042",
                party_size=12,
                starts_at=hour.replace(hour=19),
                ends_at=hour.replace(hour=21),
            )
            booked = await client.request(booking)
            decisions, latencies = await kiosk_hour(client, traffic)
            driver.sent += 1 + len(decisions)
            await driver.settled()
    finally:
        services.stop.set()
        await asyncio.wait_for(running, timeout=60)
    report_hour(decisions, latencies, booked)
    await print_state(settings, db)
    await db.dispose()
    from entrypoints.report import occupancy_report, report

    await report(settings, today.strftime("%Y-%m"), center.center_id)
    last_month = first_of_month(today, 1).strftime("%Y-%m")
    print()
    await occupancy_report(settings, [last_month, today.strftime("%Y-%m")], center.center_id)
    print(f"\ndone in {time.perf_counter() - began:.0f}s.")
    print(
        f"dashboard: `make dashboard` (or `spaces dashboard`), then open "
        f"http://{settings.dashboard_host}:{settings.dashboard_port}/"
    )
    return 0


def _uuid(seed: int) -> Any:
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"community-spaces-demo-booking-{seed}-{date.today()}")


def report_hour(decisions: list[Decision], latencies: list[float], booked: Decision) -> None:
    counts = Counter(
        d.type + (f" ({getattr(d, 'reason', '')})" if d.type == "checkin.denied" else "")
        for d in decisions
    )
    print_decisions(counts, f"busy hour at the kiosks: {len(decisions)} requests")
    if latencies:
        ordered = sorted(latencies)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            "  kiosk round trip (publish -> decision): "
            f"median {stats.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
    print(f"  counter booking for tonight: {booked.type}")


async def print_state(settings: Settings, db: Database) -> None:
    async with db.read_session() as session:
        rows = list(await session.scalars(select(RoomRow).order_by(RoomRow.room_id)))
        kinds = Counter(
            json.loads(value)["type"]
            for value in await session.scalars(
                select(OutboxRow.value).where(OutboxRow.topic == settings.topics.decisions)
            )
        )
    print_decisions(Counter(kinds), "all decisions on the `decisions` topic")
    print("\noccupancy now")
    for row in rows:
        name = row.state.get("name", row.room_id)
        bar = "#" * row.occupancy + "." * max(0, row.capacity - row.occupancy)
        print(f"  {row.room_id:<18} {name:<30} {row.occupancy:>3}/{row.capacity:<3} {bar}")
