"""Whether the broker's retention and the consumers' id memory are safe together.

A consumer skips a redelivered record by its event id, remembered for
``processed_retention_days`` (the id memory). Kafka forgets a group's committed offsets
``offsets.retention.minutes`` after its last member left, and the group then starts over
from the earliest record the topic still keeps: records whose ids may be forgotten are
decided (or counted) a second time. That cannot happen when the topic keeps records no
longer than the id memory, nor when it keeps them no longer than the broker keeps
offsets (a record still kept after the offsets expired arrived while the group was away,
so it was never read). Anything else is refused at start, naming the setting to change.

``decisions`` is the log of record and kept forever: the statistics keep their positions
in the database and resume from there (``consumers.statistics.resume_positions``), so
they are refused only when they have counted, Kafka lost their offsets and the database
has no positions to resume from (a database from before those were kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaConnectionError,
    NodeNotReadyError,
    NotCoordinatorError,
    RequestTimedOutError,
)
from sqlalchemy import func, select

from infra.db import ConsumerPositionRow, Database, UsageStateRow
from infra.settings import Settings

DAY_MS = 24 * 3600 * 1000
UNKNOWN_TOPIC = 3
"""Kafka's error code UNKNOWN_TOPIC_OR_PARTITION."""
DEFAULT_OFFSETS_RETENTION_MINUTES = 7 * 24 * 60
"""Kafka's default ``offsets.retention.minutes``."""
ATTEMPTS = 6
"""Tries of each question to the broker, on the next node each time: a node of the
cluster that is down stays in its metadata for seconds (until it is fenced), and a start
meanwhile should ask another node, not exit."""
NODE_DOWN = (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    CoordinatorNotAvailableError,  # the group's coordinator moves off a node that is down
    CoordinatorLoadInProgressError,
    NotCoordinatorError,
)
log = logging.getLogger(__name__)


class RetentionUnsafe(Exception):
    """The broker would let a consumer read records again that it no longer remembers."""


@dataclass(frozen=True)
class BrokerRetention:
    """What the broker keeps: records per topic (``None``: forever) and groups' offsets."""

    topics: dict[str, int | None]
    """``retention.ms`` per topic that exists; ``None`` for -1 (kept forever)."""
    offsets_ms: int
    """``offsets.retention.minutes``, in milliseconds."""


def rereads_forgotten(retention_ms: int | None, id_memory_ms: int, offsets_ms: int) -> bool:
    """Whether a group back after its offsets expired can read a record it forgot."""
    if retention_ms is None:
        return True
    return retention_ms > id_memory_ms and retention_ms > offsets_ms


def _days(ms: int | None) -> str:
    if ms is None:
        return "forever"
    days = ms / DAY_MS
    return f"{days:g} days" if days >= 1 else f"{ms / 3_600_000:g} hours"


def unsafe_topic_message(
    topic: str, who: str, retention_ms: int | None, settings: Settings, offsets_ms: int
) -> str:
    """One line: what is unsafe, why, and the setting to change."""
    shown = -1 if retention_ms is None else retention_ms
    memory = settings.processed_retention_days
    return (
        f"refusing to start: topic {topic!r} keeps records {_days(retention_ms)} "
        f"(retention.ms={shown}), longer than the {memory}-day id memory "
        f"(SPACES_PROCESSED_RETENTION_DAYS) and than the broker keeps a stopped group's "
        f"offsets ({_days(offsets_ms)}, offsets.retention.minutes={offsets_ms // 60_000}): "
        f"the {who} would decide records older than {memory} days a second time after "
        f"such a stop. Set retention.ms of {topic!r} to at most {memory * DAY_MS} "
        f"({memory} days), or raise SPACES_PROCESSED_RETENTION_DAYS or the broker's "
        "offsets.retention.minutes above the topic's retention"
    )


async def broker_retention(bootstrap: str, topics: list[str]) -> BrokerRetention:
    """``retention.ms`` of ``topics`` and the broker's ``offsets.retention.minutes``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="community-spaces-retention-check",
        request_timeout_ms=10_000,
    )
    try:
        await admin.start()

        async def describe(resources: list[ConfigResource]) -> list[Any]:
            return list(await admin.describe_configs(resources))

        topic_resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        _, responses = await ask_each_node_in_turn(
            lambda _node: describe(topic_resources), _node_ids(admin), _refresher(admin)
        )
        node, of_broker = await ask_each_node_in_turn(
            lambda node: describe([ConfigResource(ConfigResourceType.BROKER, str(node))]),
            _node_ids(admin),
            _refresher(admin),
        )
        responses += of_broker
    finally:
        await admin.close()
    configs: dict[tuple[int, str], dict[str, str | None]] = {}
    for response in responses:
        for resource in response.resources:
            error_code, error_message, rtype, name, entries = resource[:5]
            if error_code == UNKNOWN_TOPIC or (error_code and rtype == ConfigResourceType.BROKER):
                # A topic not created yet has nothing to re-read; a broker whose settings
                # are not ours to read is taken to forget offsets as soon as Kafka's default.
                continue
            if error_code:
                raise RetentionUnsafe(
                    f"cannot read the settings of {name!r} from the broker: {error_message}"
                )
            configs[(int(rtype), str(name))] = {entry[0]: entry[1] for entry in entries}
    found: dict[str, int | None] = {}
    for name in topics:
        if (int(ConfigResourceType.TOPIC), name) not in configs:
            continue
        value = int(_config(configs, ConfigResourceType.TOPIC, name, "retention.ms", "-1"))
        found[name] = None if value < 0 else value
    minutes = _config(
        configs,
        ConfigResourceType.BROKER,
        str(node),
        "offsets.retention.minutes",
        str(DEFAULT_OFFSETS_RETENTION_MINUTES),
    )
    return BrokerRetention(found, int(minutes) * 60_000)


def _node_ids(admin: AIOKafkaAdminClient) -> list[int]:
    return sorted(broker.nodeId for broker in admin._client.cluster.brokers())


def _refresher(admin: AIOKafkaAdminClient) -> Callable[[], Awaitable[list[int]]]:
    """Reads the cluster's metadata again: the node ids it lists now."""

    async def refresh() -> list[int]:
        await admin._client.force_metadata_update()
        return _node_ids(admin)

    return refresh


