"""Throughput on pre-produced inputs: the ceiling loop and the whole ``spaces run``.

One run = fresh topics (6 partitions), the rooms' ``room.configured`` and the mixed
inputs produced and acknowledged BEFORE anything consumes them, then the consumer
(the ceiling loop, or ``spaces run`` with all its parts) started as a child process
and the watcher (``bench.watch``) reading its outputs until every input has its
primary decision and, for the service, ``usage-monthly`` has caught up.

Rate = inputs / (end - start):

- start: when the consumer's group gave it its partitions, i.e. the moment it can
  read the first input. For the service, the ``ts`` of its first JSON log line
  ``partitions assigned`` that names an input topic (the room authority; the
  database migration before it is not counted); for the ceiling, the ``assigned``
  line it prints. If that line is missing (another log level, a renamed message),
  the earliest ``decided_at`` of the primary decisions, and ``start_source`` says so.
- end: the Kafka timestamp of the last record needed (``Watcher.end_ts``).

The rate from the earliest ``decided_at`` is reported as well.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import child as children
from bench.common import create_topics, delete_topics, isolated, new_suffix
from bench.context import Context
from bench.traffic import RoomRef, configurations, mixed, produce
from bench.watch import Watcher
from infra import kafka_local
from schemas.inputs import AnyInput


@dataclass
class RunResult:
    label: str
    target: str
    """``ceiling``, ``ceiling-eos`` (the exactly-once ceiling) or ``service``."""
    backend: str | None
    rooms: int
    inputs: int
    """Pre-produced inputs: one ``room.configured`` per room plus the mixed inputs."""
    input_kinds: dict[str, int]
    produce_s: float
    status: str
    """done, stalled, crashed or timeout (then the rate is that of what was decided)."""
    detail: str
    decided: int
    start_source: str
    seconds: float | None
    rate: float | None
    """Inputs per second from ``start`` to ``end`` (see the module's docstring)."""
    seconds_from_first_decision: float | None
    rate_from_first_decision: float | None
    decisions_seconds: float | None
    """From ``start`` to the newest primary decision: the service's run without the
    statistics' tail (the last aggregates after it)."""
    launched_to_start_s: float | None
    decisions: dict[str, int]
    usage: dict[str, Any] | None
    duplicates: int
    rss_mib: list[dict[str, Any]] = field(default_factory=list)
    cpu_s: dict[str, Any] = field(default_factory=dict)
    """CPU seconds from the first decision to the end of the run: ``by_process`` (the
    consumer's processes), ``consumer`` (their sum), ``broker`` (the local broker's;
    None when it is not ours to read) and ``database`` (a local PostgreSQL server's, in a
    PostgreSQL run; else None)."""
    stopped: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scenario_inputs(
    rooms: list[RoomRef], count: int, seed: int, random_ids: bool = False
) -> Iterator[AnyInput]:
    """The rooms' configurations, then ``count`` mixed inputs (built while they are
    produced: fresh ids, ``occurred_at`` just before; the same seed, the same traffic).
    Event ids are version 7 as the contract recommends, or random (``random_ids``)."""
    start = datetime.now(UTC)
    return itertools.chain(
        configurations(rooms, start, random_ids), mixed(rooms, count, seed, start, random_ids)
    )


async def pre_produced(
    ctx: Context,
    label: str,
    target: str,
    rooms: list[RoomRef],
    count: int,
    seed: int,
    backend: str | None = None,
    rss_at: tuple[int, ...] = (),
    random_ids: bool = False,
) -> RunResult:
    """One run of ``target`` (``ceiling`` or ``service`` on ``backend``) on fresh inputs
    (``random_ids``: version 4 event ids instead of the recommended version 7)."""
    suffix = new_suffix()
    pg_name: str | None = None
    database_url: str | None = None
    if target == "service":
        if backend == "postgresql":
            assert ctx.pg is not None
            pg_name, database_url = await ctx.pg.create(label.replace("-", "_"))
        else:
            database_url = ctx.sqlite_url(label, suffix)
    settings = isolated(ctx.base, suffix, database_url)
    topics = settings.topics
    names = list(topics.all())
    child: children.Child | None = None
    watcher = Watcher(
        ctx.base.bootstrap,
        topics.decisions,
        topics.usage_monthly if target == "service" else None,
    )
    try:
        await create_topics(settings)
        produced = await produce(settings, scenario_inputs(rooms, count, seed, random_ids))
        watcher.expect(produced.ids)
        await watcher.start()
        log_path = ctx.log_path(label, suffix)
        child = ctx.consumer(target, settings, suffix, log_path)
        rss: list[dict[str, Any]] = []
        running = child

        def sample(decided: int) -> None:
            per_process = running.rss_by_process() or {}
            rss.append(
                {
                    "decided": decided,
                    "rss_mib": round(sum(per_process.values()), 1) if per_process else None,
                    "by_process": per_process,
                    "at": round(time.time(), 3),
                }
            )

        for point in rss_at:
            if point <= len(produced.ids):
                watcher.at(point, sample)
        # CPU from the first decision on: start-up (imports, migrations) is not per input.
        at_first: dict[str, Any] = {}

        def first_decided(_: int) -> None:
            at_first.update(
                processes=running.cpu_by_process(),
                broker=broker_cpu_seconds(ctx),
                database=database_cpu_seconds(ctx, backend),
            )

        watcher.at(1, first_decided)
        child.start()
        outcome = await watcher.wait(alive=child.dead, stall_s=ctx.stall_s, max_s=ctx.max_run_s)
        cpu = cpu_of_run(
            at_first.get("processes") or {},
            child.cpu_by_process() or {},
            at_first.get("broker"),
            broker_cpu_seconds(ctx),
            at_first.get("database"),
            database_cpu_seconds(ctx, backend),
        )
        if rss_at:
            rss.append(
                {
                    "decided": watcher.decided,
                    "rss_mib": child.rss_mib(),
                    "at": round(time.time(), 3),
                    "final": True,
                }
            )
        stopped = child.stop()
        if target.startswith("ceiling"):
            start = children.ceiling_assigned_at(child)
        else:
            start = children.service_assigned_at(child, topics.capacity)
        source = "partitions assigned"
        if start is None:
            start, source = watcher.first_decided_at, "first decision (no assignment line)"
        end = watcher.end_ts() if watcher.decided else None
        inputs = len(produced.ids)
        done_count = inputs if outcome.status == "done" else watcher.decided
        seconds = end - start if end is not None and start is not None else None
        first = watcher.first_decided_at
        seconds_first = end - first if end is not None and first is not None else None
        usage: dict[str, Any] | None = None
        if watcher.usage_topic is not None:
            usage = {
                "caught_up": watcher.usage_caught_up(),
                "aggregates_read": watcher.usage_records,
                "room_aggregates": len(watcher.usage_latest),
                "sums": {k: watcher.usage_sums[k] for k in sorted(watcher.usage_sums)},
                "implied_by_decisions": {k: watcher.implied[k] for k in sorted(watcher.implied)},
            }
        return RunResult(
            label=label,
            target=target,
            backend=backend,
            rooms=len(rooms),
            inputs=inputs,
            input_kinds=produced.kinds,
            produce_s=round(produced.seconds, 2),
            status=outcome.status,
            detail=outcome.detail or watcher.progress(),
            decided=watcher.decided,
            start_source=source,
            seconds=_round(seconds, 3),
            rate=_rate(done_count, seconds),
            seconds_from_first_decision=_round(seconds_first, 3),
            rate_from_first_decision=_rate(done_count, seconds_first),
            decisions_seconds=_round(
                watcher.last_primary_ms / 1000 - start if watcher.decided and start else None, 3
            ),
            launched_to_start_s=_round(start - child.launched_at if start else None, 2),
            decisions=dict(sorted(watcher.kinds.items())),
            usage=usage,
            duplicates=watcher.duplicates,
            rss_mib=rss,
            cpu_s=cpu,
            stopped=stopped,
            log_tail="" if outcome.status == "done" else child.tail(15),
        )
    finally:
        if child is not None:
            child.stop()
        await watcher.stop()
        await delete_topics(ctx.base.bootstrap, names)
        if pg_name is not None and ctx.pg is not None:
            await ctx.pg.drop(pg_name)


def broker_cpu_seconds(ctx: Context) -> float | None:
    """CPU seconds so far of the local broker the bench runs against, if it is ours."""
    try:
        pid = kafka_local.node_pid(ctx.base)
    except kafka_local.BrokerError:
        return None
    return None if pid is None else children.cpu_seconds(pid)


def database_cpu_seconds(ctx: Context, backend: str | None) -> float | None:
    """CPU seconds so far of the PostgreSQL server of a PostgreSQL run, if it is local."""
    if backend != "postgresql" or ctx.pg is None:
        return None
    return ctx.pg.server_cpu_seconds()


def cpu_of_run(
    before: dict[str, float],
    after: dict[str, float],
    broker_before: float | None,
    broker_after: float | None,
    database_before: float | None = None,
    database_after: float | None = None,
) -> dict[str, Any]:
    """What ``RunResult.cpu_s`` holds: the CPU seconds each process (the broker, the
    PostgreSQL server) used between two samples (a process started between them counts
    from its start)."""
    by_process = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    return {
        "by_process": by_process,
        "consumer": round(sum(by_process.values()), 2) if by_process else None,
        "broker": _spent(broker_before, broker_after),
        "database": _spent(database_before, database_after),
    }


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 2)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _rate(count: int, seconds: float | None) -> float | None:
    if seconds is None or seconds <= 0 or count == 0:
        return None
    return round(count / seconds, 1)
