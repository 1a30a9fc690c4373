"""``make bench``: throughput, latency and memory of the room authority, on the real broker.

Every comparison is a ratio of two figures measured in this one process, on this
machine, in this run; nothing here is a target checked by a unit test. Scenarios:

A   batched: N check-ins/check-outs pre-produced to 20 shared rooms, then the room
    authority alone decides them with ``batch_max_records=500`` (one database
    transaction, then one offset commit, per batch), polling as deployed
    (``batch_timeout_ms`` from the settings, 100 ms by default).
B   one event per transaction: the same with ``batch_max_records=1`` (the naive design:
    a database transaction and an offset commit for every event). Ratio A/B.
A*, B*  the same two with a 1 ms poll timeout: a control that leaves only the cost of
    the transactions and commits (see docs/benchmarks.md for why B needs it).
C   kiosk latency: authority + outbox relay running, a ``DecisionClient`` sends
    sequential check-ins and times publish -> decision read back.
M   memory: peak RSS growth of this process across scenario A, and the size of a
    room's JSON state holding 1000 bookings.

B and B* decide the first ``--events-b`` events of A's sequence (default 500): at one
transaction each they would otherwise take most of the run. Each scenario gets its own
topics (random suffix), consumer groups and database (a fresh SQLite file; also
PostgreSQL when ``SPACES_BENCH_POSTGRES_URL`` is set). The figures are printed and
written to ``artifacts/bench.json`` with the machine and the command line.

    .venv/bin/python -m bench.run [--events N] [--events-b N] [--requests N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.capacity import Booking, Room
from entrypoints.service import Services
from infra import kafka_local
from infra.db import Database
from infra.settings import Settings, Topics
from producers.client import DecisionClient, publish_all
from schemas.inputs import AnyInput, Checkin, Checkout, RoomConfigured

log = logging.getLogger("bench")

ROOMS = 20
CAPACITY = 50
CENTER = "bench"
KIOSK = "bench.kiosk-1"
SEED = 20240501
DEFAULT_EVENTS = 5000
QUICK_EVENTS = 1000
DEFAULT_EVENTS_B = 500
QUICK_EVENTS_B = 100
DEFAULT_REQUESTS = 200
QUICK_REQUESTS = 50
BATCHED = 500
JSON_BOOKINGS = 1000
POLL_S = 0.02
PROCESS_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0
OUTPUT = Path("artifacts/bench.json")
PG_ENV = "SPACES_BENCH_POSTGRES_URL"


# --------------------------------------------------------------------------- inputs


def room_ids() -> list[str]:
    return [f"bench.room-{i:02d}" for i in range(1, ROOMS + 1)]


def configurations(now: datetime) -> list[RoomConfigured]:
    """Shared rooms of capacity 50, open all day, so every check-in is about capacity."""
    return [
        RoomConfigured(
            event_id=uuid.uuid4(),
            occurred_at=now,
            room_id=room,
            center_id=CENTER,
            name=f"Bench room {room[-2:]}",
            capacity=CAPACITY,
            booking_mode="shared",
            opens="00:00",
            closes="24:00",
        )
        for room in room_ids()
    ]


def traffic(count: int, seed: int) -> list[Checkin | Checkout]:
    """``count`` check-ins and check-outs over the rooms, never over capacity.

    The generator keeps each room's head count, so every check-in is admitted and every
    check-out leaves no more people than came in: the authority does the full work of an
    admission (state load, rule, decision, occupancy update) for each event.
    """
    rng = random.Random(seed)
    rooms = room_ids()
    inside = dict.fromkeys(rooms, 0)
    out: list[Checkin | Checkout] = []
    for _ in range(count):
        room = rng.choice(rooms)
        party = rng.choices((1, 2, 3, 4), weights=(50, 30, 12, 8))[0]
        leaving = inside[room] > 0 and (
            inside[room] + party > CAPACITY or rng.random() < inside[room] / CAPACITY
        )
        member = f"m-{rng.randint(1, 400):04d}"
        now = datetime.now(UTC)
        if leaving:
            gone = min(party, inside[room])
            inside[room] -= gone
            out.append(
                Checkout(
                    event_id=uuid.uuid4(),
                    occurred_at=now,
                    room_id=room,
                    kiosk_id=KIOSK,
                    party_size=gone,
                    member_id=member,
                )
            )
        else:
            inside[room] += party
            out.append(
                Checkin(
                    event_id=uuid.uuid4(),
                    occurred_at=now,
                    room_id=room,
                    kiosk_id=KIOSK,
                    party_size=party,
                    member_id=member,
                )
            )
    return out


async def produce(settings: Settings, events: Sequence[AnyInput]) -> None:
    """With the idempotent producer (``acks=all``), as every producer of the contract."""
    await publish_all(settings, events)


# --------------------------------------------------------------------------- isolation


def isolated(base: Settings, database_url: str, **overrides: Any) -> Settings:
    """Own topics, own consumer groups, own database: scenarios never see each other."""
    suffix = uuid.uuid4().hex[:8]
    defaults = Topics()
    topics = Topics.model_validate(
        {name: f"bench-{getattr(defaults, name)}-{suffix}" for name in Topics.model_fields}
    )
    return base.model_copy(
        update={
            "topics": topics,
            "database_url": database_url,
            "authority_group": f"bench-authority-{suffix}",
            "statistics_group": f"bench-statistics-{suffix}",
            "decide_at": "wall",
            **overrides,
        }
    )


async def delete_topics(settings: Settings) -> None:
    """Best effort: the bench's topics are throwaway and the broker may be someone's."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(list(settings.topics.all()))
    except Exception as error:
        log.warning("could not delete bench topics: %r", error)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


