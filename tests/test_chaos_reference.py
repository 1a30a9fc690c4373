"""The chaos reference model against the real rules, and the traffic's order independence.

``chaos.reference`` is written apart from ``domain/`` so the checker cannot share its bugs.
These tests run the chaos traffic through the real rules in-process (``domain.capacity
.decide`` as the room authority calls it, ``domain.usage.fold`` as the statistics does) and
ask the checker to compare: the reference must agree with the service's rules on
everything the traffic sends. They also decide the traffic in random orders across the
three input topics (each topic's order kept, as after a crash or a broker failure) and
check that the decisions do not change: the property the chaos traffic is built for.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from chaos.checker import Outputs, check
from chaos.reference import Booking as ModelBooking
from chaos.reference import (
    InputTopics,
    Landed,
    Reference,
    checkin_refusal,
    merged,
    opening_window,
    persons_held_at_busiest,
    split_by_month,
)
from chaos.reference import Room as ModelRoom
from chaos.traffic import Outgoing, Traffic, as_landed, configurations, plan_rooms
from domain.capacity import Policy, Room, Unprocessable, decide
from domain.usage import CenterUsage, RoomUsage, fold
from schemas.decisions import DECISION_ADAPTER
from schemas.inputs import (
    BOOKING_ADAPTER,
    CAPACITY_ADAPTER,
    CHECKIN_ADAPTER,
    BookingRequested,
    ClockTick,
)

TOPICS = InputTopics()
PARTITIONS = 6
START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ADAPTERS: dict[str, TypeAdapter[Any]] = {
    TOPICS.capacity: CAPACITY_ADAPTER,
    TOPICS.bookings: BOOKING_ADAPTER,
    TOPICS.checkins: CHECKIN_ADAPTER,
}


def chaos_inputs(
    rooms: int, count: int, seed: int, resend_every: int = 20
) -> tuple[list[Outgoing], list[Outgoing]]:
    """(configurations, traffic): ``count`` inputs 20 ms apart, every ``resend_every``-th
    retryable one sent twice."""
    plans = plan_rooms(rooms, seed)
    traffic = Traffic(plans, seed, START, sign=lambda key, value: [])  # with its ticks
    items: list[Outgoing] = []
    for i in range(count):
        item = traffic.next(START + timedelta(seconds=10) + i * timedelta(milliseconds=20))
        items.append(item)
        if item.retryable and i % resend_every == 0:
            items.append(item)
    return configurations(plans, START), items


def tick(room_id: str, at: datetime) -> Outgoing:
    event = ClockTick(event_id=uuid.uuid4(), occurred_at=at, room_id=room_id)
    value = json.dumps(event.model_dump(mode="json")).encode()
    return Outgoing(
        "capacity", room_id.encode(), value, int(at.timestamp() * 1000), str(event.event_id), "tick"
    )


class DomainService:
    """The room authority and the statistics in-process: the real rules, decided at
    ``occurred_at``, each ``event_id`` once, what cannot be read or decided dead-lettered."""

    def __init__(self) -> None:
        self.policy = Policy(
            no_show_grace=timedelta(minutes=15),
            early_arrival=timedelta(minutes=15),
            late_tolerance=timedelta(minutes=10),
        )
        self.rooms: dict[str, Room | None] = {}
        self.answered: dict[str, set[str]] = {}
        self.processed: set[str] = set()
        self.decisions: list[dict[str, Any]] = []
        self.dead: list[tuple[str, int, int]] = []

    def decide(self, records: list[Landed]) -> None:
        for record in records:
            try:
                event = ADAPTERS[record.topic].validate_json(record.value or b"")
            except ValidationError:
                self.dead.append(record.position)
                continue
            if record.key is None or record.key.decode() != event.room_id:
                self.dead.append(record.position)
                continue
            if not isinstance(event, ClockTick):
                if str(event.event_id) in self.processed:
                    continue
                self.processed.add(str(event.event_id))
            room = self.rooms.get(event.room_id)
            answered = self.answered.setdefault(event.room_id, set())
            try:
                room, made = decide(room, event, event.occurred_at, self.policy, answered)
            except Unprocessable:
                self.dead.append(record.position)
                continue
            if isinstance(event, BookingRequested) and self.rooms.get(event.room_id):
                answered.add(event.booking_id)
            self.rooms[event.room_id] = room
            self.decisions.extend(json.loads(d.model_dump_json()) for d in made)

    def outputs(self) -> Outputs:
        out = Outputs()
        for offset, decision in enumerate(self.decisions):
            out.decisions.append(_landed("decisions", offset, decision["room_id"], decision))
        for offset, (topic, partition, where) in enumerate(self.dead):
            letter = {"topic": topic, "partition": partition, "offset": where}
            out.dead_letters.append(_landed("dead-letters", offset, None, letter))
        rooms: dict[str, RoomUsage] = {}
        centers: dict[str, CenterUsage] = {}
        latest: dict[str, dict[str, Any]] = {}
        now = START + timedelta(days=1)
        for decision in self.decisions:
            model = DECISION_ADAPTER.validate_python(decision)
            usage = rooms.setdefault(model.room_id, RoomUsage(model.room_id))
            center = (
                centers.setdefault(model.center_id, CenterUsage(model.center_id))
                if model.center_id
                else None
            )
            for aggregate in fold(usage, center, model, now):
                latest[aggregate.key] = aggregate.model_dump(mode="json")
        for offset, (key, value) in enumerate(latest.items()):
            out.usage.append(_landed("usage-monthly", offset, key, value))
        for offset, (room_id, room) in enumerate(self.rooms.items()):
            if room is not None:
                gauge = {"occupancy": room.occupancy, "capacity": room.capacity}
                out.occupancy.append(_landed("occupancy", offset, room_id, gauge))
        return out


def _landed(topic: str, offset: int, key: str | None, value: dict[str, Any]) -> Landed:
    encoded = key.encode() if key is not None else None
    return Landed(topic, 0, offset, 0, encoded, json.dumps(value).encode())


def shuffled_across_topics(records: list[Landed], seed: int) -> list[Landed]:
    """Each partition's three topics interleaved at random, each topic's order kept."""
    rng = random.Random(seed)
    queues: dict[tuple[int, str], deque[Landed]] = {}
    for record in sorted(records, key=lambda r: r.offset):
        queues.setdefault((record.partition, record.topic), deque()).append(record)
    keys = sorted(queues)
    out: list[Landed] = []
    while keys:
        key = rng.choice(keys)
        out.append(queues[key].popleft())
        if not queues[key]:
            keys.remove(key)
    return out


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("seed", [1, 2])
def test_the_reference_agrees_with_the_rules_on_the_chaos_traffic(seed: int) -> None:
    configs, items = chaos_inputs(rooms=40, count=3000, seed=seed)
    landed = as_landed(configs + items, TOPICS, PARTITIONS)
    service = DomainService()
    service.decide(list(merged(landed, TOPICS)))
    findings = check(landed, service.outputs(), TOPICS)
    assert findings.decisions_expected > 2800  # the ticks among the 3,000 decide nothing
    assert findings.ticks > 50
    assert findings.resends > 50
    assert findings.unreadable > 0
    assert findings.dead_letters_expected == findings.unreadable
    assert findings.ok, "\n".join(findings.examples())


def test_the_traffic_makes_every_kind_of_decision() -> None:
    configs, items = chaos_inputs(rooms=60, count=6000, seed=7)
    expected = Reference(TOPICS).run(as_landed(configs + items, TOPICS, PARTITIONS))
    refusals = ("booking.rejected", "checkin.denied")
    kinds = {
        (d["type"], d["reason"] if d["type"] in refusals else None)
        for d in expected.decisions.values()
    }
    for wanted in [
        ("room.configured", None),
        ("capacity.changed", None),
        ("booking.confirmed", None),
        ("booking.cancelled", None),
        ("checkin.admitted", None),
        ("checkout.recorded", None),
        ("booking.rejected", "over_capacity"),
        ("booking.rejected", "overlap"),
        ("booking.rejected", "in_the_past"),
        ("booking.rejected", "invalid"),
        ("booking.rejected", "outside_opening_hours"),
        ("booking.rejected", "unknown_booking"),
        ("booking.rejected", "unknown_room"),
        ("checkin.denied", "room_full"),
        ("checkin.denied", "unknown_room"),
        ("checkout.rejected", None),
        ("capacity.rejected", None),
    ]:
        assert wanted in kinds, wanted
    assert not expected.unmodelled


def test_no_shows_released_by_a_late_tick_agree_with_the_rules() -> None:
    configs, items = chaos_inputs(rooms=30, count=1500, seed=11)
    plans = {c.key.decode() for c in configs}
    late = START + timedelta(days=60)
    ticks = [tick(room_id, late) for room_id in sorted(plans)]
    landed = as_landed(configs + items + ticks, TOPICS, PARTITIONS)
    service = DomainService()
    service.decide(list(merged(landed, TOPICS)))
    assert any(d["type"] == "booking.released" for d in service.decisions)
    findings = check(landed, service.outputs(), TOPICS)
    assert findings.ok, "\n".join(findings.examples())


@pytest.mark.parametrize("seed", range(3))
def test_decisions_do_not_depend_on_the_order_across_topics(seed: int) -> None:
    """What the authority does after a crash or a broker failure (a topic read before an
    older record of another): the chaos traffic decides the same."""
    configs, items = chaos_inputs(rooms=30, count=2000, seed=100 + seed)
    config_records = as_landed(configs, TOPICS, PARTITIONS)
    landed = as_landed(configs + items, TOPICS, PARTITIONS)
    rest = [r for r in landed if r.position not in {c.position for c in config_records}]
    service = DomainService()
    service.decide(config_records + shuffled_across_topics(rest, seed))
    findings = check(landed, service.outputs(), TOPICS)
    assert findings.ok, "\n".join(findings.examples())


# --------------------------------------------------------------------------- plain rules


def _room(**changes: Any) -> ModelRoom:
    room = ModelRoom("r", "c", "Room", 10, "shared", "00:00", "24:00", "Asia/Seoul")
    for name, value in changes.items():
        setattr(room, name, value)
    return room


def test_persons_held_at_busiest_counts_only_overlapping_instants() -> None:
    t = START
    room = _room()
    room.bookings = {
        "a": ModelBooking("a", "m", 4, t, t + timedelta(hours=2)),
        "b": ModelBooking("b", "m", 5, t + timedelta(hours=2), t + timedelta(hours=3)),
        "c": ModelBooking("c", "m", 3, t + timedelta(hours=1), t + timedelta(hours=3)),
    }
    assert persons_held_at_busiest(room, t, t + timedelta(hours=3)) == 8  # b and c
    assert persons_held_at_busiest(room, t, t + timedelta(hours=1)) == 4
    room.bookings["b"].status = "cancelled"
    assert persons_held_at_busiest(room, t, t + timedelta(hours=3)) == 7  # a and c


def test_a_walk_in_near_a_booking_is_unmodelled_not_guessed() -> None:
    from chaos.reference import Policy as ReferencePolicy
    from chaos.reference import Unmodelled

    room = _room()
    room.bookings = {
        "a": ModelBooking("a", "m", 4, START + timedelta(hours=5), START + timedelta(hours=6))
    }
    with pytest.raises(Unmodelled):
        checkin_refusal(room, 1, START, ReferencePolicy())
    assert checkin_refusal(room, 1, START - timedelta(days=3), ReferencePolicy()) is None
    room.occupancy = 10
    assert checkin_refusal(room, 1, START - timedelta(days=3), ReferencePolicy()) == "room_full"


def test_opening_windows_are_local_and_whole_days_are_24_hours_in_seoul() -> None:
    day = datetime(2026, 11, 20).date()
    start, end = opening_window("09:00", "22:00", "Asia/Seoul", day)
    assert start == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=13)
    start, end = opening_window("00:00", "24:00", "America/New_York", datetime(2026, 3, 8).date())
    assert end - start == timedelta(hours=23)  # spring forward


def test_split_by_month_cuts_at_local_midnight() -> None:
    starts = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # 22:00 in Seoul
    parts = split_by_month(starts, starts + timedelta(hours=4), "Asia/Seoul")
    assert parts == {"2026-11": 7200.0, "2026-12": 7200.0}
