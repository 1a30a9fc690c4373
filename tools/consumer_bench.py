"""Profiling aid (not a benchmark target): both consumers in-process, without Kafka.

    python tools/consumer_bench.py [ROOMS] [INPUTS] [--profile authority|statistics] [--memory]
    SEQUENTIAL_IDS=1 python tools/consumer_bench.py ...   # inputs' event ids in increasing order
    RANDOM_IDS=1 python tools/consumer_bench.py ...       # random (version 4) ids, not version 7
    HISTORY=1000000 python tools/consumer_bench.py ...    # ids remembered before, per consumer
    RUNS=1 python tools/consumer_bench.py ... --json      # one run (best of 3 otherwise); a JSON line last

The bench's mixed traffic (``bench.throughput.scenario_inputs``) goes through the real
service layer, unit of work and SQLite, as the consumer loop calls them: the room
authority in batches of ``SPACES_BATCH_MAX_RECORDS`` (1,000) inputs, then the statistics
over the decisions it wrote to the outbox, in batches of
``SPACES_STATISTICS_BATCH_MAX_RECORDS`` (4,000). It prints the CPU time of each pass per
input (``time.process_time``: SQLite's work included, no waits, no Kafka, no relay), best
of 3 runs on fresh database files, with the service's cycle collector settings
(``SPACES_GC_THRESHOLDS``), and the bytes each pass wrote per input (``wchar`` of
``/proc/self/io``: SQLite's WAL, in the main). The inputs' event ids are version 7 UUIDs, as the
bench's (``producers.ids``); ``RANDOM_IDS=1`` makes them random (version 4): what the id
memory's index costs when producers ignore the contract's advice. ``SEQUENTIAL_IDS=1`` gives
them consecutive integers instead. ``HISTORY=N`` first stores N ids in each consumer's id
memory (``processed_inputs``), as 30 days of traffic would have left them: for the room
authority, ids made the way the inputs' are, over the 30 days before; for the statistics,
the key ``UsageStatistics.identity`` gives a decision of those days (an ``event_id`` is
``uuid5``, so random). Not timed; it shows whether a consumer's cost per input grows with
the ids it remembers. Steadier than ``tools/scale_run.py`` on a shared
machine, so it is what to compare before and after a change to either consumer.
"""

import asyncio
import gc
import json
import tracemalloc
import os
import cProfile
import pstats
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from pathlib import Path

# After the script's own directory (or, run by ``bench/history.py`` with ``-c``, after the
# measured checkout it runs in, so that checkout's code is what it measures).
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from bench.throughput import scenario_inputs
from bench.traffic import layout
from consumers.authority import RoomAuthority
from consumers.statistics import UsageStatistics
from entrypoints.service import tune_garbage_collector
from infra.db import Database, OutboxRow
from infra.settings import Settings
from producers.client import topic_for
from producers.ids import new_event_id
from schemas.decisions import DECISION_ADAPTER
from service_layer.processing import Handler, process_batch
from sqlalchemy import func, select

args = [a for a in sys.argv[1:] if a.isdigit()]
ROOMS = int(args[0]) if args else 1000
INPUTS = int(args[1]) if len(args) > 1 else 50_000
PROFILE = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else None
MEMORY = "--memory" in sys.argv
SEQUENTIAL_IDS = bool(os.environ.get("SEQUENTIAL_IDS"))
RANDOM_IDS = bool(os.environ.get("RANDOM_IDS"))
HISTORY = int(os.environ.get("HISTORY", "0"))
RUNS = int(os.environ.get("RUNS", "3"))
JSON = "--json" in sys.argv
WRITTEN: dict[str, list[int]] = {}
"""Bytes written per input, by pass, one entry per run."""


def bytes_written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0
"""One run; the Python allocations the statistics' second half of decisions added to the first's
(tracemalloc): what they keep grows with history only if this does."""


class Sent:
    """A consumed record, as aiokafka gives it."""

    def __init__(self, topic: str, partition: int, offset: int, key: str, value: bytes) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp = 0
        self.key: bytes | None = key.encode()
        self.value: bytes | None = value
        self.headers: list[tuple[str, bytes]] = []


def input_records(settings: Settings) -> list[Sent]:
    offsets: dict[str, int] = {}
    records = []
    for n, event in enumerate(scenario_inputs(layout(ROOMS), INPUTS, 1, RANDOM_IDS)):
        if SEQUENTIAL_IDS:
            event = event.model_copy(update={"event_id": uuid.UUID(int=(1 << 100) + n)})
        topic = topic_for(settings, event)  # where the kiosks and front ends publish it
        offsets[topic] = offsets.get(topic, -1) + 1
        value = event.model_dump_json().encode()
        records.append(Sent(topic, 0, offsets[topic], event.room_id, value))
    return records


async def consume(
    db: Database, handler: Handler[Any], records: list[Sent], batch: int
) -> float:
    began, written = time.process_time(), bytes_written()
    for start in range(0, len(records), batch):
        await decide(db, handler, records[start : start + batch])
    if not handler.settled():  # as the loop does when idle: publish what was held back
        await decide(db, handler, [])
    spent = time.process_time() - began
    per_input = (bytes_written() - written) // max(1, len(records))
    WRITTEN.setdefault(handler.name, []).append(per_input)
    return spent


async def decide(db: Database, handler: Handler[Any], records: list[Sent]) -> None:
    """``records`` in one transaction, then the transactions it left for more (a publishing
    over 250 aggregates), as the loop makes them (``EffectivelyOnceLoop._decide``)."""
    while True:
        async with db.unit_of_work(handler.group) as uow:
            await process_batch(uow, db.settings, handler, records, {})
        handler.committed()
        if not handler.more_to_write():
            return
        records = []