class Databases:
    """Fresh databases: a SQLite file in a temp dir, or a new PostgreSQL database."""

    def __init__(self, root: Path, postgres_url: str | None) -> None:
        self.root = root
        self.postgres_url = postgres_url
        self.created_pg: list[str] = []

    def backends(self) -> list[str]:
        return ["sqlite", "postgresql"] if self.postgres_url else ["sqlite"]

    async def fresh(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.root / f'{label}-{uuid.uuid4().hex[:6]}.db'}"
        assert self.postgres_url is not None
        name = f"spaces_bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        await self._admin_sql(f'CREATE DATABASE "{name}"')
        self.created_pg.append(name)
        url = make_url(self.postgres_url).set(database=name)
        return url.render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        for name in self.created_pg:
            with contextlib.suppress(Exception):
                await self._admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
        self.created_pg.clear()

    async def _admin_sql(self, statement: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        assert self.postgres_url is not None
        url = make_url(self.postgres_url)
        conn = await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.host,
            port=url.port,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


def reader_engine(url: str) -> AsyncEngine:
    """A plain engine for polling: no ``BEGIN IMMEDIATE`` hook, so it never takes
    SQLite's write lock away from the consumer it is watching (WAL readers don't block)."""
    if make_url(url).get_backend_name() == "sqlite":
        return create_async_engine(url, connect_args={"timeout": 30})
    return create_async_engine(url, pool_size=1, max_overflow=0)


@asynccontextmanager
async def services(settings: Settings, parts: tuple[str, ...]) -> AsyncIterator[Services]:
    """The services in-process; stopped (batch in flight committed, group left) on exit."""
    running = Services(settings, parts)
    task = asyncio.create_task(running.run(), name="bench-services")
    try:
        yield running
    finally:
        running.stop.set()
        try:
            await asyncio.wait_for(task, timeout=60)
        except Exception as error:
            log.warning("services did not stop cleanly: %r", error)


async def wait_ready(running: Services, task_hint: str) -> None:
    try:
        await asyncio.wait_for(running.ready.wait(), READY_TIMEOUT_S)
    except TimeoutError as error:
        raise RuntimeError(f"{task_hint}: services not ready in {READY_TIMEOUT_S:.0f}s") from error


# --------------------------------------------------------------------------- A and B


@dataclass
class Throughput:
    scenario: str
    backend: str
    batch_max_records: int
    poll_timeout_ms: int
    """``batch_timeout_ms``: how long one ``getmany`` waits for records."""
    events: int
    """Check-ins and check-outs."""
    inputs: int
    """Events plus one ``room.configured`` per room: the processed inputs waited for."""
    produce_s: float
    wall_s: float
    """From starting the authority (migration check, group join) until all are recorded."""
    processing_s: float
    """From the first input recorded as processed until all are recorded."""
    inputs_per_s_wall: float
    inputs_per_s_processing: float
    ms_per_input: float
    decisions: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0


async def count_processed(engine: AsyncEngine, group: str) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT count(*) FROM processed_inputs WHERE consumer = :group"),
            {"group": group},
        )
        return int(result.scalar_one())