async def ask_each_node_in_turn(
    ask: Callable[[int], Awaitable[list[Any]]],
    nodes: list[int],
    refresh: Callable[[], Awaitable[list[int]]],
    pause_s: float = 0.5,
) -> tuple[int, list[Any]]:
    """The node that answered and ``ask(node)``'s answer: the lowest node id first, the
    next one after a node that is down (the metadata read again, a pause longer each
    time); the error of the last of ``ATTEMPTS`` tries if none answers."""
    for attempt in range(1, ATTEMPTS + 1):
        node = nodes[(attempt - 1) % len(nodes)] if nodes else -1
        try:
            return node, await ask(node)
        except NODE_DOWN as error:
            if attempt == ATTEMPTS:
                raise
            # (The error names the node that did not answer: a question about topics goes
            # to any node, whichever ``node`` is.)
            log.warning(
                "a broker node did not answer; asking again",
                extra={"attempt": attempt, "error": repr(error)},
            )
            await asyncio.sleep(pause_s * attempt)
            nodes = await refresh() or nodes
    raise AssertionError("unreachable")  # pragma: no cover


def _config(
    configs: dict[tuple[int, str], dict[str, str | None]],
    kind: ConfigResourceType,
    name: str,
    key: str,
    default: str,
) -> str:
    value: Any = configs.get((int(kind), name), {}).get(key)
    return str(value) if value is not None else default


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic``, by partition (none: expired or new)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="community-spaces-retention-check",
        request_timeout_ms=10_000,
    )
    try:
        await admin.start()

        async def ask(_node: int) -> list[Any]:  # (the group's coordinator answers)
            return list((await admin.list_consumer_group_offsets(group)).items())

        _, offsets = await ask_each_node_in_turn(ask, _node_ids(admin), _refresher(admin))
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets if tp.topic == topic}


async def check_retention(settings: Settings, db: Database, parts: tuple[str, ...]) -> None:
    """Refuse (``RetentionUnsafe``) a start that could decide or count a record twice."""
    topics: list[str] = []
    if "authority" in parts:
        topics.extend(settings.topics.inputs)
    if "statistics" in parts:
        topics.append(settings.topics.decisions)
    if not topics:
        return
    broker = await broker_retention(settings.bootstrap, topics)
    memory_ms = settings.processed_retention_days * DAY_MS
    if "authority" in parts:
        for topic in settings.topics.inputs:
            if topic not in broker.topics:
                continue
            retention = broker.topics[topic]
            if rereads_forgotten(retention, memory_ms, broker.offsets_ms):
                raise RetentionUnsafe(
                    unsafe_topic_message(
                        topic, "room authority", retention, settings, broker.offsets_ms
                    )
                )
    if "statistics" in parts:
        decisions = settings.topics.decisions
        if decisions not in broker.topics:
            return
        retention = broker.topics[decisions]
        if not rereads_forgotten(retention, memory_ms, broker.offsets_ms):
            return
        async with db.read_session() as session:
            positions = await session.scalar(
                select(func.count())
                .select_from(ConsumerPositionRow)
                .where(
                    ConsumerPositionRow.consumer == settings.statistics_group,
                    ConsumerPositionRow.topic == decisions,
                )
            )
            counted = await session.scalar(select(func.count()).select_from(UsageStateRow))
        if positions or not counted:
            return  # resumes from the database's positions, or has counted nothing yet
        if await committed_offsets(settings.bootstrap, settings.statistics_group, decisions):
            return  # Kafka still has them; the positions are stored from now on
        shown = -1 if retention is None else retention
        raise RetentionUnsafe(
            f"refusing to start: the statistics (group {settings.statistics_group!r}) have "
            f"counted decisions, but Kafka no longer has the group's offsets (it forgets them "
            f"{_days(broker.offsets_ms)} after the group stopped, offsets.retention.minutes="
            f"{broker.offsets_ms // 60_000}) and the database has no positions to resume "
            f"from; {decisions!r} keeps decisions {_days(retention)} (retention.ms={shown}), "
            f"longer than the {settings.processed_retention_days}-day id memory, so reading "
            "it from the start would count decisions twice. Reset the group's offsets to "
            "where it stopped (kafka-consumer-groups.sh --reset-offsets), or empty the "
            "tables usage_state and usage_monthly to count the whole log again"
        )
