"""The chaos run: the service as separate processes, traffic, faults, settle, check.

1. A broker of its own (or a three-node KRaft cluster) on its own ports and home, and a
   database of its own, in a fresh run directory.
2. The service as separate processes: the room authority twice (one consumer group), the
   relay, the statistics consumer and the clock, all deciding at ``occurred_at``
   (``SPACES_DECIDE_AT=event``, so the decisions are a function of the inputs).
3. Every room configured, and their decisions awaited.
4. The traffic (``chaos.traffic``) at a steady rate, with kiosk retries: some inputs sent
   again, byte for byte, at once or up to 20 s later. Meanwhile, at seeded random moments:
   SIGKILLs of service processes (each started again 0.3-3 s later), a third authority
   started and stopped again (rebalances), the broker killed and started on its storage;
   on a cluster, one node killed mid-stream and started again later.
5. The clock stopped, then the service given time to settle: both consumer groups caught
   up with their topics and the outputs unchanged for a few seconds.
6. Every process stopped; every topic read from the beginning; the checker
   (``chaos.checker``); the summary table; the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chaos.checker import Findings, Outputs, check
from chaos.processes import ServiceProcess
from chaos.reference import InputTopics, Landed
from chaos.report import Faults, summary
from chaos.traffic import Outgoing, Traffic, configurations, plan_rooms
from infra import kafka_local, tick_signature
from infra.kafka import make_producer
from infra.settings import Settings, Topics

log = logging.getLogger("chaos")

PARTITIONS = 6
CLOCK_INTERVAL_S = 10.0
RESEND_SHARE = 0.05
"""Share of kiosk and front-end inputs sent a second time (a retry without an answer)."""
PRODUCER_TIMEOUT_MS = 120_000
"""The feeder's producer keeps a record through a broker restart instead of failing it."""
STABLE_POLLS = 3
MARKER_SLACK = 50
"""A group this few offsets behind may be caught up: the rest may be transaction markers."""
KILL_WEIGHTS = {"authority-1": 3, "authority-2": 3, "relay": 2, "statistics": 2, "clock": 1}


@dataclass
class Options:
    inputs: int = 100_000
    rooms: int = 500
    kills: int = 12
    brokers: int = 1
    rate: float = 400.0
    """Inputs per second offered (originals; retries come on top)."""
    rebalances: int = 2
    """Times a third authority instance joins and leaves again."""
    seed: int = 20261123
    port: int = 39092
    controller_port: int = 39093
    run_dir: Path | None = None
    keep: bool = False
    database_url: str | None = None
    settle_timeout_s: float = 600.0
    report: Path | None = None


@dataclass
class Run:
    """Everything the faults and the watchdog act on."""

    options: Options
    settings: Settings
    """The broker's (home, ports); ``bootstrap`` is every node's address."""
    bootstrap: str
    processes: dict[str, ServiceProcess]
    faults: Faults = field(default_factory=Faults)
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", flush=True)


