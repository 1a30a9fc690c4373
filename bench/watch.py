"""Reads what a run produced (``decisions`` and ``usage-monthly``) and says when it is done.

The watcher assigns itself every partition of the run's decisions topic (and of its
``usage-monthly`` topic when the statistics are measured) from the beginning, without
a consumer group, and keeps:

- the inputs still waiting for their **primary decision**: the first decision whose
  ``caused_by`` is the input's ``event_id``;
- what the decisions imply for the monthly usage: admitted persons (``visits``),
  denied check-ins, confirmed, rejected and cancelled bookings (each decision counted
  once, by its own ``event_id``; a decision read twice is counted as a duplicate);
- the latest ``usage-monthly`` value per key, and the sums of those fields over the
  room-scope aggregates.

A run is done when every expected input has its primary decision and (when usage is
watched) the sums of the latest room aggregates equal what the decisions imply. Its
end is the Kafka timestamp (the relay's send time) of the last record needed: the
newest primary decision or usage aggregate read by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from entrypoints.progress import progress_bar

USAGE_FIELDS = (
    "visits",
    "checkins_denied",
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
)
_COUNTED = {
    "checkin.denied": "checkins_denied",
    "booking.confirmed": "bookings_confirmed",
    "booking.rejected": "bookings_rejected",
    "booking.cancelled": "bookings_cancelled",
}
POLL_S = 0.05

Status = Literal["done", "stalled", "crashed", "timeout"]


@dataclass
class Outcome:
    status: Status
    detail: str
    waited_s: float


@dataclass
class Threshold:
    decided: int
    action: Callable[[int], None]
    fired: bool = False


@dataclass
class Watcher:
    bootstrap: str
    decisions_topic: str
    usage_topic: str | None = None
    on_primary: Callable[[str, float], None] | None = None
    """Called with (input event_id, ``time.perf_counter()`` of the read) per primary decision."""

    pending: set[str] = field(default_factory=set)
    expected: int = 0
    decided: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    """Primary decisions by type."""
    implied: Counter[str] = field(default_factory=Counter)
    """What every decision read implies for the usage fields."""
    decision_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    records: int = 0
    usage_latest: dict[bytes, dict[str, int]] = field(default_factory=dict)
    usage_sums: Counter[str] = field(default_factory=Counter)
    usage_records: int = 0
    last_primary_ms: int = 0
    last_usage_ms: int = 0
    first_decided_at: float | None = None
    progress_at: float = field(default_factory=time.perf_counter)
    thresholds: list[Threshold] = field(default_factory=list)
    _consumer: Any = None
    _task: asyncio.Task[None] | None = None
    _error: BaseException | None = None

    # ----------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        topics = [self.decisions_topic] + ([self.usage_topic] if self.usage_topic else [])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            isolation_level="read_committed",  # the relay writes in transactions
        )
        await consumer.start()
        partitions: list[TopicPartition] = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer.stop()
                raise RuntimeError(f"topic {topic!r} does not exist")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(), name=f"watch-{self.decisions_topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    def expect(self, ids: Iterable[str]) -> None:
        before = len(self.pending)
        self.pending.update(ids)
        self.expected += len(self.pending) - before

    def at(self, decided: int, action: Callable[[int], None]) -> None:
        """Call ``action(decided)`` once, when ``decided`` primary decisions were read."""
        self.thresholds.append(Threshold(decided, action))

    # ----------------------------------------------------------------------- reading

    async def _read(self) -> None:
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=10000)
                now = time.perf_counter()
                for tp, records in batches.items():
                    if tp.topic == self.decisions_topic:
                        for record in records:
                            self._decision(record, now)
                    else:
                        for record in records:
                            self._usage(record, now)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._error = error
            raise

    def _decision(self, record: Any, now: float) -> None:
        self.records += 1
        try:
            decision = json.loads(record.value)
        except (TypeError, ValueError):
            return
        if not isinstance(decision, dict):
            return
        decision_id = str(decision.get("event_id"))
        if decision_id in self.decision_ids:
            self.duplicates += 1
            return
        self.decision_ids.add(decision_id)
        kind = str(decision.get("type"))
        if kind == "checkin.admitted":
            self.implied["visits"] += int(decision.get("party_size") or 0)
        elif kind in _COUNTED:
            self.implied[_COUNTED[kind]] += 1
        cause = decision.get("caused_by")
        if cause is None or cause not in self.pending:
            return
        self.pending.discard(cause)
        self.decided += 1
        self.kinds[kind] += 1
        self.progress_at = now
        self.last_primary_ms = max(self.last_primary_ms, int(record.timestamp))
        with contextlib.suppress(KeyError, TypeError, ValueError):
            decided_at = datetime.fromisoformat(str(decision["decided_at"])).timestamp()
            if self.first_decided_at is None or decided_at < self.first_decided_at:
                self.first_decided_at = decided_at
        if self.on_primary is not None:
            self.on_primary(cause, now)
        for threshold in self.thresholds:
            if not threshold.fired and self.decided >= threshold.decided:
                threshold.fired = True
                threshold.action(self.decided)

    def _usage(self, record: Any, now: float) -> None:
        self.usage_records += 1
        self.last_usage_ms = max(self.last_usage_ms, int(record.timestamp))
        try:
            value = json.loads(record.value) if record.value else None
        except (TypeError, ValueError):
            return
        if value is not None and (not isinstance(value, dict) or value.get("scope") != "room"):
            return
        old = self.usage_latest.pop(record.key, None)
        if old is not None:
            for name, amount in old.items():
                self.usage_sums[name] -= amount
        if value is not None:
            new = {name: int(value.get(name) or 0) for name in USAGE_FIELDS}
            self.usage_latest[record.key] = new
            for name, amount in new.items():
                self.usage_sums[name] += amount
        self.progress_at = now

    # ----------------------------------------------------------------------- waiting

    def usage_caught_up(self) -> bool:
        return all(self.usage_sums[name] == self.implied[name] for name in USAGE_FIELDS)

    def done(self) -> bool:
        if self.pending:
            return False
        return self.usage_topic is None or self.usage_caught_up()

    def end_ts(self) -> float:
        """Unix time of the last record the run needed (see the module's docstring)."""
        last = self.last_primary_ms
        if self.usage_topic is not None:
            last = max(last, self.last_usage_ms)
        return last / 1000

    def usage_gap(self) -> dict[str, tuple[int, int]]:
        """(aggregated, implied) of each usage field that does not match yet."""
        return {
            name: (self.usage_sums[name], self.implied[name])
            for name in USAGE_FIELDS
            if self.usage_sums[name] != self.implied[name]
        }

    async def wait(
        self,
        done: Callable[[], bool] | None = None,
        alive: Callable[[], str | None] | None = None,
        stall_s: float = 60.0,
        max_s: float = 600.0,
    ) -> Outcome:
        """Until ``done()`` (default: :meth:`done`); or the child died, nothing moved for
        ``stall_s``, or ``max_s`` passed. Never waits longer than ``max_s``."""
        finished = done or self.done
        started = time.perf_counter()
        self.progress_at = max(self.progress_at, started)
        with progress_bar(f"{self.decisions_topic}: decided", total=self.expected) as advance:
            return await self._wait(finished, alive, stall_s, max_s, started, advance)

    async def _wait(
        self,
        finished: Callable[[], bool],
        alive: Callable[[], str | None] | None,
        stall_s: float,
        max_s: float,
        started: float,
        advance: Callable[..., None],
    ) -> Outcome:
        while True:
            now = time.perf_counter()
            advance(self.decided)
            if finished():
                return Outcome("done", "", now - started)
            if self._task is not None and self._task.done():
                raise RuntimeError(f"the bench's reader of {self.decisions_topic} failed") from (
                    self._error
                )
            why = alive() if alive is not None else None
            if why is not None:
                await asyncio.sleep(0.5)  # let the last records arrive before judging
                if finished():
                    return Outcome("done", "", time.perf_counter() - started)
                return Outcome("crashed", why, now - started)
            if now - self.progress_at > stall_s:
                return Outcome("stalled", f"no progress for {stall_s:.0f}s", now - started)
            if now - started > max_s:
                return Outcome("timeout", f"not done in {max_s:.0f}s", now - started)
            await asyncio.sleep(POLL_S)

    def progress(self) -> str:
        text = f"{self.decided}/{self.expected} decided"
        if self.usage_topic is not None:
            gap = self.usage_gap()
            text += ", usage caught up" if not gap else f", usage behind on {sorted(gap)}"
        return text
