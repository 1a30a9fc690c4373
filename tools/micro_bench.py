"""Profiling aid (not a benchmark target): the per-call cost of three things a room touched for
the first time pays, each against the way it was done before, in one process.

    python tools/micro_bench.py

- ``Room.latest_closing`` through the room's remembered opening windows, against
  ``opening_hours.latest_closing`` and the room's check that no opening starts there (as
  ``Room.latest_closing`` did before ``6024c1c``): a configuration and a clock tick ask it.
- ``Decider.common``, whose decision id hashes the name's fixed part once per input, against
  ``uuid.uuid5`` of the whole name (before ``8a1a9dd``).
- An aggregate's JSON from its document (``aggregate_json``), against a ``UsageMonthly`` model
  built from it and dumped (before ``8560f58``; ``tools/fold_bench.py`` with ``AS_MODEL=1``
  measures the same over a whole fold).

Best of five rounds of each, in microseconds per call.
"""
import sys
import timeit
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from consumers.statistics import aggregate_json
from domain import opening_hours
from domain.capacity.decider import _DECISION_NAMESPACE, Decider
from domain.usage import RoomUsage
from domain.usage.month import MonthUsage
from schemas.outputs import UsageMonthly
from tests.test_capacity_rules import new_room

NUMBER = 20_000


def per_call(action) -> float:
    return min(timeit.repeat(action, number=NUMBER, repeat=5)) / NUMBER * 1e6


def show(what: str, now_us: float, before_us: float) -> None:
    print(f"{what}: {now_us:.1f} us a call, before {before_us:.1f} us ({before_us / now_us:.1f}x)")


now = datetime.now(UTC)
room = new_room()  # 09:00-22:00, Asia/Seoul
hours = room._hours()
show(
    "Room.latest_closing",
    per_call(lambda: room.latest_closing(now)),
    per_call(lambda: room._reopens_at(opening_hours.latest_closing(now, *hours))),
)

decider = Decider(uuid.uuid4(), uuid.uuid4(), room, now)
show(
    "Decider.common",
    per_call(lambda: decider.common(room.room_id)),
    per_call(lambda: decider.common(room.room_id)) - per_call(decider.decision_id)
    + per_call(lambda: uuid.uuid5(_DECISION_NAMESPACE, f"{decider.source}:{len(decider.out)}")),
)

usage = RoomUsage("bench-c001.r01")
month = MonthUsage()
month.counts["visits"] = 5
month.peak_occupancy, month.peak_at = 3, now.astimezone(timezone(timedelta(hours=9)))
month.slots_counted, month.slots = True, {"Asia/Seoul": {33: 100, 34: 3600}}
usage.months["2026-12"] = month
show(
    "an aggregate's JSON",
    per_call(lambda: aggregate_json(usage.aggregate_document("2026-12", now))),
    per_call(
        lambda: UsageMonthly.model_construct(
            **usage.aggregate_document("2026-12", now)
        ).model_dump_json()
    ),
)
