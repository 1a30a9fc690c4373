"""``spaces run``: the room authority, outbox relay, clock and statistics in one process.

Each part can also run alone (``--only``), so they scale and fail separately.
SIGTERM/SIGINT finishes the batch in flight, commits, leaves the group and lets
the relay drain what was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from infra.observability import METRICS
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

    async def run(self) -> None:
        db = Database(self.settings)
        await db.migrate()
        tasks: list[asyncio.Task[None]] = []
        readies: list[asyncio.Event] = []
        clock: Clock | None = None
        outbox_written = asyncio.Event()

        def spawn(name: str, job: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(job(ready), name=name))

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
                ),
                outbox_written,
            )
            spawn("statistics", lambda ready: stats_loop.run(self.stop, ready))
        if "relay" in self.parts:
            relay = OutboxRelay(self.settings, db, outbox_written)
            spawn("relay", lambda ready: relay.run(self.stop, ready))
        if "clock" in self.parts:
            clock = Clock(self.settings, db)
            await clock.start()
            # The month close needs only the database: it runs wherever the clock runs,
            # also when the statistics consumer is a process of its own.
            from consumers.statistics import schedule_month_close

            schedule_month_close(clock.scheduler, self.settings, db)
        reporter = asyncio.create_task(report_metrics(self.stop))
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
            for task in tasks:
                task.cancel()
            if clock is not None:
                await clock.stop()
            await db.dispose()


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
    services = Services(settings, parts)
    install_signal_handlers(services.stop)
    await services.run()