async def memory_growth(
    db: Database, handler: Handler[Any], records: list[Sent], batch: int
) -> None:
    half = len(records) // 2
    tracemalloc.start(10)
    await consume(db, handler, records[:half], batch)
    gc.collect()
    first = tracemalloc.take_snapshot()
    await consume(db, handler, records[half:], batch)
    gc.collect()
    grown = tracemalloc.take_snapshot().compare_to(first, "traceback")
    held, peak = tracemalloc.get_traced_memory()
    print(f"Python allocations grown over the second half: {sum(s.size_diff for s in grown) / 2**20:.1f} MiB")
    print(f"Python allocations held at the end: {held / 2**20:.1f} MiB; the most at any time, while a batch was in flight: {peak / 2**20:.1f} MiB")
    for stat in grown[:8]:
        print(stat, "\n   ", "\n    ".join(stat.traceback.format()[-4:]))
    tracemalloc.stop()


async def remember(db: Database, handler: Handler[Any], identity: Any) -> None:
    """``HISTORY`` ids in ``handler``'s id memory: ``identity(n, at)`` for the n-th, decided
    ``at``, over the 30 days before now, oldest first, in the unit of work's own batches."""
    now = datetime.now(UTC)
    for start in range(0, HISTORY, 10_000):
        async with db.unit_of_work(handler.group) as uow:
            for n in range(start, min(HISTORY, start + 10_000)):
                at = now - timedelta(days=30) * (1 - n / HISTORY)
                uow.mark_processed(identity(n, at), "history", 0, n, "0" * 64)
    # The history's pages into the database file now, not in a checkpoint of the timed pass.
    with sqlite3.connect(db.settings.database_url.partition(":///")[2]) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


async def once(directory: str, run: int, inputs: list[Sent]) -> tuple[float, float, int]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{directory}/run{run}.db")
    db = Database(settings)
    await db.migrate()
    authority = RoomAuthority(settings)
    statistics = UsageStatistics(settings)
    if HISTORY:
        await remember(
            db, authority, lambda n, at: str(uuid.uuid4() if RANDOM_IDS else new_event_id(at))
        )
    profile = cProfile.Profile() if PROFILE else None
    if profile and PROFILE == "authority":
        profile.enable()
    decided = await consume(db, authority, inputs, settings.batch_max_records)
    if profile and PROFILE == "authority":
        profile.disable()
    async with db.read_session() as session:
        values = list(
            await session.scalars(
                select(OutboxRow.value)
                .where(OutboxRow.topic == settings.topics.decisions)
                .order_by(OutboxRow.id)
            )
        )
    decisions = [
        Sent(settings.topics.decisions, 0, offset, "", value.encode())
        for offset, value in enumerate(values)
    ]
    if HISTORY:
        template = DECISION_ADAPTER.validate_json(decisions[0].value or b"")
        await remember(
            db,
            statistics,
            lambda n, at: statistics.identity(
                template.model_copy(update={"event_id": uuid.uuid4(), "decided_at": at})
            ),
        )
    if profile and PROFILE == "statistics":
        profile.enable()
    if MEMORY:
        await memory_growth(db, statistics, decisions, settings.statistics_batch_max_records)
        counted = 0.0
    else:
        counted = await consume(db, statistics, decisions, settings.statistics_batch_max_records)
    if profile:
        profile.disable()
        stats = pstats.Stats(profile).sort_stats(os.environ.get("SORT", "tottime"))
        stats.print_stats(int(os.environ.get("TOP", "25")))
        if "--callers" in sys.argv:
            stats.print_callers(sys.argv[sys.argv.index("--callers") + 1])
    async with db.read_session() as session:
        aggregates = await session.scalar(
            select(func.count()).where(OutboxRow.topic == settings.topics.usage_monthly)
        )
    print(f"run {run}: {aggregates} aggregates in the outbox")
    await db.dispose()
    return decided, counted, len(decisions)


async def main() -> None:
    inputs = input_records(Settings())
    tune_garbage_collector(Settings())  # as a service process does (SPACES_GC_THRESHOLDS)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for run in range(1 if PROFILE or MEMORY else RUNS):
            results.append(await once(directory, run, inputs))
    decided = min(r[0] for r in results)
    counted = min(r[1] for r in results)
    decisions = results[0][2]
    statistics = "not timed (--memory)" if MEMORY else f"{counted / decisions * 1e6:.1f} us/decision"
    print(
        f"{len(inputs)} inputs over {ROOMS} rooms, best of {len(results)} (CPU): "
        f"room authority {decided / len(inputs) * 1e6:.1f} us/input, "
        f"statistics {statistics} ({decisions} decisions)"
    )
    written = {name: min(sizes) for name, sizes in WRITTEN.items()}
    print("bytes written per input:", written)
    if JSON:  # for ``bench/history.py``: one line, last
        import domain

        print(
            json.dumps(
                {
                    "rooms": ROOMS,
                    "inputs": len(inputs),
                    "decisions": decisions,
                    "history": HISTORY,
                    "runs": len(results),
                    "authority_us": round(decided / len(inputs) * 1e6, 1),
                    "statistics_us": None if MEMORY else round(counted / decisions * 1e6, 1),
                    "bytes_per_input": written,
                    "code": str(Path(domain.__file__).resolve().parents[1]),
                }
            )
        )


asyncio.run(main())
