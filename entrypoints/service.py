"""``spaces run``: the room authority, outbox relay, clock and statistics in one process.

Each part can also run alone (``--only``), so they scale and fail separately.
SIGTERM/SIGINT finishes the batch in flight, commits, leaves the group and lets
the relay drain what was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consumers.authority import RoomAuthority
from consumers.batch import EffectivelyOnceLoop, LoopOptions
from consumers.clock import Clock
from consumers.relay import OutboxRelay
from infra.db import Database, utcnow
from infra.observability import (
    CONSUMER_LAG,
    METRICS,
    Health,
    MetricsServer,
    set_outbox_backlog,
)
from infra.settings import Settings

log = logging.getLogger(__name__)

PARTS = ("authority", "relay", "clock", "statistics")


@dataclass
class Services:
    settings: Settings
    parts: tuple[str, ...] = PARTS
    clock_now: Callable[[], datetime] = utcnow
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_port: int | None = None
    """The port ``/health`` and ``/metrics`` are served on, once they are (else ``None``)."""

    async def run(self) -> None:
        db = Database(self.settings)
        await db.migrate()
        try:
            await self.check_retention(db)
        except BaseException:
            await db.dispose()
            raise
        tasks: list[asyncio.Task[None]] = []
        readies: list[asyncio.Event] = []
        clock: Clock | None = None
        outbox_written = asyncio.Event()
        loops: list[EffectivelyOnceLoop] = []

        def spawn(name: str, job: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(job(ready), name=name))

        def part_states() -> dict[str, str]:
            states = {
                task.get_name(): _state(task, ready)
                for task, ready in zip(tasks, readies, strict=True)
            }
            if clock is not None:
                states["clock"] = "stopped" if self.stop.is_set() else "running"
            return states

        health = Health(self.settings.health_stale_s, part_states)

        if "authority" in self.parts:
            loop = EffectivelyOnceLoop(
                self.settings,
                db,
                RoomAuthority(self.settings, clock=self.clock_now),
                LoopOptions(
                    group_id=self.settings.authority_group,
                    topics=self.settings.topics.inputs,
                    max_records=self.settings.batch_max_records,
                    timeout_ms=self.settings.batch_timeout_ms,
                ),
                outbox_written,
            )
            spawn("authority", lambda ready: loop.run(self.stop, ready))
            loops.append(loop)
        if "statistics" in self.parts:
            from consumers.statistics import UsageStatistics

            stats = UsageStatistics(self.settings, clock=self.clock_now)
            stats_loop = EffectivelyOnceLoop(
                self.settings,
                db,
                stats,
                LoopOptions(
                    group_id=self.settings.statistics_group,
                    topics=(self.settings.topics.decisions,),
                    max_records=self.settings.statistics_batch_max_records,
                    timeout_ms=self.settings.batch_timeout_ms,
                    linger_s=self.settings.statistics_linger_ms / 1000,
                ),
                outbox_written,
            )
            spawn("statistics", lambda ready: stats_loop.run(self.stop, ready))
            loops.append(stats_loop)
        if "relay" in self.parts:
            relay = OutboxRelay(self.settings, db, outbox_written)
            spawn("relay", lambda ready: relay.run(self.stop, ready))
        if "clock" in self.parts:
            clock = Clock(self.settings, db)
            await clock.start()
            # The month close needs only the database: it runs wherever the clock runs,
            # also when the statistics consumer is a process of its own.
            from consumers.statistics import schedule_month_close

            schedule_month_close(clock.scheduler, self.settings, db, self.clock_now)
        server = await self._serve_health(health)
        reporter = asyncio.create_task(report_metrics(self.stop))
        sampler = asyncio.create_task(
            sample(self.settings, loops, db if "relay" in self.parts else None, health, self.stop)
        )
        try:
            waiter: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*(r.wait() for r in readies))
            )
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if all(r.is_set() for r in readies):
                self.ready.set()
                log.info("services ready", extra={"parts": list(self.parts)})
            # Run until stopped, or until a part fails (then stop the others and re-raise).
            stopper = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            self.stop.set()
            if clock is not None:
                await clock.stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("part failed", extra={"part": task.get_name()}, exc_info=result)
                    raise result
        finally:
            reporter.cancel()
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler  # done with the database before it is disposed
            if server is not None:
                await server.stop()
            for task in tasks:
                task.cancel()
            if clock is not None:
                await clock.stop()
            await db.dispose()

    async def _serve_health(self, health: Health) -> MetricsServer | None:
        """``/health`` and ``/metrics`` on ``metrics_port`` (0: not served). A port in use
        is logged, not fatal: the kiosks' decisions matter more than their metrics."""
        port = self.settings.metrics_port
        if not port:
            return None
        server = MetricsServer(self.settings.metrics_host, port, health)
        try:
            self.metrics_port = await server.start()
        except OSError as error:
            log.error(
                "cannot serve /health and /metrics",
                extra={"host": self.settings.metrics_host, "port": port, "error": str(error)},
            )
            return None
        log.info("serving /health and /metrics", extra={"port": self.metrics_port})
        return server

    async def check_retention(self, db: Database) -> None:
        """Refuse a start that could decide or count a record twice; then, if Kafka forgot
        the statistics' offsets, put them back from the database (``infra.retention``)."""
        from infra.retention import check_retention

        await check_retention(self.settings, db, self.parts)
        if "statistics" in self.parts:
            from consumers.statistics import resume_positions

            await resume_positions(self.settings, db)


