"""Deciding one batch of records, the same way for the room authority and the statistics.

A consumer supplies a :class:`Handler`: how to read a record, which id makes it
idempotent, how to load and save the states it needs, and how to decide one event
(calling the domain). This module does the rest, once for both:

- an input already decided (its id is in ``processed_inputs``) is skipped, if its content
  is the same (an exact re-send); the same id with other content is dead-lettered;
- a record that cannot be read goes to ``dead-letters`` once per position;
- an error while deciding one event raises :class:`PoisonRecord`; the caller rolls the
  batch back, and decides it again with that record dead-lettered with the reason, so
  no single record can stop a consumer;
- the states, the processed ids and the outbox rows are written together by the unit
  of work the caller commits.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID, uuid5

from pydantic import ValidationError

from infra.db import UnitOfWork, utcnow
from infra.observability import METRICS
from infra.settings import Settings
from schemas.outputs import DeadLetter

log = logging.getLogger(__name__)

Event = TypeVar("Event")
Position = tuple[str, int, int]
"""(topic, partition, offset) of a record."""


class Record(Protocol):
    """The fields of an aiokafka ``ConsumerRecord`` this code reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Handler(Protocol[Event]):
    """What one consumer does; everything else about a batch is :func:`process_batch`."""

    name: str
    """Prefix of the consumer's metrics."""
    group: str
    """The consumer group: the namespace of its processed ids."""

    def parse(self, record: Record) -> Event | str:
        """The event, or why it cannot be read (a reason a person can act on)."""

    def identity(self, event: Event) -> str | None:
        """The id that makes ``event`` idempotent; None if deciding it twice is harmless."""

    def digest(self, record: Record, event: Event) -> str:
        """What an exact re-send of ``record`` has in common with the original (stored with
        its id): :func:`content_digest`, or a cheaper one where re-sends are byte-equal."""

    async def load(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """Have the states these events need at hand (from memory or the database)."""

    def handle(self, uow: UnitOfWork, record: Record, event: Event) -> None:
        """Decide one event; what it publishes goes to ``uow.publish``."""

    def skipped(self, event: Event) -> None:
        """``event`` was decided before (a redelivery): it is not decided again, but what
        it changed may not have been published yet (see :meth:`settled`)."""

    async def save(self, uow: UnitOfWork) -> None:
        """Write back the states this batch changed."""

    def committed(self) -> None:
        """The batch's transaction committed: what it changed is now stored."""

    def settled(self) -> bool:
        """Whether every batch committed so far has its outputs in the outbox.

        The loop commits offsets to Kafka only then. A consumer that publishes some
        outputs later than its batch (the statistics' aggregates during a backlog)
        relies on this: after a crash, the inputs since are read again, come to
        :meth:`skipped`, and their outputs are published then. A batch without records
        asks for everything due to be published.
        """

    def more_to_write(self) -> bool:
        """Whether the batch just committed left writes for more transactions, which the
        loop makes at once, each a batch without records: a consumer keeps each of its
        transactions short where one writer at a time is allowed (SQLite), so the others'
        batches (the kiosk path) do not wait long for it."""

    def forget(self, *, everything: bool) -> None:
        """Drop states the batch touched (rolled back), or every state kept (to read
        them again after a database error)."""

    def revoked(self) -> None:
        """Partitions were taken away: drop every state kept, and what is not published
        yet (whoever reads those partitions next reads the inputs since again)."""


class PoisonRecord(Exception):
    """Deciding one record failed with an error the rules did not foresee."""

    def __init__(self, record: Record, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


def position(record: Record) -> Position:
    return (record.topic, record.partition, record.offset)


_POSITION_NAMESPACE = UUID("0b7c3f0e-52a4-4d6e-9f1d-6a0c8e2b4d17")


def position_id(record: Record) -> str:
    """Identity of an unreadable record, so it is dead-lettered once however often it arrives."""
    return str(uuid5(_POSITION_NAMESPACE, f"{record.topic}:{record.partition}:{record.offset}"))


def record_key(record: Record) -> str | None:
    return record.key.decode("utf-8", "replace") if record.key is not None else None


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "message"
        parts.append(f"{where}: {problem['msg']}")
    return "contract violation: " + "; ".join(parts)


def dead_letter(
    uow: UnitOfWork,
    settings: Settings,
    record: Record,
    reason: str,
    group: str,
    now: datetime,
) -> None:
    """Park an input nobody can decide, with its original bytes and where it came from."""
    letter = DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=base64.b64encode(record.key).decode() if record.key is not None else None,
        original=base64.b64encode(record.value or b"").decode(),
        reason=reason,
        consumer_group=group,
        received_at=now,
    )
    uow.publish(settings.topics.dead_letters, record_key(record), letter.model_dump_json())
    METRICS.inc("dead_letters_total")
    log.warning(
        "dead letter",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
            "group": group,
        },
    )


