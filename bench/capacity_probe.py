"""Times ``decide(room, RoomCapacityChanged(...), now)`` on a room with many bookings.

Run by ``bench.capacity`` as a child with the measured checkout as its cwd (so its
``domain`` is the one imported), under a time limit. Self-contained on purpose: it
imports only the standard library, ``domain.capacity`` and ``schemas.inputs``, never
the bench package, so it also runs against an older checkout.

The room: shared, capacity 15, open 00:00-24:00 (Asia/Seoul), holding ``--bookings``
confirmed future bookings (1-3 hours on a whole hour, party 1-4, from tomorrow on,
never more than 15 persons in any hour; seeded). It is built from its stored JSON form
(``Room.from_json``, the state the authority loads) or, if that format has changed, by
putting ``Booking`` objects into ``room.bookings``. Then capacity 15 -> 10 is decided
once and timed with ``time.perf_counter``; the decision lists the bookings the new
capacity no longer allows. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOM = "bench-c001.r01"
CAPACITY = 15
NEW_CAPACITY = 10


def booking_rows(count: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    tz = ZoneInfo("Asia/Seoul")
    rng = random.Random(seed)
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    persons: Counter[int] = Counter()
    rows: list[dict[str, Any]] = []
    days = max(1, count // 30)
    while len(rows) < count:
        length = rng.choice((1, 2, 2, 3))
        local = today + timedelta(days=rng.randint(1, days), hours=rng.randint(0, 24 - length))
        starts = local.astimezone(UTC)
        first = int(starts.timestamp() // 3600)
        party = rng.choice((1, 1, 2, 2, 3, 4))
        if any(persons[h] + party > CAPACITY for h in range(first, first + length)):
            continue
        for hour in range(first, first + length):
            persons[hour] += party
        rows.append(
            {
                "booking_id": f"bk-{len(rows):06d}",
                "member_id": f"m-{rng.randrange(2000):05d}",
                "party_size": party,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=length)).isoformat(),
                "status": "confirmed",
                "checked_in": False,
            }
        )
    return rows


def build_room(rows: list[dict[str, Any]]) -> tuple[Any, str]:
    from domain import capacity as rules

    state = {
        "room_id": ROOM,
        "center_id": "bench-c001",
        "name": "Bench room with many bookings",
        "capacity": CAPACITY,
        "booking_mode": "shared",
        "opens": "00:00",
        "closes": "24:00",
        "timezone": "Asia/Seoul",
        "occupancy": 0,
        "bookings": rows,
        "sessions": [],
        "last_closing": None,
    }
    try:
        room = rules.Room.from_json(state)
        if len(room.bookings) == len(rows):
            return room, "Room.from_json"
    except Exception as error:  # the stored format changed: build it by hand
        print(f"from_json failed ({error!r}); building the room by hand", file=sys.stderr)
    room = rules.Room(
        room_id=ROOM,
        center_id="bench-c001",
        name="Bench room with many bookings",
        capacity=CAPACITY,
        booking_mode="shared",
        opens="00:00",
        closes="24:00",
        timezone="Asia/Seoul",
    )
    for row in rows:
        room.bookings[row["booking_id"]] = rules.Booking(
            booking_id=row["booking_id"],
            member_id=row["member_id"],
            party_size=row["party_size"],
            starts_at=datetime.fromisoformat(row["starts_at"]),
            ends_at=datetime.fromisoformat(row["ends_at"]),
        )
    return room, "Booking objects in room.bookings"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--expect-root", help="fail unless domain/ is imported from here")
    args = parser.parse_args(argv)

    import domain.capacity
    from domain.capacity import decide
    from schemas.inputs import RoomCapacityChanged

    module = Path(domain.capacity.__file__ or "").resolve()
    if args.expect_root and Path(args.expect_root).resolve() not in module.parents:
        print(f"domain.capacity came from {module}, not from {args.expect_root}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    rows = booking_rows(args.bookings, args.seed, now)
    t = time.perf_counter()
    room, built = build_room(rows)
    load_s = time.perf_counter() - t
    event = RoomCapacityChanged(
        event_id=uuid.uuid4(),
        occurred_at=now,
        room_id=ROOM,
        capacity=NEW_CAPACITY,
        reason="bench",
    )
    t = time.perf_counter()
    _, decisions = decide(room, event, now)
    decide_s = time.perf_counter() - t
    first = decisions[0] if decisions else None
    conflicts = getattr(first, "conflicting_booking_ids", None)
    state_bytes: int | None = None
    try:
        state_bytes = len(json.dumps(room.to_json()).encode())
    except Exception:
        state_bytes = None
    print(
        json.dumps(
            {
                "bookings": args.bookings,
                "domain_module": str(module),
                "built_with": built,
                "build_s": round(load_s, 4),
                "decide_s": round(decide_s, 4),
                "decision": getattr(first, "type", None),
                "capacity": f"{CAPACITY} -> {NEW_CAPACITY}",
                "conflicting_bookings": len(conflicts) if conflicts is not None else None,
                "state_json_bytes": state_bytes,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
