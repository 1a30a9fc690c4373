"""Thin aiokafka adapters: the idempotent producer, group consumers, partitioning.

Consumers that must control commits and assignment use aiokafka directly (see
docs/architecture.md for why FastStream is not used there).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.partitioner import murmur2

from infra.settings import Settings


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, like Java)."""
    return _positive_murmur2(key) % partitions


@lru_cache(maxsize=200_000)
def _positive_murmur2(key: str) -> int:
    """aiokafka's murmur2 is pure Python (3 % of the relay's process at 1,000 rooms); keys
    are room and usage ids, few and reused: cached."""
    hashed: int = murmur2(key.encode("utf-8"))
    return hashed & 0x7FFFFFFF


def encode(value: dict[str, Any] | str) -> bytes:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8")


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """``acks=all`` plus the idempotent producer, as the contract requires of every producer."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "request_timeout_ms": 30000,
        # Batches of up to 256 KiB per partition (aiokafka's default is 16 KiB): a relay
        # publishing a few hundred rows sends one request, not dozens.
        "max_batch_size": 256 * 1024,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


TRANSACTION_TIMEOUT_MS = 10000
"""A relay's transaction lasts milliseconds; one left open by a dead relay that nobody takes
over holds back read_committed readers until the coordinator aborts it (this, plus up to
the broker's 10 s cleanup interval), so it is short."""


def make_transactional_producer(
    settings: Settings, transactional_id: str, **overrides: Any
) -> AIOKafkaProducer:
    """``make_producer`` with a ``transactional.id``: starting it fences any producer that
    used the same id before (its open transaction is aborted, its next write refused)."""
    options: dict[str, Any] = {
        "transactional_id": transactional_id,
        "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
    }
    options.update(overrides)
    return make_producer(settings, **options)


def make_reader(settings: Settings, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer outside any group, assigned by hand, reading committed records only.

    Output topics are written in transactions: a reader that also took uncommitted
    records would see the aborted writes of a relay that crashed or was fenced.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


def make_group_consumer(
    settings: Settings, group_id: str, topics: tuple[str, ...], **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer whose partition p of every topic lands on the same member (range assignor).

    Offsets are committed by hand, after the database transaction that recorded
    what the batch decided.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": (RangePartitionAssignor,),
        "max_poll_interval_ms": 300000,
        "session_timeout_ms": 10000,
        "heartbeat_interval_ms": 2000,
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
