"""The ceiling: the least a consumer of the same inputs can do, as its own process.

A bare aiokafka loop with the service's Kafka guarantees and none of its work: it
reads the three input topics in a consumer group (range assignor, manual commits,
``read_committed``), keeps the occupancy of each room in a dict, writes ONE small JSON
decision per input with the idempotent producer (``acks=all``, ``linger_ms=2``, as
``infra.kafka.make_producer``), waits for the acknowledgements and then commits the
batch's offsets (``getmany(max_records=500)``). No database, no validation, no state
beyond the dict. Its rate is what the broker, aiokafka and one Python process allow;
the service's rate divided by it is the figure the bench reports.

``--transactional`` makes it the **exactly-once ceiling**: the same loop, consuming,
producing and committing the batch's offsets in one Kafka transaction per batch
(``send_offsets_to_transaction``, as Kafka Streams and Quix Streams do for exactly-once),
with its own ``transactional.id``. It is informational: what Kafka's transactions alone
cost on this machine, next to the plain ceiling the targets are measured against.

Self-contained (aiokafka and the standard library only), so it measures the same
thing whichever checkout of the service is being measured.

    python -m bench.ceiling --bootstrap 127.0.0.1:19092 --topics a,b,c --group g --output d
    python -m bench.ceiling ... --transactional

Prints JSON lines on stdout: ``{"event": "assigned", "ts": <unix time>, ...}`` when the
group gives it partitions, and ``{"event": "stopped", "inputs": n}`` at the end.
SIGTERM/SIGINT stop it after the batch in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

DEFAULT_CAPACITY = 15
"""Of a room whose configuration was not read yet: the loop does not order its three
topics by time (the service does), so a check-in may come before its room's
``room.configured``; it should still cost an admission, not a denial."""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class _Announce(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.announced = False

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        parts = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)
        if parts and not self.announced:
            self.announced = True
            emit(event="assigned", ts=time.time(), partitions=parts)


def decide(occupancy: dict[str, int], capacity: dict[str, int], event: dict[str, Any]) -> bytes:
    """One decision per input: the dict holds the state, nothing is checked but capacity."""
    room = str(event.get("room_id"))
    kind = event.get("type")
    party = int(event.get("party_size") or 0)
    inside = occupancy.get(room, 0)
    cap = capacity.get(room, DEFAULT_CAPACITY)
    decision: str
    if kind in ("room.configured", "room.capacity_changed"):
        cap = capacity[room] = int(event.get("capacity") or 0)
        decision = "capacity.changed"
    elif kind == "checkin":
        if inside + party <= cap:
            inside = occupancy[room] = inside + party
            decision = "checkin.admitted"
        else:
            decision = "checkin.denied"
    elif kind == "checkout":
        inside = occupancy[room] = max(0, inside - party)
        decision = "checkout.recorded"
    else:
        decision = "noted"
    return json.dumps(
        {
            "type": decision,
            "event_id": f"{event.get('event_id')}:0",
            "caused_by": event.get("event_id"),
            "room_id": room,
            "decided_at": datetime.now(UTC).isoformat(),
            "party_size": party,
            "occupancy": inside,
            "capacity": cap,
        }
    ).encode()


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=10000,
        heartbeat_interval_ms=2000,
    )
    consumer.subscribe(args.topics.split(","), listener=_Announce())
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=30000,
        transactional_id=f"{args.group}-eos" if args.transactional else None,
    )
    await producer.start()
    await consumer.start()
    occupancy: dict[str, int] = {}
    capacity: dict[str, int] = {}
    inputs = 0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(
                timeout_ms=args.timeout_ms, max_records=args.max_records
            )
            if not batches:
                continue
            acks = []
            offsets: dict[TopicPartition, int] = {}
            if args.transactional:
                await producer.begin_transaction()
            for tp, records in batches.items():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except (TypeError, ValueError):
                        event = {}
                    value = decide(occupancy, capacity, event)
                    acks.append(await producer.send(args.output, key=record.key, value=value))
                offsets[tp] = records[-1].offset + 1
            await asyncio.gather(*acks)
            if args.transactional:
                await producer.send_offsets_to_transaction(offsets, args.group)
                await producer.commit_transaction()
            else:
                await consumer.commit(offsets)
            inputs += sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()
        await producer.stop()
        emit(event="stopped", inputs=inputs)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True, help="the topic its decisions go to")
    parser.add_argument("--max-records", type=int, default=500)
    parser.add_argument("--timeout-ms", type=int, default=100)
    parser.add_argument(
        "--transactional",
        action="store_true",
        help="one Kafka transaction per batch, offsets included (the exactly-once ceiling)",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