async def first_processed(engine: AsyncEngine, group: str) -> float:
    """Unix time of the earliest ``processed_at`` of the group (stored in UTC)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT processed_at FROM processed_inputs WHERE consumer = :group"),
            {"group": group},
        )
        stamps = [_as_datetime(value) for value in result.scalars()]
    return min(stamps).timestamp()


def _as_datetime(value: Any) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


async def outcomes(engine: AsyncEngine, settings: Settings) -> tuple[dict[str, int], int]:
    """Decision types written to the outbox, and dead letters: the run did real work."""
    topics = settings.topics
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT topic, value FROM outbox WHERE topic IN (:decisions, :dead)"),
            {"decisions": topics.decisions, "dead": topics.dead_letters},
        )
        rows = list(result)
    kinds: Counter[str] = Counter()
    dead = 0
    for topic, value in rows:
        if topic == topics.dead_letters:
            dead += 1
        else:
            kinds[str(json.loads(value)["type"])] += 1
    return dict(sorted(kinds.items())), dead


async def throughput(
    base: Settings,
    databases: Databases,
    backend: str,
    scenario: str,
    batch_max_records: int,
    events: int,
    poll_timeout_ms: int | None = None,
) -> Throughput:
    """Pre-produce, then start the authority and time it until every input is recorded."""
    url = await databases.fresh(backend, scenario.split()[0].lower())
    timeout_ms = poll_timeout_ms or base.batch_timeout_ms
    settings = isolated(base, url, batch_max_records=batch_max_records, batch_timeout_ms=timeout_ms)
    await kafka_local.ensure_topics(settings)
    # Migrate before the clock starts: both designs share that cost, it is not decided work.
    db = Database(settings)
    await db.migrate()
    await db.dispose()

    inputs: list[AnyInput] = [*configurations(datetime.now(UTC))]
    started = time.perf_counter()
    await produce(settings, inputs)  # configurations first: they precede every check-in
    work = traffic(events, SEED)
    await produce(settings, work)
    produce_s = time.perf_counter() - started
    expected = len(inputs) + len(work)

    engine = reader_engine(url)
    try:
        group = settings.authority_group
        async with services(settings, ("authority",)) as running:
            t0 = time.time()
            while True:
                if await count_processed(engine, group) >= expected:
                    t1 = time.time()
                    break
                if running.stop.is_set():
                    raise RuntimeError(f"{scenario}/{backend}: the authority stopped early")
                if time.time() - t0 > PROCESS_TIMEOUT_S:
                    raise TimeoutError(f"{scenario}/{backend}: not done in {PROCESS_TIMEOUT_S}s")
                await asyncio.sleep(POLL_S)
        first = await first_processed(engine, group)
        decisions, dead = await outcomes(engine, settings)
    finally:
        await engine.dispose()
        await delete_topics(settings)
    wall_s = t1 - t0
    processing_s = max(t1 - first, 1e-9)
    return Throughput(
        scenario=scenario,
        backend=backend,
        batch_max_records=batch_max_records,
        poll_timeout_ms=timeout_ms,
        events=events,
        inputs=expected,
        produce_s=round(produce_s, 3),
        wall_s=round(wall_s, 3),
        processing_s=round(processing_s, 3),
        inputs_per_s_wall=round(expected / wall_s, 1),
        inputs_per_s_processing=round(expected / processing_s, 1),
        ms_per_input=round(processing_s / expected * 1000, 2),
        decisions=decisions,
        dead_letters=dead,
    )


# --------------------------------------------------------------------------- C


@dataclass
class Latency:
    backend: str
    requests: int
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    decisions: dict[str, int]
    relay_interval_s: float
    batch_timeout_ms: int


async def latency(base: Settings, databases: Databases, backend: str, requests: int) -> Latency:
    url = await databases.fresh(backend, "latency")
    settings = isolated(base, url)  # production defaults: relay interval, batch timeout
    await kafka_local.ensure_topics(settings)
    rooms = room_ids()
    kinds: Counter[str] = Counter()
    samples: list[float] = []
    try:
        async with services(settings, ("authority", "relay")) as running:
            await wait_ready(running, "latency")
            async with DecisionClient(settings, rooms=rooms) as client:
                # Configuring the rooms also warms up metadata, connections and the group.
                configured = await asyncio.gather(
                    *(client.request(event, timeout=60) for event in configurations(_now()))
                )
                if any(d.type != "room.configured" for d in configured):
                    raise RuntimeError(f"rooms not configured: {configured}")
                for i in range(requests):
                    event = Checkin(
                        event_id=uuid.uuid4(),
                        occurred_at=_now(),
                        room_id=rooms[i % len(rooms)],
                        kiosk_id=KIOSK,
                        party_size=1,
                    )
                    t = time.perf_counter()
                    decision = await client.request(event, timeout=30)
                    samples.append((time.perf_counter() - t) * 1000)
                    kinds[decision.type] += 1
    finally:
        await delete_topics(settings)
    return Latency(
        backend=backend,
        requests=requests,
        median_ms=round(statistics.median(samples), 1),
        p95_ms=round(percentile(samples, 95), 1),
        min_ms=round(min(samples), 1),
        max_ms=round(max(samples), 1),
        mean_ms=round(statistics.fmean(samples), 1),
        decisions=dict(sorted(kinds.items())),
        relay_interval_s=settings.relay_interval_s,
        batch_timeout_ms=settings.batch_timeout_ms,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def percentile(samples: Sequence[float], pct: int) -> float:
    """Linear interpolation between closest ranks (``statistics.quantiles`` inclusive)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