def _state(task: asyncio.Task[None], ready: asyncio.Event) -> str:
    if task.done():
        failed = not task.cancelled() and task.exception() is not None
        return "failed" if failed else "stopped"
    return "running" if ready.is_set() else "starting"


async def sample(
    settings: Settings,
    loops: list[EffectivelyOnceLoop],
    db: Database | None,
    health: Health,
    stop: asyncio.Event,
) -> None:
    """Every ``metrics_interval_s``: ask the broker (a metadata request per consumer),
    the lag of each assigned partition, and the outbox backlog (where the relay runs).

    Off the hot loop: the consume loop only exposes its consumer."""
    for loop in loops:
        health.expect(loop.handler.name)
    shown: set[tuple[str, str, str]] = set()
    while not stop.is_set():
        seen: set[tuple[str, str, str]] = set()
        for loop in loops:
            seen |= await _sample_consumer(settings, loop, health)
        for labels in shown - seen:  # partitions no longer ours
            CONSUMER_LAG.remove(*labels)
        shown = seen
        if db is not None:
            try:
                set_outbox_backlog(await db.outbox_backlog())
            except Exception as error:  # a database hiccup: the next sample tries again
                log.warning("outbox backlog not sampled", extra={"error": str(error)[:200]})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.metrics_interval_s)


async def _sample_consumer(
    settings: Settings, loop: EffectivelyOnceLoop, health: Health
) -> set[tuple[str, str, str]]:
    consumer = loop.consumer
    if consumer is None:
        return set()
    try:
        await asyncio.wait_for(consumer.topics(), timeout=min(5.0, settings.health_stale_s))
    except Exception as error:  # unreachable: /health turns 503 after health_stale_s
        log.debug("broker did not answer", extra={"error": str(error)[:200]})
    else:
        health.broker_answered(loop.handler.name)
    labels: set[tuple[str, str, str]] = set()
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:  # nothing fetched yet
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), timeout=1.0)
        except Exception:  # revoked meanwhile, or being reset: the next sample
            continue
        key = (loop.options.group_id, tp.topic, str(tp.partition))
        CONSUMER_LAG.labels(*key).set(max(0, highwater - position))
        labels.add(key)
    return labels


async def report_metrics(stop: asyncio.Event, every_s: float = 30.0) -> None:
    """The counters an operator watches, as one structured log line every 30 s."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        log.info("metrics", extra={"metrics": METRICS.snapshot()})


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(settings: Settings, parts: tuple[str, ...]) -> None:
    tune_garbage_collector(settings)
    services = Services(settings, parts)
    install_signal_handlers(services.stop)
    await services.run()


def tune_garbage_collector(settings: Settings) -> None:
    """Collect cycles less often (``Settings.gc_thresholds``), and never walk the objects
    made while starting (modules, mappings, settings): they live as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.gc_thresholds)
