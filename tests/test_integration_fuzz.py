"""Issue 7: bad input never stops the service, fuzzed on the real broker.

Thousands of malformed records (seeded) interleaved with valid inputs on the three input
topics: invalid JSON, wrong types, missing fields, unknown types, oversized values, absurd
sizes, times without offsets or out of range, forbidden characters in ids, an empty key,
a key that is not the ``room_id``, and unsigned clock ticks. Every bad record must be in
``dead-letters`` (found by its topic, partition and offset) with a reason that names what
is wrong, every valid one must get exactly one decision, and the consumer must still be
deciding afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra.kafka import make_producer
from infra.settings import Settings
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    EnrollmentRequested,
    RoomConfigured,
)
from tests.stack import produce, read_topic, running

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
SEED = 20261123
BAD = 2400
GOOD = 600
ROOMS = [f"fuzz.room-{n}" for n in range(6)]

Bad = tuple[str, bytes | None, bytes, str]
"""(topic kind, key, value, what the dead letter's reason must say)."""


def now() -> datetime:
    return datetime.now(SEOUL)


def configured(room_id: str) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid.uuid4(),
        occurred_at=now(),
        room_id=room_id,
        center_id="fuzz",
        name="Fuzz room",
        capacity=10_000,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
    )


def valid(rng: random.Random, n: int) -> AnyInput:
    """An input the contract allows; each gets exactly one decision."""
    room = rng.choice(ROOMS)
    common: dict[str, Any] = {"event_id": uuid.uuid4(), "occurred_at": now(), "room_id": room}
    kind = n % 5
    if kind == 0:
        starts = now() + timedelta(days=1 + n % 20, minutes=n)
        return BookingRequested(
            **common,
            booking_id=f"b-{n}",
            member_id=f"m-{n}",
            party_size=1 + n % 5,
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
        )
    if kind == 1:
        return BookingCancelRequested(**common, booking_id=f"nobody-{n}", member_id="m-x")
    if kind == 2:
        return EnrollmentRequested(**common, session_id=f"no-session-{n}", member_id=f"m-{n}")
    if kind == 3:
        return Checkout(**common, kiosk_id="k-out", party_size=1)
    return Checkin(**common, kiosk_id="k-in", party_size=1 + n % 3)