# --------------------------------------------------------------------------- memory


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def room_json_size(bookings: int) -> dict[str, Any]:
    """Bytes of one room's state as the authority stores it (``Room.to_json``, JSON text)."""
    seoul = ZoneInfo("Asia/Seoul")
    room = Room(
        room_id="bench.room-json",
        center_id=CENTER,
        name="Bench room with many bookings",
        capacity=CAPACITY,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
        timezone="Asia/Seoul",
    )
    start = datetime(2030, 1, 1, 9, tzinfo=seoul)
    for i in range(bookings):
        begins = start + timedelta(hours=i)
        booking_id = f"bk-{uuid.UUID(int=i)}"
        room.bookings[booking_id] = Booking(
            booking_id=booking_id,
            member_id=f"m-{i % 400 + 1:04d}",
            party_size=1 + i % 4,
            starts_at=begins,
            ends_at=begins + timedelta(hours=2),
        )
    state = room.to_json()
    size = len(json.dumps(state).encode("utf-8"))
    if Room.from_json(json.loads(json.dumps(state))).to_json() != state:
        raise RuntimeError("room JSON does not round-trip")
    return {
        "bookings": bookings,
        "bytes": size,
        "kib": round(size / 1024, 1),
        "bytes_per_booking": round(size / bookings, 1),
    }


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    return {
        "nproc": affinity,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_revision() -> dict[str, Any] | None:
    """The commit measured, and whether the work tree had changes on top of it."""
    try:
        head, status = (
            subprocess.run(
                ["git", *command], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            for command in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain"])
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status)}


def ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b else float("inf")


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        f"bench: {report['command']}  ({report['date']}, {m['nproc']} cores, "
        f"Python {m['python']}, broker {report['broker']['bootstrap']})",
        "",
        "throughput (wall = from starting the authority; proc = from the first input recorded)",
    ]
    header = "scenario db batch poll_ms inputs wall_s inputs/s proc_s inputs/s ms/input"
    rows = [header.split()]
    for t in report["throughput"]:
        rows.append(
            [
                t["scenario"],
                t["backend"],
                str(t["batch_max_records"]),
                str(t["poll_timeout_ms"]),
                str(t["inputs"]),
                f"{t['wall_s']:.2f}",
                f"{t['inputs_per_s_wall']:.0f}",
                f"{t['processing_s']:.2f}",
                f"{t['inputs_per_s_processing']:.0f}",
                f"{t['ms_per_input']:.2f}",
            ]
        )
    out += [table(rows), ""]
    for r in report["ratios"]:
        out.append(
            f"ratio {r['pair']} ({r['backend']}): {r['processing']}x while processing, "
            f"{r['wall']}x from start"
        )
    c = report["latency"]
    out += [
        "",
        f"C kiosk latency ({c['backend']}, {c['requests']} sequential check-ins, publish -> "
        f"decision): median {c['median_ms']} ms, p95 {c['p95_ms']} ms "
        f"(min {c['min_ms']}, max {c['max_ms']})",
    ]
    mem = report["memory"]
    out += [
        f"M peak RSS across A ({mem['backend']}): {mem['peak_rss_before_mib']:.1f} -> "
        f"{mem['peak_rss_after_mib']:.1f} MiB (+{mem['peak_rss_delta_mib']:.1f} MiB)",
        f"M room JSON with {mem['room_json']['bookings']} bookings: "
        f"{mem['room_json']['kib']} KiB ({mem['room_json']['bytes_per_booking']} B/booking)",
        "",
        f"wrote {report['output']} in {report['elapsed_s']:.0f}s",
    ]
    return "\n".join(out)


@dataclass(frozen=True)
class Spec:
    scenario: str
    batch_max_records: int
    poll_timeout_ms: int | None
    """None: the settings' ``batch_timeout_ms`` (as deployed)."""
    many: bool
    """True: ``--events`` inputs; False: ``--events-b`` (the slow designs)."""