def service_env(
    run_dir: Path, bootstrap: str, database_url: str, clock_secret: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    env.update(
        {
            "SPACES_KAFKA_BOOTSTRAP": bootstrap,
            "SPACES_DATABASE_URL": database_url,
            "SPACES_HOME": str(run_dir / "home"),
            "SPACES_DECIDE_AT": "event",
            "SPACES_PARTITIONS": str(PARTITIONS),
            "SPACES_CLOCK_INTERVAL_S": str(CLOCK_INTERVAL_S),
            "SPACES_CLOCK_SECRET": clock_secret,
            "SPACES_RUN_PROCESSES": "one",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# --------------------------------------------------------------------------- Kafka reads


async def read_topic(bootstrap: str, topic: str, timeout_s: float = 300.0) -> list[Landed]:
    """Every record of ``topic`` from the beginning up to its end now (read_committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[Landed] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {timeout_s:.0f}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(
                            Landed(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
                        )
    finally:
        await consumer.stop()
    return out


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        found: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return found
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of ``topics`` past the group's committed offsets.

    Output topics are written in transactions: each commit marker takes an offset that no
    consumer ever receives, so a caught-up group commits the offset *before* the last
    marker. A partition a few offsets behind is therefore read from the committed offset to
    the end, and only the records a read_committed reader gets there count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    lag = 0
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        near: dict[TopicPartition, int] = {}
        for tp, end in ends.items():
            done = committed.get(tp)
            start = done.offset if done is not None and done.offset >= 0 else 0
            if end - start > MARKER_SLACK:
                lag += end - start
            elif end > start:
                near[tp] = start
        if near:
            consumer.assign(list(near))
            for tp, start in near.items():
                consumer.seek(tp, start)
            deadline = time.monotonic() + 10.0
            while [tp for tp in near if await consumer.position(tp) < ends[tp]]:
                if time.monotonic() > deadline:
                    return lag + sum(ends[tp] - start for tp, start in near.items())
                batches = await consumer.getmany(timeout_ms=200)
                lag += sum(
                    1 for tp, records in batches.items() for r in records if r.offset < ends[tp]
                )
    finally:
        await consumer.stop()
    return lag


# --------------------------------------------------------------------------- feeding


class Feeder:
    """Sends records with the contract's producer; a record whose send failed is sent
    again (the same bytes: a producer retry is a kiosk retry)."""

    def __init__(self, run: Run, producer: AIOKafkaProducer, topics: InputTopics) -> None:
        self.run = run
        self.producer = producer
        self.names = {
            "capacity": topics.capacity,
            "bookings": topics.bookings,
            "checkins": topics.checkins,
        }
        self.pending: set[asyncio.Future[Any]] = set()
        self.failed: list[Outgoing] = []
        self.sent = 0

    async def send(self, item: Outgoing) -> None:
        try:
            future = await self.producer.send(
                self.names[item.role],
                key=item.key,
                value=item.value,
                timestamp_ms=item.timestamp_ms,
                headers=list(item.headers) or None,
            )
        except Exception as error:
            log.debug("send failed at once: %r", error)
            self.failed.append(item)
            return
        self.sent += 1
        self.pending.add(future)
        future.add_done_callback(lambda done: self._done(done, item))

    def _done(self, future: asyncio.Future[Any], item: Outgoing) -> None:
        self.pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.failed.append(item)

    async def retry_failed(self) -> None:
        failed, self.failed = self.failed, []
        for item in failed:
            self.run.faults.producer_retries += 1
            await self.send(item)

    async def drain(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pending or self.failed:
            if time.monotonic() > deadline:
                raise TimeoutError("inputs not acknowledged within the time limit")
            await self.retry_failed()
            if self.pending:
                await asyncio.wait(set(self.pending), timeout=1.0)
            else:
                await asyncio.sleep(0.5)


async def feed(run: Run, feeder: Feeder, traffic: Traffic, rng: random.Random) -> None:
    """``inputs`` records at ``rate`` per second; after a stall (a broker down) the pace
    resumes instead of sending the backlog in one burst."""
    options = run.options
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    made = 0
    retries: list[tuple[float, int, Outgoing]] = []
    last_report = 0.0
    while made < options.inputs:
        now = loop.time()
        due = min(options.inputs, int((now - t0) * options.rate)) - made
        if due > options.rate:  # more than a second behind: do not catch up in one burst
            t0 = now - made / options.rate
            due = int(options.rate / 20)
        for _ in range(max(0, due)):
            item = traffic.next(datetime.now(UTC))
            await feeder.send(item)
            made += 1
            if item.retryable and rng.random() < RESEND_SHARE:
                if rng.random() < 0.5:
                    await feeder.send(item)
                else:
                    heapq.heappush(retries, (now + rng.uniform(1.0, 20.0), made, item))
        while retries and retries[0][0] <= now:
            await feeder.send(heapq.heappop(retries)[2])
        await feeder.retry_failed()
        if now - last_report >= 15.0:
            run.say(f"sent {made:,} of {options.inputs:,} inputs")
            last_report = now
        await asyncio.sleep(0.02)
    for _, _, item in sorted(retries):
        await feeder.send(item)
    await feeder.drain()
    run.say(f"all {made:,} inputs sent and acknowledged ({feeder.sent:,} records)")


# --------------------------------------------------------------------------- faults


def fault_schedule(options: Options, rng: random.Random) -> list[tuple[float, str]]:
    """(seconds into the feed, what) for every fault, at seeded random moments."""
    span = options.inputs / options.rate
    plan: list[tuple[float, str]] = []
    for _ in range(options.kills):
        plan.append((rng.uniform(0.05, 0.92) * span, "kill"))
    for i in range(options.rebalances):
        slot = (i + rng.uniform(0.1, 0.5)) / max(1, options.rebalances)
        plan.append((slot * 0.85 * span, "instance up"))
        plan.append(((slot + 0.3 / max(1, options.rebalances)) * 0.85 * span, "instance down"))
    if options.brokers == 1:
        plan.append((rng.uniform(0.4, 0.6) * span, "broker restart"))
    else:
        plan.append((rng.uniform(0.3, 0.45) * span, "broker kill"))
        plan.append((rng.uniform(0.6, 0.75) * span, "broker start"))
    return sorted(plan)


class Injector:
    def __init__(self, run: Run, rng: random.Random) -> None:
        self.run = run
        self.rng = rng
        self.restarting: set[asyncio.Task[None]] = set()
        self.first_victims = ["authority-1", "relay", "statistics"]
        rng.shuffle(self.first_victims)
        self.pending_starts: set[str] = set()
        self.dead_node: int | None = None

    async def run_schedule(self, plan: list[tuple[float, str]]) -> None:
        """Each fault at its moment, whatever the others are doing (a kill may come while
        the broker is down); returns when every fault and every restart is done."""
        t0 = time.monotonic()
        acting: list[asyncio.Task[None]] = []
        for at, what in plan:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            acting.append(asyncio.create_task(self.act(what)))
        await asyncio.gather(*acting)
        while self.restarting:
            await asyncio.gather(*self.restarting)

    async def act(self, what: str) -> None:
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            "kill": self.kill,
            "instance up": self.instance_up,
            "instance down": self.instance_down,
            "broker restart": self.broker_restart,
            "broker kill": self.broker_kill,
            "broker start": self.broker_start,
        }
        await actions[what]()

    def _victim(self) -> ServiceProcess:
        """The first kills hit the authority, the relay and the statistics (each once, in
        a random order); then any part, the authorities most often."""
        processes = self.run.processes
        while self.first_victims:
            name = self.first_victims.pop(0)
            if processes[name].alive():
                return processes[name]
        alive = [name for name in processes if processes[name].alive()]
        weights = [KILL_WEIGHTS.get(name, 1) for name in alive]
        return processes[self.rng.choices(alive, weights)[0]]

    async def kill(self) -> None:
        victim = self._victim()
        pid = victim.kill()
        if pid is None:
            return
        self.run.faults.kills += 1
        delay = self.rng.uniform(0.3, 3.0)
        self.pending_starts.add(victim.name)
        self.run.faults.note(self.run.elapsed(), "SIGKILL", process=victim.name, pid=pid)
        self.run.say(f"SIGKILL {victim.name} (pid {pid}); start again in {delay:.1f}s")
        task = asyncio.create_task(self._start_later(victim, delay))
        self.restarting.add(task)
        task.add_done_callback(self.restarting.discard)

    async def _start_later(self, process: ServiceProcess, delay: float) -> None:
        await asyncio.sleep(delay)
        self.pending_starts.discard(process.name)
        pid = process.start()
        self.run.faults.restarts += 1
        self.run.faults.note(self.run.elapsed(), "start", process=process.name, pid=pid)

    async def instance_up(self) -> None:
        extra = self.run.processes["authority-3"]
        if extra.alive():
            return
        pid = extra.start()
        self.run.faults.rebalances += 1
        self.run.faults.note(self.run.elapsed(), "instance up", process=extra.name, pid=pid)
        self.run.say(f"rebalance: {extra.name} joins (pid {pid})")

    async def instance_down(self) -> None:
        """The third authority leaves the group (SIGTERM). If it is down just now (killed,
        or unable to start while the broker is), it leaves once it is back up."""
        extra = self.run.processes["authority-3"]
        deadline = time.monotonic() + 120.0
        while not extra.alive() and time.monotonic() < deadline:
            if not extra.wanted and extra.name not in self.pending_starts:
                return  # it is not coming back
            await asyncio.sleep(0.5)
        await asyncio.to_thread(extra.stop)
        self.run.faults.rebalances += 1
        self.run.faults.note(self.run.elapsed(), "instance down", process=extra.name)
        self.run.say(f"rebalance: {extra.name} leaves (SIGTERM)")

    async def broker_restart(self) -> None:
        """The single broker SIGKILLed (no clean shutdown) and started on its storage."""
        pid = await asyncio.to_thread(kafka_local.kill_node, self.run.settings, 1, 1)
        self.run.faults.note(self.run.elapsed(), "broker SIGKILL", pid=pid)
        self.run.say(f"broker SIGKILL (pid {pid})")
        await asyncio.sleep(self.rng.uniform(2.0, 5.0))
        info = await kafka_local.start(self.run.settings, 1)
        self.run.faults.broker_restarts += 1
        self.run.faults.note(self.run.elapsed(), "broker start", pid=info.pid)
        self.run.say(f"broker started again (pid {info.pid}, {info.start_seconds:.1f}s)")

    async def broker_kill(self) -> None:
        """One node of the cluster SIGKILLed mid-stream; the others carry on."""
        node = self.rng.randint(1, self.run.options.brokers)
        pid = await asyncio.to_thread(
            kafka_local.kill_node, self.run.settings, self.run.options.brokers, node
        )
        self.dead_node = node
        self.run.faults.broker_kills += 1
        self.run.faults.note(self.run.elapsed(), "broker SIGKILL", node=node, pid=pid)
        self.run.say(f"broker node {node} SIGKILL (pid {pid})")

    async def broker_start(self) -> None:
        info = await kafka_local.start(self.run.settings, self.run.options.brokers)
        self.run.faults.broker_restarts += 1
        self.run.faults.note(self.run.elapsed(), "broker start", node=self.dead_node)
        self.run.say(f"broker node {self.dead_node} started again ({info.start_seconds:.1f}s)")


async def watchdog(run: Run, stop: asyncio.Event) -> None:
    """A process that died without being killed is reported and started again, after a
    pause that doubles while it keeps dying (it cannot start while the broker is down)."""
    pause: dict[str, float] = {}
    due: dict[str, float] = {}
    while not stop.is_set():
        now = time.monotonic()
        for process in run.processes.values():
            name = process.name
            if not process.wanted:
                due.pop(name, None)
                continue
            if process.alive():
                if now - process.started_at > 30.0:
                    pause.pop(name, None)  # it stayed up: the next exit starts afresh
                continue
            if name not in due:
                code = process.proc.returncode if process.proc is not None else None
                run.faults.unexpected_exits += 1
                run.faults.note(
                    run.elapsed(),
                    "unexpected exit",
                    process=name,
                    code=code,
                    tail=process.tail(8),
                )
                pause[name] = min(8.0, pause.get(name, 0.5) * 2)
                due[name] = now + pause[name]
                run.say(f"{name} exited by itself (code {code}); again in {pause[name]:.0f}s")
            elif now >= due[name]:
                del due[name]
                process.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


# --------------------------------------------------------------------------- the run


async def wait_for_decisions(run: Run, topic: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        ends = await end_offsets(run.bootstrap, [topic])
        if sum(ends.values()) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} has {sum(ends.values())} of {count} records")
        await asyncio.sleep(1.0)


async def settle(run: Run, topics: Topics) -> bool:
    """Both groups caught up and every output unchanged for a few polls."""
    deadline = time.monotonic() + run.options.settle_timeout_s
    outputs = [topics.decisions, topics.usage_monthly, topics.occupancy, topics.dead_letters]
    previous: dict[TopicPartition, int] | None = None
    stable = 0
    last_report = 0.0
    while time.monotonic() < deadline:
        try:
            authority = await group_lag(
                run.bootstrap, run.settings.authority_group, list(topics.inputs)
            )
            statistics = await group_lag(
                run.bootstrap, run.settings.statistics_group, [topics.decisions]
            )
            ends = await end_offsets(run.bootstrap, outputs)
        except Exception as error:  # a broker still electing leaders: ask again
            log.debug("settle poll failed: %r", error)
            await asyncio.sleep(1.0)
            continue
        caught_up = authority == 0 and statistics == 0
        stable = stable + 1 if caught_up and ends == previous else 0
        previous = ends
        if stable >= STABLE_POLLS:
            run.say("settled: both groups caught up, outputs unchanged")
            return True
        if time.monotonic() - last_report >= 10.0:
            run.say(f"settling: authority lag {authority:,}, statistics lag {statistics:,}")
            last_report = time.monotonic()
        await asyncio.sleep(1.0)
    run.say("NOT settled within the time limit")
    return False


async def chaos_run(options: Options) -> int:
    started = time.monotonic()
    run_dir = options.run_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{options.brokers}b-"))
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    database_url = options.database_url or f"sqlite+aiosqlite:///{run_dir / 'spaces.db'}"
    broker = Settings(
        home=run_dir / "home",
        kafka_port=options.port,
        kafka_controller_port=options.controller_port,
        partitions=PARTITIONS,
        database_url=database_url,
    )
    bootstrap = kafka_local.cluster_bootstrap(broker, options.brokers)
    title = (
        f"chaos run: {options.brokers} broker{'s' if options.brokers > 1 else ''}, "
        f"{options.inputs:,} inputs over {options.rooms:,} rooms, {options.kills} kills, "
        f"seed {options.seed} ({run_dir})"
    )
    print(title, flush=True)
    info = await kafka_local.start(broker, options.brokers)
    print(f"kafka at {info.bootstrap} ({info.start_seconds:.1f}s)", flush=True)
    clock_secret = secrets.token_hex(16)  # the traffic signs its ticks as the scheduler does
    env = service_env(run_dir, bootstrap, database_url, clock_secret)
    service = Settings(
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        partitions=PARTITIONS,
        clock_secret=clock_secret,
    )
    processes = {
        name: ServiceProcess(name, parts, env, run_dir / "logs" / f"{name}.log")
        for name, parts in [
            ("authority-1", "authority"),
            ("authority-2", "authority"),
            ("relay", "relay"),
            ("statistics", "statistics"),
            ("clock", "clock"),
            ("authority-3", "authority"),
        ]
    }
    run = Run(options, broker, bootstrap, processes)
    stop_watchdog = asyncio.Event()
    settled = False
    try:
        from infra.db import Database

        db = Database(service)
        await db.migrate()  # once, before the processes (each migrates again: a no-op)
        await db.dispose()
        for name in ("authority-1", "authority-2", "relay", "statistics", "clock"):
            processes[name].start()
        guard = asyncio.create_task(watchdog(run, stop_watchdog))

        rng = random.Random(options.seed)
        plans = plan_rooms(options.rooms, options.seed)
        topics = service.topics
        producer = make_producer(service, request_timeout_ms=PRODUCER_TIMEOUT_MS)
        await producer.start()
        named = InputTopics(topics.capacity, topics.bookings, topics.checkins)
        feeder = Feeder(run, producer, named)
        try:
            for item in configurations(plans, datetime.now(UTC)):
                await feeder.send(item)
            await feeder.drain()
            await wait_for_decisions(run, topics.decisions, len(plans), timeout_s=300.0)
            run.say(f"{len(plans):,} rooms configured; traffic and faults begin")
            run.started = time.monotonic()
            traffic = Traffic(
                plans,
                options.seed,
                datetime.now(UTC),
                sign=lambda key, value: tick_signature.headers_for(service, key, value),
            )
            injector = Injector(run, random.Random(options.seed + 1))
            faults = asyncio.create_task(injector.run_schedule(fault_schedule(options, rng)))
            await feed(run, feeder, traffic, rng)
            await faults
        finally:
            await producer.stop()
        processes["clock"].stop()  # no more ticks: the inputs are final
        settled = await settle(run, topics)
        stop_watchdog.set()
        await guard
        for process in processes.values():
            await asyncio.to_thread(process.stop)
        run.say("service stopped; reading every topic")
        inputs: list[Landed] = []
        for topic in topics.inputs:
            inputs += await read_topic(bootstrap, topic)
        outputs = Outputs(
            decisions=await read_topic(bootstrap, topics.decisions),
            usage=await read_topic(bootstrap, topics.usage_monthly),
            occupancy=await read_topic(bootstrap, topics.occupancy),
            dead_letters=await read_topic(bootstrap, topics.dead_letters),
        )
        run.say(f"read {len(inputs):,} input records, {len(outputs.decisions):,} decisions")
        findings = await asyncio.to_thread(check, inputs, outputs, named)
        text, code = summary(title, findings, run.faults, settled, time.monotonic() - started)
        print(text, flush=True)
        write_report(options.report or run_dir / "report.json", options, findings, run, code)
        return code
    finally:
        stop_watchdog.set()
        for process in processes.values():
            await asyncio.to_thread(process.stop, 10.0)
        print(kafka_local.stop(broker), flush=True)
        if options.keep or not settled:
            print(f"run directory kept: {run_dir}", flush=True)
        elif options.run_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def write_report(path: Path, options: Options, findings: Findings, run: Run, code: int) -> None:
    report = {
        "exit_code": code,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "counts": dict(findings.counts()),
        "faults": asdict(run.faults),
        "problems": findings.problems(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


def parse(argv: list[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m chaos", description="Run the service under faults and check it."
    )
    parser.add_argument("--inputs", type=int, default=defaults.inputs)
    parser.add_argument("--rooms", type=int, default=defaults.rooms)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--brokers", type=int, default=defaults.brokers, choices=(1, 3))
    parser.add_argument("--rate", type=float, default=defaults.rate, help="inputs per second")
    parser.add_argument("--rebalances", type=int, default=defaults.rebalances)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--controller-port", type=int, default=defaults.controller_port)
    parser.add_argument("--run-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the run dir")
    parser.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout_s)
    parser.add_argument("--report", type=Path, default=None, help="default: <run dir>/report.json")
    args = parser.parse_args(argv)
    return Options(
        inputs=args.inputs,
        rooms=args.rooms,
        kills=args.kills,
        brokers=args.brokers,
        rate=args.rate,
        rebalances=args.rebalances,
        seed=args.seed,
        port=args.port,
        controller_port=args.controller_port,
        run_dir=args.run_dir,
        keep=args.keep,
        database_url=args.database_url,
        settle_timeout_s=args.settle_timeout,
        report=args.report,
    )


def main(argv: list[str] | None = None) -> int:
    # The run is self-contained (its own broker, topics, groups and database): settings
    # from the environment would point it, or the processes it starts, elsewhere.
    for name in [name for name in os.environ if name.startswith("SPACES_")]:
        del os.environ[name]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a broker down is the point
    return asyncio.run(chaos_run(parse(argv)))