async def process_batch(
    uow: UnitOfWork,
    settings: Settings,
    handler: Handler[Event],
    records: Sequence[Record],
    poison: Mapping[Position, str],
) -> None:
    """Decide ``records`` in order inside ``uow``; ``poison`` records are dead-lettered.

    Raises :class:`PoisonRecord` for the first record whose decision failed; the caller
    rolls back and calls again with that record added to ``poison``.
    """
    parsed: list[tuple[Record, Event | str]] = []
    for record in records:
        reason = poison.get(position(record))
        parsed.append((record, handler.parse(record) if reason is None else reason))
    # Each record's id, worked out once: (record, parsed event or why not, id or None).
    items = [
        (record, item, position_id(record) if isinstance(item, str) else handler.identity(item))
        for record, item in parsed
    ]
    ids = {ident for _, _, ident in items if ident is not None}
    stored = await uow.processed_digests(ids)
    seen = set(stored)
    digests = {ident: found[0] for ident, found in stored.items()}
    where = {ident: f"{t}[{p}]@{o}" for ident, (_, t, p, o) in stored.items()}
    # An id already decided (before, or earlier in this batch) with other content is not
    # a re-send: it is dead-lettered, with where the id was first used, not skipped.
    reused: set[str] = set()
    for index, (record, item, ident) in enumerate(items):
        if isinstance(item, str) or ident is None:
            continue
        digest = handler.digest(record, item)
        known = digests.get(ident)
        if ident not in digests:
            digests[ident] = digest
            where[ident] = "{}[{}]@{}".format(*position(record))
        elif known is not None and known != digest and known != content_digest(record, item):
            # (The second comparison: a digest stored as content_digest before the
            # handler's own digest was cheaper.)
            marker = position_id(record)
            items[index] = (record, _reused(ident, where[ident]), marker)
            reused.add(marker)
    if reused:  # rare: a second query, so each such record is dead-lettered once
        seen |= await uow.already_processed(reused)
    await handler.load(uow, [item for _, item, _ in items if not isinstance(item, str)])
    for record, item, ident in items:
        if isinstance(item, str):
            marker = ident or position_id(record)
            if marker not in seen:
                seen.add(marker)
                dead_letter(uow, settings, record, item, handler.group, utcnow())
                uow.mark_processed(marker, record.topic, record.partition, record.offset)
            continue
        if ident is not None:
            if ident in seen:
                handler.skipped(item)
                METRICS.inc(f"{handler.name}_duplicates_total")
                log.debug(
                    "duplicate input skipped",
                    extra={"topic": record.topic, "offset": record.offset, "event_id": ident},
                )
                continue
            seen.add(ident)
        try:
            handler.handle(uow, record, item)
        except Exception as error:
            raise PoisonRecord(
                record, f"could not be decided: {type(error).__name__}: {error}"[:500]
            ) from error
        if ident is not None:
            uow.mark_processed(
                ident, record.topic, record.partition, record.offset, digests.get(ident)
            )
    await handler.save(uow)


def content_digest(record: Record, event: object) -> str:
    """What an exact re-send has in common with the original: the parsed content (a kiosk
    retry may re-encode it), or the bytes when the event is not a pydantic model."""
    dump = getattr(event, "model_dump_json", None)
    data = dump().encode() if callable(dump) else (record.value or b"")
    return hashlib.sha256(data).hexdigest()


def _reused(ident: str, first: str) -> str:
    return (
        f"event_id {ident} was already used for a different input (first at {first}): "
        "an event_id names one input; send a new input with a new event_id"
    )
