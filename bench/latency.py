"""Kiosk latency under an open-loop load, against the service and against the ceiling.

The consumer (``spaces run`` with all its parts on a fresh SQLite file, or the ceiling
loop) runs as a child on fresh topics. The bench configures the rooms through Kafka and
waits for every ``room.configured`` decision, sends 2 s of warm-up at 100 inputs/s and
waits for it, then for each offered rate sends kiosk inputs (``bench.traffic.
KioskTraffic``: check-ins, and a check-out whenever a room would overflow) on a fixed
schedule for the window, never waiting for answers (open loop: input i is sent at
``t0 + i / rate``; the sender's lag behind that schedule is reported). The inputs are
encoded before the window; each is sent with the contract's producer (idempotent,
``acks=all``, ``linger_ms=2``).

Latency of an input = the time the bench's reader of ``decisions`` got its primary
decision (matched by ``caused_by``) - the time the bench called ``send`` for it, both
``time.perf_counter()`` in the bench process. An input without a decision within
the drain wait counts as infinitely late. Achieved rate = primary decisions of the
window's inputs read during the window / window length.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.common import (
    create_topics,
    delete_topics,
    isolated,
    new_suffix,
    percentile,
    rounded,
)
from bench.context import Context
from bench.traffic import KioskTraffic, configurations, encoded, layout, send_now
from bench.watch import Watcher
from infra.kafka import make_producer
from infra.settings import Settings

WARMUP_RATE = 100
WARMUP_S = 2.0
CONFIGURE_MAX_S = 300.0
DRAIN_STALL_S = 30.0
DRAIN_MAX_S = 180.0


@dataclass
class Window:
    rate: int
    seconds: float
    ids: list[str]
    t0: float
    t_end: float
    lags: list[float]
    acks: list[asyncio.Future[object]]


async def open_loop(
    producer: AIOKafkaProducer,
    settings: Settings,
    traffic: KioskTraffic,
    rate: int,
    seconds: float,
    watcher: Watcher,
    sent: dict[str, float],
) -> Window:
    count = max(1, round(rate * seconds))
    now = datetime.now(UTC)
    items = [encoded(settings, traffic.next(now)) for _ in range(count)]
    ids = [item.event_id for item in items]
    watcher.expect(ids)
    lags: list[float] = []
    acks: list[asyncio.Future[object]] = []
    t0 = time.perf_counter() + 0.05
    for i, item in enumerate(items):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = time.perf_counter()
        sent[item.event_id] = t
        lags.append(t - due)
        acks.append(await send_now(producer, item))
    return Window(rate, count / rate, ids, t0, t0 + count / rate, lags, acks)


def summarize(
    window: Window, sent: dict[str, float], received: dict[str, float], drain: str
) -> dict[str, Any]:
    samples = [
        (received[i] - sent[i]) * 1000 if i in received else float("inf") for i in window.ids
    ]
    answered = [s for s in samples if s != float("inf")]
    in_window = sum(1 for i in window.ids if window.t0 <= received.get(i, -1.0) <= window.t_end)
    return {
        "offered_per_s": window.rate,
        "seconds": window.seconds,
        "sent": len(window.ids),
        "answered": len(answered),
        "achieved_per_s": round(in_window / window.seconds, 1),
        "p50_ms": rounded(percentile(samples, 50), 1),
        "p90_ms": rounded(percentile(samples, 90), 1),
        "p99_ms": rounded(percentile(samples, 99), 1),
        "max_ms": rounded(max(samples), 1),
        "send_lag_p99_ms": rounded(percentile(window.lags, 99) * 1000, 2),
        "send_lag_max_ms": rounded(max(window.lags) * 1000, 2),
        "drain": drain,
    }


async def kiosk_latency(
    ctx: Context, target: str, rooms_count: int, rates: tuple[int, ...], seconds: float
) -> dict[str, Any]:
    """Configure ``rooms_count`` rooms, warm up, then one window per rate."""
    suffix = new_suffix()
    label = f"latency-{target}"
    database_url = ctx.sqlite_url(label, suffix) if target == "service" else None
    settings = isolated(ctx.base, suffix, database_url)
    topics = settings.topics
    names = list(topics.all())
    sent: dict[str, float] = {}
    received: dict[str, float] = {}

    def got(event_id: str, at: float) -> None:
        received[event_id] = at

    watcher = Watcher(ctx.base.bootstrap, topics.decisions, None, on_primary=got)
    log_path = ctx.log_path(label, suffix)
    child = ctx.consumer(target, settings, suffix, log_path)
    producer = make_producer(settings)
    result: dict[str, Any] = {"target": target, "rooms": rooms_count, "windows": []}
    try:
        await create_topics(settings)
        await watcher.start()
        await producer.start()
        child.start()
        rooms = layout(rooms_count)
        configs = [encoded(settings, event) for event in configurations(rooms, datetime.now(UTC))]
        watcher.expect(item.event_id for item in configs)
        started = time.perf_counter()
        await asyncio.gather(*[await send_now(producer, item) for item in configs])
        outcome = await watcher.wait(alive=child.dead, stall_s=ctx.stall_s, max_s=CONFIGURE_MAX_S)
        result["configure_s"] = round(time.perf_counter() - started, 2)
        if outcome.status != "done":
            result["status"] = outcome.status
            result["detail"] = f"configuring the rooms: {outcome.detail}; {watcher.progress()}"
            result["log_tail"] = child.tail(15)
            return result
        traffic = KioskTraffic(rooms, seed=7)
        warm = await open_loop(producer, settings, traffic, WARMUP_RATE, WARMUP_S, watcher, sent)
        outcome = await watcher.wait(alive=child.dead, stall_s=DRAIN_STALL_S, max_s=DRAIN_MAX_S)
        await asyncio.gather(*warm.acks)
        if outcome.status != "done":
            result["status"] = outcome.status
            result["detail"] = f"warm-up: {outcome.detail}; {watcher.progress()}"
            result["log_tail"] = child.tail(15)
            return result
        status = "done"
        for rate in rates:
            window = await open_loop(producer, settings, traffic, rate, seconds, watcher, sent)
            outcome = await watcher.wait(alive=child.dead, stall_s=DRAIN_STALL_S, max_s=DRAIN_MAX_S)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*window.acks), 30)
            drain = outcome.status if outcome.status == "done" else outcome.detail
            result["windows"].append(summarize(window, sent, received, drain))
            if outcome.status != "done":
                status = outcome.status
                result["log_tail"] = child.tail(15)
                break
        result["status"] = status
        result["detail"] = watcher.progress()
        result["duplicates"] = watcher.duplicates
        return result
    finally:
        result["stopped"] = child.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        await watcher.stop()
        await delete_topics(ctx.base.bootstrap, names)
