"""Producers for kiosks and booking front ends: publish an input, await its decision.

A request is published with ``acks=all`` by the idempotent producer and keeps
its ``event_id`` across retries, so however often it arrives it is decided
once. The answer is read from ``decisions`` and matched by ``caused_by``;
``broker.request()`` (request/reply) is not used because it does not work
against a real broker and the contract has no reply topic. An input the room
authority cannot decide (an unreadable one, or an event_id reused) gets no decision
but a dead letter, so ``dead-letters`` is read too and such a request fails at
once with ``Refused`` instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from infra import tick_signature
from infra.kafka import encode, make_producer, partition_for
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER, AnyDecision, Decision
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomCapacityChanged,
    RoomConfigured,
    SessionScheduled,
)
from schemas.outputs import DeadLetter

log = logging.getLogger(__name__)

_TOPIC_OF: dict[type[Any], str] = {
    RoomConfigured: "capacity",
    RoomCapacityChanged: "capacity",
    SessionScheduled: "capacity",
    ClockTick: "capacity",
    BookingRequested: "bookings",
    BookingCancelRequested: "bookings",
    EnrollmentRequested: "bookings",
    EnrollmentCancelRequested: "bookings",
    Checkin: "checkins",
    Checkout: "checkins",
}


class NoDecision(TimeoutError):
    """No decision arrived in time (is ``spaces run`` running?)."""

    def __init__(self, event: AnyInput, attempts: int, wait_s: float) -> None:
        super().__init__(
            f"no decision for {event.type} {event.event_id} in {event.room_id!r} after "
            f"{attempts} attempts of {wait_s:g}s: is `spaces run` running?"
        )
        self.event = event


class Refused(RuntimeError):
    """The room authority dead-lettered the input: no decision will ever come for it."""

    def __init__(self, event: AnyInput, reason: str) -> None:
        super().__init__(f"{event.type} for {event.room_id!r} was not decided: {reason}")
        self.event = event
        self.reason = reason


class TopicMissing(RuntimeError):
    """A topic of the contract does not exist on the cluster (yet)."""


def topic_for(settings: Settings, event: AnyInput) -> str:
    return str(getattr(settings.topics, _TOPIC_OF[type(event)]))


def record_timestamp_ms(event: AnyInput) -> int:
    """The record's timestamp: when the input happened, never later than now.

    The room authority merges a room's three input topics by record timestamp, so
    event time keeps cause before effect even when many inputs are sent at once;
    capping at now keeps the broker from refusing a time in the future.
    """
    return int(min(event.occurred_at.timestamp(), time.time()) * 1000)


async def publish_input(
    producer: AIOKafkaProducer, settings: Settings, event: AnyInput
) -> asyncio.Future[Any]:
    """Queue ``event`` on its topic, keyed by room; await the result to know it is stored.

    A ``clock.tick`` is signed with the service's clock secret (``infra.tick_signature``):
    the scheduler, the demo and the bench hold it; a kiosk does not.
    """
    key = event.room_id.encode()
    value = encode(event.model_dump(mode="json"))
    headers = (
        tick_signature.headers_for(settings, key, value) if event.type == "clock.tick" else None
    )
    future: asyncio.Future[Any] = await producer.send(
        topic_for(settings, event),
        key=key,
        value=value,
        timestamp_ms=record_timestamp_ms(event),
        headers=headers,
    )
    return future


async def publish_all(settings: Settings, events: Iterable[AnyInput]) -> None:
    """Publish inputs without waiting for decisions (admin tools, traffic, tests)."""
    producer = make_producer(settings)
    try:
        await producer.start()
        futures = [await publish_input(producer, settings, event) for event in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class DecisionClient:
    """Publishes inputs and resolves each one with the decisions it caused."""

    def __init__(self, settings: Settings, rooms: Iterable[str] | None = None) -> None:
        self.settings = settings
        self._rooms = set(rooms) if rooms is not None else None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[UUID, asyncio.Future[list[Decision]]] = {}
        self._collected: dict[UUID, list[Decision]] = {}
        self._mine: dict[UUID, AnyInput] = {}

    async def __aenter__(self) -> DecisionClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect; on any failure close what was opened (no "Unclosed AIOKafkaProducer")."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._producer = make_producer(self.settings)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await self._consumer.start()
        topics = self.settings.topics
        assignment = await self._partitions_to_read(topics.decisions, required=True)
        assignment += await self._partitions_to_read(topics.dead_letters, required=False)
        self._consumer.assign(assignment)
        # Decisions made from now on are ours to read; older ones are not needed.
        await self._consumer.seek_to_end(*assignment)
        for tp in assignment:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def _partitions_to_read(self, topic: str, *, required: bool) -> list[TopicPartition]:
        """The partitions of ``topic`` that hold our rooms (every partition without rooms)."""
        assert self._consumer is not None
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        if not partitions:
            if required:
                raise TopicMissing(
                    f"topic {topic!r} does not exist at {self.settings.bootstrap}: "
                    "run `spaces infra up` first"
                )
            return []
        count = len(partitions)
        wanted = (
            sorted(partitions)
            if self._rooms is None
            else sorted({partition_for(room, count) for room in self._rooms})
        )
        return [TopicPartition(topic, p) for p in wanted]

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self.receive(record.topic, record.value)

    def receive(self, topic: str, value: bytes | None) -> None:
        """One record read from ``decisions`` or ``dead-letters``: resolve whoever waits for it."""
        if value is None:
            return
        if topic == self.settings.topics.dead_letters:
            self._refuse(value)
            return
        try:
            decision = DECISION_ADAPTER.validate_json(value)
        except ValidationError:
            return
        self._deliver(decision)

    def _deliver(self, decision: AnyDecision) -> None:
        cause = decision.caused_by
        if cause is None or cause not in self._mine:
            return
        self._collected.setdefault(cause, []).append(decision)
        future = self._waiting.get(cause)
        if future is not None and not future.done():
            future.set_result(self._collected[cause])

    def _refuse(self, value: bytes) -> None:
        try:
            letter = DeadLetter.model_validate_json(value)
            original = json.loads(base64.b64decode(letter.original))
            event_id = UUID(str(original["event_id"]))
        except (ValidationError, ValueError, TypeError, KeyError):
            return
        event = self._mine.get(event_id)
        future = self._waiting.get(event_id)
        if event is not None and future is not None and not future.done():
            future.set_exception(Refused(event, letter.reason))

    def expect(self, event: AnyInput) -> asyncio.Future[list[Decision]]:
        """Start listening for the decisions ``event`` causes (before it is sent)."""
        future: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        self._waiting[event.event_id] = future
        self._mine[event.event_id] = event
        return future

    async def send(self, event: AnyInput) -> None:
        assert self._producer is not None, "start() the client first"
        await (await publish_input(self._producer, self.settings, event))

    async def request(
        self, event: AnyInput, timeout: float | None = None, attempts: int = 2
    ) -> Decision:
        """Publish ``event`` and return its primary decision.

        Without an answer in ``timeout`` seconds the same event (same ``event_id``) is
        sent again, up to ``attempts`` times in all: the room authority decides it once
        however often it arrives, and we keep listening for the first answer. Raises
        ``Refused`` as soon as the input shows up on ``dead-letters`` instead.
        """
        wait_s = timeout or self.settings.kiosk_timeout_s
        future = self.expect(event)
        try:
            for attempt in range(1, attempts + 1):
                await self.send(event)
                try:
                    decisions = await asyncio.wait_for(asyncio.shield(future), wait_s)
                    return decisions[0]
                except TimeoutError:
                    log.warning(
                        "no decision yet for %s in %s after %.0fs (attempt %d of %d)",
                        event.type,
                        event.room_id,
                        wait_s,
                        attempt,
                        attempts,
                        extra={
                            "event_id": str(event.event_id),
                            "room": event.room_id,
                            "attempt": attempt,
                        },
                    )
            raise NoDecision(event, attempts, wait_s)
        finally:
            self._waiting.pop(event.event_id, None)

    def consequences(self, event_id: UUID) -> list[Decision]:
        """Every decision seen so far that ``event_id`` caused (primary first)."""
        return list(self._collected.get(event_id, []))

    async def wait_for_consequences(
        self, event_id: UUID, count: int, timeout: float
    ) -> list[Decision]:
        """Wait until at least ``count`` decisions caused by ``event_id`` were read."""
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while len(self._collected.get(event_id, [])) < count and datetime.now(UTC) < deadline:
            await asyncio.sleep(0.05)
        return self.consequences(event_id)