SPECS = (
    Spec("A batched", BATCHED, None, many=True),
    Spec("B one-per-txn", 1, None, many=False),
    Spec("A* batched", BATCHED, 1, many=True),
    Spec("B* one-per-txn", 1, 1, many=False),
)
PAIRS = (("A/B", "A batched", "B one-per-txn"), ("A*/B*", "A* batched", "B* one-per-txn"))


async def run_all(
    base: Settings, events: int, events_b: int, requests: int, postgres_url: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spaces-bench-") as tmp:
        databases = Databases(Path(tmp), postgres_url)
        results: list[Throughput] = []
        memory: dict[str, Any] = {}
        try:
            for backend in databases.backends():
                for spec in SPECS:
                    before = peak_rss_mib()
                    t = await throughput(
                        base,
                        databases,
                        backend,
                        spec.scenario,
                        spec.batch_max_records,
                        events if spec.many else events_b,
                        spec.poll_timeout_ms,
                    )
                    after = peak_rss_mib()
                    if not memory:  # the first scenario A of the run
                        memory = {
                            "backend": backend,
                            "scenario": spec.scenario,
                            "peak_rss_before_mib": round(before, 1),
                            "peak_rss_after_mib": round(after, 1),
                            "peak_rss_delta_mib": round(after - before, 1),
                        }
                    print(
                        f"  {spec.scenario} ({backend}): {t.inputs_per_s_processing:.0f} inputs/s",
                        flush=True,
                    )
                    results.append(t)
            print("  C kiosk latency ...", flush=True)
            c = await latency(base, databases, "sqlite", requests)
        finally:
            await databases.drop_all()
    memory["room_json"] = room_json_size(JSON_BOOKINGS)
    ratios = []
    for backend in databases.backends():
        by_name = {t.scenario: t for t in results if t.backend == backend}
        for pair, first, second in PAIRS:
            a, b = by_name[first], by_name[second]
            ratios.append(
                {
                    "pair": pair,
                    "backend": backend,
                    "processing": ratio(a.inputs_per_s_processing, b.inputs_per_s_processing),
                    "wall": ratio(a.inputs_per_s_wall, b.inputs_per_s_wall),
                }
            )
    return {
        "throughput": [asdict(t) for t in results],
        "ratios": ratios,
        "latency": asdict(c),
        "memory": memory,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=summary)
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"check-ins/check-outs for A and A* (default {DEFAULT_EVENTS}, quick {QUICK_EVENTS})",
    )
    parser.add_argument(
        "--events-b",
        type=int,
        default=None,
        help=f"check-ins/check-outs for B and B*, one transaction each (default "
        f"{DEFAULT_EVENTS_B}, quick {QUICK_EVENTS_B}): the first ones of A's sequence",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"sequential kiosk requests for C (default {DEFAULT_REQUESTS}, quick "
        f"{QUICK_REQUESTS})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default {OUTPUT}")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else DEFAULT_EVENTS
    if args.events_b is None:
        args.events_b = min(args.events, QUICK_EVENTS_B if args.quick else DEFAULT_EVENTS_B)
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if min(args.events, args.events_b, args.requests) < 1:
        parser.error("--events, --events-b and --requests must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Fresh topics answer NOT_LEADER for a moment; aiokafka logs each retry it then makes
    # (some at ERROR). A failure that matters raises, and the bench stops on it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    began = time.monotonic()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    settings = Settings()
    host = machine()

    was_running = bool(kafka_local.info(settings)["running"])
    broker = kafka_local.up(settings)
    print(
        f"broker {settings.bootstrap}: "
        + ("reused" if was_running or not broker.started else "started")
        + f"; {args.events} events (B: {args.events_b}), {args.requests} kiosk requests",
        flush=True,
    )
    try:
        figures = asyncio.run(
            run_all(
                settings,
                args.events,
                args.events_b,
                args.requests,
                os.environ.get(PG_ENV) or None,
            )
        )
    finally:
        if not was_running and not settings.uses_external_kafka:
            print(kafka_local.down(settings), flush=True)

    report: dict[str, Any] = {
        "date": date,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "git": git_revision(),
        "machine": host,
        "broker": {
            "bootstrap": settings.bootstrap,
            "external": settings.uses_external_kafka,
            "kafka_version": settings.kafka_version,
            "partitions": settings.partitions,
            "reused": was_running,
        },
        "parameters": {
            "events": args.events,
            "events_b": args.events_b,
            "rooms": ROOMS,
            "capacity": CAPACITY,
            "batched_max_records": BATCHED,
            "poll_timeout_ms_default": settings.batch_timeout_ms,
            "requests": args.requests,
            "seed": SEED,
            "postgresql": bool(os.environ.get(PG_ENV)),
        },
        **figures,
        "output": str(args.output),
    }
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