def template(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A valid input as JSON, to break one way or another."""
    event = valid(rng, rng.randrange(10_000))
    return _kind(event), json.loads(event.model_dump_json())


def _kind(event: AnyInput) -> str:
    return {"booking": "bookings", "enrollment": "bookings", "checkin": "checkins"}.get(
        event.type.split(".")[0], "checkins"
    )


def _dump(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


def _key(message: dict[str, Any]) -> bytes:
    return str(message.get("room_id", "fuzz.room-0")).encode()


def invalid_json(rng: random.Random) -> Bad:
    kind, message = template(rng)
    text = _dump(message)
    broken = rng.choice(
        [
            text[: rng.randrange(1, len(text) - 1)],
            text.replace(b":", b"=", 1),
            b"\xff\xfe" + text,
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
            b"[" + text + b"]",
            b"null",
        ]
    )
    return kind, _key(message), broken, "contract violation"


def wrong_type(rng: random.Random) -> Bad:
    kind, message = template(rng)
    field = rng.choice(["event_id", "occurred_at", "room_id", "party_size", "booking_id"])
    if field not in message:
        field = "occurred_at"
    message[field] = rng.choice([123, 1.5, True, None, [], {"a": 1}, str(message[field]) + "!"])
    if field == "party_size":
        message[field] = rng.choice(["3", 2.5, None, [1]])
    return kind, _key(message), _dump(message), field


def missing_field(rng: random.Random) -> Bad:
    kind, message = template(rng)
    # Required fields only (``party_size`` of an enrollment defaults to 1).
    optional = {"type", "room_id", "member_id", "booking_id", "session_id"}
    if message["type"] == "enrollment.requested":
        optional.add("party_size")
    field = rng.choice([f for f in message if f not in optional])
    del message[field]
    return kind, _key(message), _dump(message), field


def unknown_type(rng: random.Random) -> Bad:
    kind, message = template(rng)
    message["type"] = rng.choice(["checkin.teleport", "", "CHECKIN", "booking", "drop table"])
    return kind, _key(message), _dump(message), "contract violation"


def oversized(rng: random.Random) -> Bad:
    kind, message = template(rng)
    if rng.random() < 0.5:
        message["padding"] = "x" * rng.randrange(17_000, 40_000)
        return kind, _key(message), _dump(message), "larger than"
    field = "kiosk_id" if kind == "checkins" else "member_id"
    message[field] = "k" * rng.randrange(65, 2_000)
    return kind, _key(message), _dump(message), field


def absurd_size(rng: random.Random) -> Bad:
    if rng.random() < 0.3:
        room = configured(rng.choice(ROOMS))
        message = json.loads(room.model_dump_json())
        message["capacity"] = rng.choice([0, -5, 100_001, 10**12])
        return "capacity", _key(message), _dump(message), "capacity"
    kind, message = template(rng)
    if "party_size" not in message:
        kind, message = "checkins", json.loads(valid(rng, 4).model_dump_json())
    message["party_size"] = rng.choice([0, -1, 10_001, 10**9, 2**63])
    return kind, _key(message), _dump(message), "party_size"


def bad_time(rng: random.Random) -> Bad:
    kind, message = template(rng)
    field = "starts_at" if "starts_at" in message and rng.random() < 0.5 else "occurred_at"
    message[field] = rng.choice(
        [
            "2026-11-23T10:00:00",  # no offset
            "2026-11-23 10:00",
            "0001-01-01T00:00:00+09:00",
            "9999-12-31T23:59:59+09:00",
            "1999-12-31T23:59:59Z",
            "2101-01-01T00:00:00Z",
            "2026-13-45T10:00:00+09:00",
            "yesterday",
        ]
    )
    return kind, _key(message), _dump(message), field


def bad_id(rng: random.Random) -> Bad:
    kind, message = template(rng)
    field = rng.choice(["room_id", "kiosk_id" if kind == "checkins" else "member_id"])
    message[field] = rng.choice(["room/1", "kiosk 1", "<script>", "방-1", "a\nb", "", "x;y"])
    key = b"fuzz.room-0" if field == "room_id" else _key(message)
    return kind, key, _dump(message), field


def empty_key(rng: random.Random) -> Bad:
    kind, message = template(rng)
    return kind, rng.choice([b"", None]), _dump(message), "does not match room_id"


def other_key(rng: random.Random) -> Bad:
    kind, message = template(rng)
    others = [r for r in ROOMS if r != message["room_id"]]
    return kind, rng.choice(others).encode(), _dump(message), "does not match room_id"


def unsigned_tick(rng: random.Random) -> Bad:
    room = rng.choice(ROOMS)
    at = now() + timedelta(days=rng.choice([0, 2, 30]))
    message = {
        "type": "clock.tick",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "room_id": room,
    }
    return "capacity", room.encode(), _dump(message), "signature"


MUTATIONS: list[Callable[[random.Random], Bad]] = [
    invalid_json,
    wrong_type,
    missing_field,
    unknown_type,
    oversized,
    absurd_size,
    bad_time,
    bad_id,
    empty_key,
    other_key,
    unsigned_tick,
]


async def test_fuzzed_inputs_are_dead_lettered_and_valid_ones_decided(
    stack_settings: Settings,
) -> None:
    rng = random.Random(SEED)
    settings = stack_settings.model_copy(update={"batch_max_records": 500})
    topics = settings.topics
    topic_of = {
        "capacity": topics.capacity,
        "bookings": topics.bookings,
        "checkins": topics.checkins,
    }
    bad = [MUTATIONS[n % len(MUTATIONS)](rng) for n in range(BAD)]
    good = [valid(rng, n) for n in range(GOOD)]
    items: list[Bad | AnyInput] = [*bad, *good]
    rng.shuffle(items)
    await produce(settings, [configured(room) for room in ROOMS])
    async with running(settings, ("authority", "relay")) as services:
        producer = make_producer(settings)
        await producer.start()
        try:
            sent: list[tuple[asyncio.Future[Any], Bad | AnyInput]] = []
            for item in items:
                if isinstance(item, tuple):
                    kind, key, value, _ = item
                    future = await producer.send(topic_of[kind], key=key, value=value)
                else:
                    future = await producer.send(
                        topic_of[_kind(item)],
                        key=item.room_id.encode(),
                        value=item.model_dump_json().encode(),
                    )
                sent.append((future, item))
            expected: dict[tuple[str, int, int], str] = {}
            values: dict[tuple[str, int, int], bytes] = {}
            for future, item in sent:
                meta = await future
                if isinstance(item, tuple):
                    expected[(meta.topic, meta.partition, meta.offset)] = item[3]
                    values[(meta.topic, meta.partition, meta.offset)] = item[2][:300]
        finally:
            await producer.stop()
        # The consumer goes on: an input sent after all of it is decided too.
        marker = Checkin(
            event_id=uuid.uuid4(), occurred_at=now(), room_id=ROOMS[0], kiosk_id="k", party_size=1
        )
        await produce(settings, [marker])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while True:
            decisions = await read_topic(settings, topics.decisions, expect=GOOD + len(ROOMS) + 1)
            caused = Counter(d["caused_by"] for d in decisions)
            if str(marker.event_id) in caused or loop.time() > deadline:
                break
        letters = await read_topic(settings, topics.dead_letters, expect=BAD)
        assert services.ready.is_set()
    by_position = {(x["topic"], x["partition"], x["offset"]): x for x in letters}
    assert len(by_position) == len(letters), "a bad record was dead-lettered twice"
    missing = [(values[p], want) for p, want in expected.items() if p not in by_position]
    assert not missing, f"{len(missing)} bad records not dead-lettered, e.g. {missing[:3]}"
    assert by_position.keys() == expected.keys(), "a valid input was dead-lettered"
    wrong = [
        (by_position[p]["reason"], want)
        for p, want in expected.items()
        if want not in by_position[p]["reason"]
    ]
    assert not wrong, f"{len(wrong)} reasons do not name the problem, e.g. {wrong[:3]}"
    for event in [*good, marker]:
        assert caused[str(event.event_id)] == 1, (event.type, caused[str(event.event_id)])
    assert len(decisions) == GOOD + len(ROOMS) + 1
