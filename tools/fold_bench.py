"""Profiling aid (not a benchmark target): the statistics' fold alone, in-process.

    python tools/fold_bench.py [ROOMS] [INPUTS] [--profile | --memory] [--decisions FILE [--once]]

Decides the bench's mixed traffic (``bench.throughput.scenario_inputs``) with the domain's
rules, serializes and parses the decisions as the statistics get them, then times
``fold_changes`` over all of them (rooms and centers kept in memory, as the consumer
does), ``to_json`` of each state a batch of 2,000 decisions changed (its ``save``), and the
JSON of each aggregate the batch changed, as the statistics publish it; it prints the shares
of both apart. ``--memory``: what the rooms' and centers' states hold once every decision is
folded (tracemalloc), the decisions themselves not counted. ``AS_MODEL=1`` serializes each aggregate through a ``UsageMonthly`` model
instead (``aggregate().model_dump_json()``, as the statistics did before they published the
document itself): the two in one checkout, on the same decisions.

Its times move by about 10 % between runs of the same code on this machine. For a change
smaller than that, count instructions instead, which repeat exactly: ``--decisions FILE``
decides the traffic once and keeps the decisions in FILE (pickled; read back when it exists,
so two checkouts fold the very same decisions), and ``--once`` folds them once. Run the
same command under valgrind in each checkout and compare the totals, e.g.

    python tools/fold_bench.py 1000 10000 --decisions /tmp/d.pickle   # once, to write FILE
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python tools/fold_bench.py 1000 10000 --decisions /tmp/d.pickle --once 2>&1 | grep refs
"""
import os, pickle, sys, time, cProfile, pstats
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datetime import UTC, datetime
from bench.throughput import scenario_inputs
from bench.traffic import layout
from domain.capacity.dispatch import decide
from consumers.statistics import aggregate_json
from domain.usage import CenterUsage, RoomUsage, fold_changes
from schemas.decisions import DECISION_ADAPTER

ROOMS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1000
INPUTS = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 100_000
KEPT = Path(sys.argv[sys.argv.index("--decisions") + 1]) if "--decisions" in sys.argv else None
rooms: dict = {}
decisions = []
if KEPT is not None and KEPT.exists():
    decisions = pickle.loads(KEPT.read_bytes())
else:
    for event in scenario_inputs(layout(ROOMS), INPUTS, 1):
        room, out = decide(rooms.get(event.room_id), event, datetime.now(UTC))
        rooms[event.room_id] = room
        decisions += [DECISION_ADAPTER.validate_json(d.model_dump_json()) for d in out]
    if KEPT is not None:
        KEPT.write_bytes(pickle.dumps(decisions))

SAVES = [0.0, 0.0]
"""Seconds of the last run spent in ``to_json`` (the saves), and in the aggregates' JSON."""
AS_MODEL = bool(os.environ.get("AS_MODEL"))


def publish(changed: dict) -> None:
    now = datetime.now(UTC)
    for state, month in changed.values():
        if AS_MODEL:
            state.aggregate(month, now).model_dump_json()
        else:
            aggregate_json(state.aggregate_document(month, now))


def run() -> float:
    usage: dict[str, RoomUsage] = {}
    centers: dict[str, CenterUsage] = {}
    touched: dict[str, RoomUsage | CenterUsage] = {}
    changed: dict = {}
    SAVES[:] = [0.0, 0.0]
    began = time.perf_counter()
    for n, decision in enumerate(decisions, 1):
        room = usage.get(decision.room_id) or usage.setdefault(decision.room_id, RoomUsage(decision.room_id))
        center = None
        if decision.center_id:
            center = centers.get(decision.center_id) or centers.setdefault(decision.center_id, CenterUsage(decision.center_id))
        for state, month in fold_changes(room, center, decision):
            changed[id(state), month] = (state, month)
        touched["room:" + decision.room_id] = room
        if center is not None:
            touched["center:" + center.center_id] = center
        if n % 2000 == 0 or n == len(decisions):
            saving = time.perf_counter()
            for state in touched.values():
                state.to_json()
            publishing = time.perf_counter()
            SAVES[0] += publishing - saving
            publish(changed)
            SAVES[1] += time.perf_counter() - publishing
            touched.clear()
            changed.clear()
    return time.perf_counter() - began

if "--memory" in sys.argv:
    # What the states a consumer keeps hold, once every decision is folded: the decisions
    # parsed again from their JSON first (each with its own strings, as read from Kafka),
    # and dropped before the count.
    import gc, tracemalloc
    parsed = [DECISION_ADAPTER.validate_json(d.model_dump_json()) for d in decisions]
    decisions.clear()
    gc.collect()
    tracemalloc.start()
    kept: dict = {}
    for decision in parsed:
        room = kept.get(decision.room_id) or kept.setdefault(decision.room_id, RoomUsage(decision.room_id))
        center = None
        if decision.center_id:
            key = "center:" + decision.center_id
            center = kept.get(key) or kept.setdefault(key, CenterUsage(decision.center_id))
        fold_changes(room, center, decision)
    count = len(parsed)
    del parsed
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    print(f"{count} decisions over {ROOMS} rooms: the {len(kept)} states hold {held / 2**20:.1f} MiB of Python memory (peak while folding {peak / 2**20:.1f} MiB)")
elif "--profile" in sys.argv:
    profile = cProfile.Profile(); profile.enable(); run(); profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(18)
elif "--once" in sys.argv:
    print(f"{len(decisions)} decisions folded once in {run():.2f} s")
else:
    times = sorted((run(), *SAVES) for _ in range(3))
    total, saves, aggregates = times[0]
    per = 1e6 / len(decisions)
    print(f"{len(decisions)} decisions over {ROOMS} rooms: fold + save + aggregates {total:.2f} s best of 3 ({total * per:.1f} us/decision, of which save {saves * per:.1f}, aggregates {aggregates * per:.1f}{' as models' if AS_MODEL else ''})")
