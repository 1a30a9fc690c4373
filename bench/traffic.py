"""The bench's inputs: shared rooms in centers, mixed traffic, kiosk traffic; producing it.

Rooms: ``n`` shared rooms of capacity 15, open 00:00-24:00 (Asia/Seoul), in centers of
20 rooms (``bench-c001`` ... ; room ``bench-c001.r01``); 1,000 rooms are 50 centers.

Mixed traffic (seeded): about 90 % kiosk inputs, 6 % booking requests, 3 % booking
cancels and 1 % capacity changes, on rooms picked uniformly:

- kiosk: a check-in (party 1-4) or a check-out. The generator keeps each room's head
  count and never lets it pass 15, so every check-in is admitted and no check-out takes
  out more than came in (the old bench's rule, capacity 15);
- booking requests: 1-3 hours on a whole hour, 1-60 days ahead, party 1-4, never past
  local midnight; the generator keeps an hourly count per room and only asks for what
  fits 15 persons, so they are confirmed;
- booking cancels: by the booking's member, of a booking requested earlier;
- capacity changes: 15 to 20 and back (``reason`` "bench"); the head count stays at
  most 15 either way, so admissions do not depend on the order across topics.

Kiosk traffic (the latency scenario): check-ins of party 1-2 on random rooms, and a
check-out of everyone inside whenever the next check-in would not fit (about one
input in ten).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer

from infra.kafka import encode, make_producer
from infra.settings import Settings
from producers.client import publish_input, topic_for
from producers.ids import new_event_id
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    RoomCapacityChanged,
    RoomConfigured,
)

CAPACITY = 15
RAISED_CAPACITY = 20
ROOMS_PER_CENTER = 20
TIMEZONE = "Asia/Seoul"
KIOSK = "bench.kiosk-1"
SEED = 20240501
MEMBERS = 2000
PRODUCE_CHUNK = 5000


@dataclass(frozen=True)
class RoomRef:
    room_id: str
    center_id: str


def layout(rooms: int) -> list[RoomRef]:
    """``rooms`` rooms in centers of 20 (the last center may be smaller)."""
    out = []
    for i in range(rooms):
        center = f"bench-c{i // ROOMS_PER_CENTER + 1:03d}"
        out.append(RoomRef(f"{center}.r{i % ROOMS_PER_CENTER + 1:02d}", center))
    return out


def centers(rooms: Iterable[RoomRef]) -> int:
    return len({r.center_id for r in rooms})


def configurations(
    rooms: Iterable[RoomRef], at: datetime, random_ids: bool = False
) -> list[RoomConfigured]:
    new_id = _id_maker(random_ids)
    return [
        RoomConfigured(
            event_id=new_id(at),
            occurred_at=at,
            room_id=room.room_id,
            center_id=room.center_id,
            name=f"Bench room {room.room_id}",
            capacity=CAPACITY,
            booking_mode="shared",
            opens="00:00",
            closes="24:00",
            timezone=TIMEZONE,
        )
        for room in rooms
    ]


def _id_maker(random_ids: bool) -> Callable[[datetime], uuid.UUID]:
    """How the bench's producers name inputs: version 7 (``producers.ids``), or version 4
    for producers that ignore the contract's advice (what random ids cost the service)."""
    if random_ids:
        return lambda _at: uuid.uuid4()
    return new_event_id


@dataclass
class _RoomModel:
    inside: int = 0
    raised: bool = False
    hours: Counter[int] = field(default_factory=Counter)
    """Persons booked per hour (hours since the epoch)."""
    bookings: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    """(booking_id, member_id, first hour, hours, party) of bookings not cancelled."""


def mixed(
    rooms: list[RoomRef], count: int, seed: int, start: datetime, random_ids: bool = False
) -> Iterator[AnyInput]:
    """``count`` mixed inputs; ``occurred_at`` = ``start`` + i microseconds (so all in the
    past by the time they are sent, and in the order they were generated). Fresh event
    ids: version 7, as the contract recommends, or random ones (``random_ids``)."""
    rng = random.Random(seed)
    new_id = _id_maker(random_ids)
    models = {r.room_id: _RoomModel() for r in rooms}
    tz = ZoneInfo(TIMEZONE)
    base_day = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    made = 0
    while made < count:
        at = start + timedelta(microseconds=made)
        room = rooms[rng.randrange(len(rooms))]
        model = models[room.room_id]
        roll = rng.random()
        member = f"m-{rng.randrange(MEMBERS):05d}"
        event: AnyInput | None = None
        if roll < 0.01:
            model.raised = not model.raised
            event = RoomCapacityChanged(
                event_id=new_id(at),
                occurred_at=at,
                room_id=room.room_id,
                capacity=RAISED_CAPACITY if model.raised else CAPACITY,
                reason="bench",
            )
        elif roll < 0.04:
            if model.bookings:
                booking_id, owner, first, length, party = model.bookings.pop(
                    rng.randrange(len(model.bookings))
                )
                for hour in range(first, first + length):
                    model.hours[hour] -= party
                event = BookingCancelRequested(
                    event_id=new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    booking_id=booking_id,
                    member_id=owner,
                )
        elif roll < 0.10:
            length = rng.choice((1, 2, 2, 3))
            day = base_day + timedelta(days=rng.randint(1, 60))
            local_start = day + timedelta(hours=rng.randint(0, 24 - length))
            starts = local_start.astimezone(UTC)
            first = int(starts.timestamp() // 3600)
            party = rng.choice((1, 1, 2, 2, 3, 4))
            if all(model.hours[h] + party <= CAPACITY for h in range(first, first + length)):
                booking_id = f"bk-{uuid.uuid4().hex[:16]}"
                for hour in range(first, first + length):
                    model.hours[hour] += party
                model.bookings.append((booking_id, member, first, length, party))
                event = BookingRequested(
                    event_id=new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    booking_id=booking_id,
                    member_id=member,
                    party_size=party,
                    starts_at=starts,
                    ends_at=starts + timedelta(hours=length),
                )
        else:
            party = rng.choices((1, 2, 3, 4), weights=(50, 30, 12, 8))[0]
            leaving = model.inside > 0 and (
                model.inside + party > CAPACITY or rng.random() < model.inside / CAPACITY
            )
            if leaving:
                gone = min(party, model.inside)
                model.inside -= gone
                event = Checkout(
                    event_id=new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    kiosk_id=KIOSK,
                    party_size=gone,
                    member_id=member,
                )
            else:
                model.inside += party
                event = Checkin(
                    event_id=new_id(at),
                    occurred_at=at,
                    room_id=room.room_id,
                    kiosk_id=KIOSK,
                    party_size=party,
                    member_id=member,
                )
        if event is not None:
            made += 1
            yield event


class KioskTraffic:
    """An endless seeded stream of kiosk inputs that keeps every room within capacity."""

    def __init__(self, rooms: list[RoomRef], seed: int) -> None:
        self.rng = random.Random(seed)
        self.rooms = rooms
        self.inside = {r.room_id: 0 for r in rooms}

    def next(self, at: datetime) -> Checkin | Checkout:
        room = self.rooms[self.rng.randrange(len(self.rooms))].room_id
        party = self.rng.choice((1, 1, 1, 2))
        if self.inside[room] + party > CAPACITY:
            everyone = self.inside[room]
            self.inside[room] = 0
            return Checkout(
                event_id=new_event_id(at),
                occurred_at=at,
                room_id=room,
                kiosk_id=KIOSK,
                party_size=everyone,
            )
        self.inside[room] += party
        return Checkin(
            event_id=new_event_id(at),
            occurred_at=at,
            room_id=room,
            kiosk_id=KIOSK,
            party_size=party,
        )


@dataclass(frozen=True)
class Encoded:
    """An input ready to send: topic, key, JSON bytes; the id its decision will name."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    kind: str


def encoded(settings: Settings, event: AnyInput) -> Encoded:
    return Encoded(
        topic=topic_for(settings, event),
        key=event.room_id.encode(),
        value=encode(event.model_dump(mode="json")),
        event_id=str(event.event_id),
        kind=event.type,
    )


@dataclass
class Produced:
    ids: list[str]
    kinds: dict[str, int]
    seconds: float


async def produce(settings: Settings, events: Iterable[AnyInput]) -> Produced:
    """Every event with the contract's producer (idempotent, ``acks=all``), keyed by room,
    record timestamp = ``occurred_at`` (``producers.client.publish_input``); waits for
    every acknowledgement."""
    started = time.perf_counter()
    producer = make_producer(settings)
    await producer.start()
    ids: list[str] = []
    kinds: Counter[str] = Counter()
    try:
        pending: list[asyncio.Future[object]] = []
        for event in events:
            pending.append(await publish_input(producer, settings, event))
            ids.append(str(event.event_id))
            kinds[event.type] += 1
            if len(pending) >= PRODUCE_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return Produced(ids, dict(sorted(kinds.items())), time.perf_counter() - started)


async def send_now(producer: AIOKafkaProducer, item: Encoded) -> asyncio.Future[object]:
    """Queue one pre-encoded input with the record timestamp of now."""
    future: asyncio.Future[object] = await producer.send(
        item.topic, key=item.key, value=item.value, timestamp_ms=int(time.time() * 1000)
    )
    return future
