"""``make bench``: the whole ``spaces run`` against a bare Kafka loop, on the real broker.

Every comparison is a ratio of two figures measured in this one run, on this machine,
with the same broker; nothing here is a target checked by a unit test. Scenarios (see
docs/benchmarks.md for exactly how each figure is taken):

scale     1,000 shared rooms (50 centers of 20) and 100,000 mixed inputs, produced before
          anything consumes them; the ceiling loop (``bench.ceiling``), then ``spaces run``
          on SQLite, then on PostgreSQL, each on its own copy of the inputs. Inputs/s and
          the ratio to the ceiling (target >= 0.5x). RSS of ``spaces run`` after 10,000
          and 100,000 inputs decided in the SQLite run (target: growth <= 50 MiB). Event
          ids are version 7, as the contract recommends; one more SQLite run with random
          (version 4) ids shows what those cost (informational).
latency   kiosk inputs offered open-loop at 200/s and 1,000/s for 20 s each, to
          ``spaces run`` on SQLite with 1,000 rooms, and to the ceiling loop: achieved
          rate, p50 and p99 (targets: p99 <= 100 ms at 200/s; p99 <= 2x the ceiling's at
          1,000/s).
sweep     20,000 mixed inputs over 10, 1,000 and 10,000 rooms, ``spaces run`` on SQLite:
          the 10,000-room rate within 30 % of the 10-room rate.
capacity  ``decide(room, RoomCapacityChanged, now)`` on a room holding 10,000 future
          bookings, in a child with a 120 s limit (target < 1 s).
national  28,000 rooms (about the public resources GongyuNuri lists) and 100,000 mixed
          inputs, ``spaces run`` on SQLite: that it finishes, its rate, CPU and RSS, against
          the scale scenario's 1,000 rooms (informational: the issue names no target).
history   both consumers in-process (``tools/consumer_bench.py``, no Kafka), 20,000 mixed
          inputs over 1,000 rooms, with an empty id memory and with 1,000,000 ids
          remembered first, twice alternating: CPU per input and the ratio (informational;
          flat is 1.0).

    .venv/bin/python -m bench.run [--quick]
        [--only scale,latency,sweep,national,capacity,history]
        [--service-cwd DIR] [--no-postgres] [--output artifacts/bench.json]

The figures are printed as a table (value, target, pass/fail) and written to
``artifacts/bench.json`` with the machine, the git commit(s) and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.capacity import capacity_change
from bench.common import (
    REPO,
    WARM_BROKER_US,
    Broker,
    Check,
    PgDatabases,
    broker_down,
    broker_up,
    git_revision,
    machine,
    native_status,
    postgres_server,
)
from bench.context import Context
from bench.history import history_cost
from bench.latency import kiosk_latency
from bench.throughput import RunResult, pre_produced
from bench.traffic import SEED, centers, layout
from infra.settings import Settings

log = logging.getLogger("bench")

OUTPUT = Path("artifacts/bench.json")
SCENARIOS = ("scale", "latency", "sweep", "national", "capacity", "history")
LATENCY_TARGETS = (
    ("ceiling", "ceiling loop"),
    ("ceiling-eos", "exactly-once ceiling loop"),
    ("service", "spaces run, SQLite"),
)
"""The loops the latency scenario measures, in order, and their names in the table."""
STALL_S = 60.0

RANDOM_IDS = "sqlite-random-ids"
"""The scale scenario's extra run: SQLite, inputs named by random (version 4) event ids, as
from producers that ignore the contract's advice to use version 7 (``producers.ids``).
Informational: what random ids cost the service."""

TARGET_RATIO = 0.5
TARGET_RSS_GROWTH_MIB = 50.0
TARGET_P99_200_MS = 100.0
TARGET_P99_RATIO_1000 = 2.0
TARGET_SWEEP_SPREAD = 0.30
TARGET_CAPACITY_S = 1.0


@dataclass(frozen=True)
class Sizes:
    scale_rooms: int
    scale_inputs: int
    rss_at: tuple[int, int]
    latency_rooms: int
    latency_s: float
    rates: tuple[int, int]
    sweep_inputs: int
    sweep_rooms: tuple[int, ...]
    national_rooms: int
    national_inputs: int
    bookings: int
    capacity_timeout_s: float
    max_run_s: float
    history_rooms: int
    history_inputs: int
    histories: tuple[int, ...]


FULL = Sizes(
    scale_rooms=1000,
    scale_inputs=100_000,
    rss_at=(10_000, 100_000),
    latency_rooms=1000,
    latency_s=20.0,
    rates=(200, 1000),
    sweep_inputs=20_000,
    sweep_rooms=(10, 1000, 10_000),
    national_rooms=28_000,
    national_inputs=100_000,
    bookings=10_000,
    capacity_timeout_s=120.0,
    max_run_s=900.0,
    history_rooms=1000,
    history_inputs=20_000,
    histories=(0, 1_000_000),
)
QUICK = Sizes(
    scale_rooms=100,
    scale_inputs=5_000,
    rss_at=(1_000, 5_000),
    latency_rooms=200,
    latency_s=5.0,
    rates=(200, 1000),
    sweep_inputs=2_000,
    sweep_rooms=(10, 100, 1000),
    national_rooms=2_000,
    national_inputs=2_000,
    bookings=2_000,
    capacity_timeout_s=60.0,
    max_run_s=240.0,
    history_rooms=100,
    history_inputs=2_000,
    histories=(0, 50_000),
)


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- scenarios


async def scale(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    rooms = layout(sizes.scale_rooms)
    out: dict[str, Any] = {
        "rooms": len(rooms),
        "centers": centers(rooms),
        "mixed_inputs": sizes.scale_inputs,
    }
    runs: list[tuple[str, str, str | None]] = [
        ("ceiling", "ceiling", None),
        ("ceiling-eos", "ceiling-eos", None),
        ("sqlite", "service", "sqlite"),
        ("postgresql", "service", "postgresql"),
        (RANDOM_IDS, "service", "sqlite"),
    ]
    for key, target, backend in runs:
        if backend == "postgresql" and ctx.pg is None:
            out[key] = {"skipped": ctx.pg_note}
            say(f"  scale/{key}: skipped ({ctx.pg_note})")
            continue
        rss_at = sizes.rss_at if target == "service" and key != RANDOM_IDS else ()
        result = await pre_produced(
            ctx,
            f"scale-{key}",
            target,
            rooms,
            sizes.scale_inputs,
            SEED,
            backend,
            rss_at,
            random_ids=key == RANDOM_IDS,
        )
        out[key] = result.as_dict()
        say(f"  scale/{key}: {describe(result)}")
    return out


async def sweep(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {"mixed_inputs": sizes.sweep_inputs, "runs": []}
    for count in sizes.sweep_rooms:
        rooms = layout(count)
        result = await pre_produced(
            ctx, f"sweep-{count}", "service", rooms, sizes.sweep_inputs, SEED + count, "sqlite"
        )
        out["runs"].append(result.as_dict())
        say(f"  sweep/{count} rooms: {describe(result)}")
    return out


async def national(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    """The whole service with every room of a national portal, each configured first."""
    rooms = layout(sizes.national_rooms)
    inputs = len(rooms) + sizes.national_inputs
    result = await pre_produced(
        ctx,
        "national",
        "service",
        rooms,
        sizes.national_inputs,
        SEED + sizes.national_rooms,
        "sqlite",
        (len(rooms), inputs),
    )
    say(f"  national/{len(rooms)} rooms: {describe(result)}")
    return {"rooms": len(rooms), "mixed_inputs": sizes.national_inputs, "run": result.as_dict()}


async def latency(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {"rooms": sizes.latency_rooms, "window_s": sizes.latency_s}
    for target, _ in LATENCY_TARGETS:
        result = await kiosk_latency(ctx, target, sizes.latency_rooms, sizes.rates, sizes.latency_s)
        out[target] = result
        windows = ", ".join(
            f"{w['offered_per_s']}/s: {w['achieved_per_s']}/s achieved, p50 {w['p50_ms']} ms, "
            f"p99 {w['p99_ms']} ms"
            for w in result["windows"]
        )
        say(f"  latency/{target}: {result['status']}; {windows or result.get('detail', '')}")
    return out


async def capacity(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    result = await asyncio.to_thread(
        capacity_change, ctx.service_cwd, sizes.bookings, sizes.capacity_timeout_s
    )
    say(
        f"  capacity change with {sizes.bookings} bookings: {result['status']}, "
        f"decide {result.get('decide_s')} s"
    )
    return result


async def history(ctx: Context, sizes: Sizes) -> dict[str, Any]:
    result = await asyncio.to_thread(
        history_cost,
        ctx.service_cwd,
        sizes.history_rooms,
        sizes.history_inputs,
        sizes.histories,
        sizes.max_run_s,
    )
    for run in result["runs"]:
        say(
            f"  history/{run['history']:,} ids remembered: {run['status']}, "
            f"room authority {run.get('authority_us')} us/input, "
            f"statistics {run.get('statistics_us')} us/decision {run.get('detail', '')}"
        )
    return result


def describe(result: RunResult) -> str:
    text = f"{result.status}, {result.inputs} inputs"
    if result.rate is not None:
        text += f", {result.rate:.0f} inputs/s ({result.seconds} s)"
    if result.status != "done":
        text += f" [{result.detail}]"
    return text


async def run_all(ctx: Context, sizes: Sizes, only: Sequence[str]) -> dict[str, Any]:
    jobs: dict[str, Callable[[Context, Sizes], Awaitable[dict[str, Any]]]] = {
        "scale": scale,
        "latency": latency,
        "sweep": sweep,
        "national": national,
        "capacity": capacity,
        "history": history,
    }
    figures: dict[str, Any] = {}
    for name in SCENARIOS:
        if name not in only:
            continue
        say(f"{name} ...")
        began = time.monotonic()
        try:
            figures[name] = await jobs[name](ctx, sizes)
        except Exception as error:
            say(f"  {name} failed: {error!r}")
            figures[name] = {"error": repr(error), "traceback": traceback.format_exc()}
        figures[name]["elapsed_s"] = round(time.monotonic() - began, 1)
    return figures


# --------------------------------------------------------------------------- checks


def checks(figures: dict[str, Any], sizes: Sizes) -> list[Check]:
    out: list[Check] = []
    if "scale" in figures:
        out += scale_checks(figures["scale"], sizes)
    if "latency" in figures:
        out += latency_checks(figures["latency"])
    if "sweep" in figures:
        out += sweep_checks(figures["sweep"])
    if "national" in figures:
        out += national_checks(figures["national"], figures.get("scale"))
    if "capacity" in figures:
        out += capacity_checks(figures["capacity"], sizes)
    if "history" in figures:
        out += history_checks(figures["history"])
    return out


def _run_note(run: dict[str, Any]) -> str:
    if "skipped" in run:
        return f"skipped: {run['skipped']}"
    if run.get("status") != "done":
        return f"{run.get('status')}: {run.get('detail')}"
    return ""


def _tail(run: dict[str, Any], figure: str) -> list[Check]:
    """The seconds from a service run's last decision to its last aggregate (informational:
    how long the statistics trail the room authority), when both were measured."""
    seconds, decisions = run.get("seconds"), run.get("decisions_seconds")
    if seconds is None or decisions is None:
        return []
    return [Check(figure, round(seconds - decisions, 2), "s", "-", None)]


def cpu_per_input(run: dict[str, Any]) -> float | None:
    """Microseconds of CPU per input of a run's own processes (``RunResult.cpu_s``)."""
    used = (run.get("cpu_s") or {}).get("consumer")
    inputs = run.get("inputs")
    if not used or not inputs or run.get("status") != "done":
        return None
    return round(float(used) / int(inputs) * 1e6, 1)


def _rss_samples(run: dict[str, Any]) -> dict[int, float]:
    """RSS of a run's ``spaces run`` (MiB) by inputs decided when it was sampled."""
    return {s["decided"]: s["rss_mib"] for s in run.get("rss_mib", []) if not s.get("final")}


def _cpu(run: dict[str, Any], ceiling: dict[str, Any] | None = None) -> list[Check]:
    """Informational: the CPU per input of a run, by process and the broker's, and how
    many times the ceiling loop's. Steadier than a rate on a shared machine, and what
    bounds the rate: on N cores no run goes faster than N / (its CPU per input)."""
    mine = cpu_per_input(run)
    if mine is None:
        return []
    cpu = run["cpu_s"]
    processes = cpu.get("by_process", {})

    def role(name: str) -> str:  # "123 --only statistics" -> "statistics"
        if len(processes) == 1:
            return str(run.get("target", name))
        if "--only " not in name:
            return "supervisor"  # ``spaces run`` starting one process per role
        return name.split("--only ", 1)[1]

    per_input = {
        role(name): seconds / run["inputs"] * 1e6 for name, seconds in sorted(processes.items())
    }
    parts = [f"{name} {us:.0f}" for name, us in per_input.items() if us >= 1]
    if cpu.get("broker") is not None:
        parts.append(f"broker {cpu['broker'] / run['inputs'] * 1e6:.0f}")
    if cpu.get("database") is not None:  # a PostgreSQL server's own; SQLite's is in-process
        parts.append(f"PostgreSQL {cpu['database'] / run['inputs'] * 1e6:.0f}")
    out = [Check("  CPU per input (its processes)", mine, "us", "-", None, "; ".join(parts))]
    theirs = cpu_per_input(ceiling) if ceiling else None
    if theirs:
        out.append(Check("  CPU per input / ceiling's", round(mine / theirs, 2), "x", "-", None))
    return out


def _of_ceiling(rate: float | None, ceiling: dict[str, Any]) -> float | None:
    """``rate`` as a multiple of the ceiling run's rate; None when either is missing."""
    return rate / ceiling["rate"] if rate and ceiling.get("rate") else None


def scale_checks(scale: dict[str, Any], sizes: Sizes) -> list[Check]:
    if "error" in scale:
        return [Check("scale scenario", None, "", "runs", False, scale["error"])]
    label = f"{sizes.scale_inputs:,} mixed + {sizes.scale_rooms:,} room.configured"
    ceiling = scale.get("ceiling", {})
    out = [
        Check(
            f"ceiling loop ({label})",
            ceiling.get("rate"),
            "inputs/s",
            "-",
            None,
            _run_note(ceiling),
        )
    ]
    out.extend(_cpu(ceiling))
    eos = scale.get("ceiling-eos")
    if eos is not None:  # informational: what Kafka's transactions alone cost
        eos_rate = eos.get("rate")
        out.append(
            Check(
                f"exactly-once ceiling loop ({label})",
                eos_rate,
                "inputs/s",
                "-",
                None,
                _run_note(eos),
            )
        )
        eos_ratio = _of_ceiling(eos_rate, ceiling)
        out.append(
            Check(
                "  exactly-once ceiling / ceiling",
                round(eos_ratio, 2) if eos_ratio else None,
                "x",
                "-",
                None,
            )
        )
    for backend, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        run = scale.get(backend, {})
        rate = run.get("rate")
        note = _run_note(run)
        out.append(Check(f"spaces run, {name} ({label})", rate, "inputs/s", "-", None, note))
        out.extend(_tail(run, "  last aggregate after the last decision"))
        out.extend(_cpu(run, ceiling))
        ratio = _of_ceiling(rate, ceiling)
        passed = None if "skipped" in run else bool(ratio and ratio >= TARGET_RATIO and not note)
        out.append(
            Check(
                f"  {name} / ceiling",
                round(ratio, 2) if ratio else None,
                "x",
                f">= {TARGET_RATIO}",
                passed,
                note,
            )
        )
    random_ids = scale.get(RANDOM_IDS)
    if random_ids is not None:  # informational (a report from before it was measured: none)
        rate = random_ids.get("rate")
        note = _run_note(random_ids)
        out.append(
            Check(
                f"spaces run, SQLite, random (version 4) event ids ({label})",
                rate,
                "inputs/s",
                "-",
                None,
                note,
            )
        )
        out.extend(_cpu(random_ids, ceiling))
        ratio = _of_ceiling(rate, ceiling)
        out.append(
            Check(
                "  SQLite, random ids / ceiling", round(ratio, 2) if ratio else None, "x", "-", None
            )
        )
    sqlite = scale.get("sqlite", {})
    samples = _rss_samples(sqlite)
    first, second = sizes.rss_at
    a, b = samples.get(first), samples.get(second)
    out.append(Check(f"RSS of spaces run after {first:,} decided (SQLite)", a, "MiB", "-", None))
    out.append(Check(f"RSS of spaces run after {second:,} decided (SQLite)", b, "MiB", "-", None))
    growth = round(b - a, 1) if a is not None and b is not None else None
    out.append(
        Check(
            "  RSS growth",
            growth,
            "MiB",
            f"<= {TARGET_RSS_GROWTH_MIB:.0f}",
            growth is not None and growth <= TARGET_RSS_GROWTH_MIB,
            "" if growth is not None else "not measured: " + (_run_note(sqlite) or "no samples"),
        )
    )
    return out


def latency_checks(latency: dict[str, Any]) -> list[Check]:
    if "error" in latency:
        return [Check("latency scenario", None, "", "runs", False, latency["error"])]
    out: list[Check] = []
    by: dict[tuple[str, int], dict[str, Any]] = {}
    for target, _ in LATENCY_TARGETS:
        for window in latency.get(target, {}).get("windows", []):
            by[(target, int(window["offered_per_s"]))] = window
    for rate in sorted({r for _, r in by} | {200, 1000}):
        for target, name in LATENCY_TARGETS:
            window = by.get((target, rate))
            if window is None and target == "ceiling-eos" and target not in latency:
                continue  # (a report from before it was measured)
            note = "" if window else _run_note(latency.get(target, {})) or "not measured"
            if window and window.get("drain") != "done":
                note = f"not drained: {window.get('drain')}"
            w: dict[str, Any] = window or {}
            offered = f"{rate}/s offered"
            out.append(
                Check(
                    f"kiosk {offered}, {name}: achieved",
                    w.get("achieved_per_s"),
                    "/s",
                    "-",
                    None,
                    note,
                )
            )
            out.append(Check(f"kiosk {offered}, {name}: p50", w.get("p50_ms"), "ms", "-", None))
            p99 = w.get("p99_ms")
            if target == "service" and rate == 200:
                out.append(
                    Check(
                        f"kiosk {offered}, {name}: p99",
                        p99,
                        "ms",
                        f"<= {TARGET_P99_200_MS:.0f}",
                        p99 is not None and p99 <= TARGET_P99_200_MS,
                        note,
                    )
                )
            else:
                out.append(Check(f"kiosk {offered}, {name}: p99", p99, "ms", "-", None, note))
        service, ceiling = by.get(("service", rate)), by.get(("ceiling", rate))
        ratio = None
        if service and ceiling and service.get("p99_ms") and ceiling.get("p99_ms"):
            ratio = round(service["p99_ms"] / ceiling["p99_ms"], 2)
        target_text, passed = "-", None
        if rate == 1000:
            target_text, passed = (
                f"<= {TARGET_P99_RATIO_1000:.0f}",
                ratio is not None and ratio <= TARGET_P99_RATIO_1000,
            )
        out.append(
            Check(f"  p99 spaces run / ceiling at {rate}/s", ratio, "x", target_text, passed)
        )
        eos = by.get(("ceiling-eos", rate))
        if eos and ceiling and eos.get("p99_ms") and ceiling.get("p99_ms"):
            out.append(
                Check(
                    f"  p99 exactly-once ceiling / ceiling at {rate}/s",
                    round(eos["p99_ms"] / ceiling["p99_ms"], 2),
                    "x",
                    "-",
                    None,
                )
            )
    return out


def sweep_checks(sweep: dict[str, Any]) -> list[Check]:
    if "error" in sweep:
        return [Check("size sweep", None, "", "runs", False, sweep["error"])]
    runs = sweep.get("runs", [])
    out = [
        Check(
            f"sweep: {run['rooms']:,} rooms, {run['inputs'] - run['rooms']:,} mixed inputs "
            f"+ {run['rooms']:,} room.configured (SQLite)",
            run.get("rate"),
            "inputs/s",
            "-",
            None,
            _run_note(run),
        )
        for run in runs
    ]
    for run in runs:
        out.extend(_tail(run, f"  last aggregate after the last decision, {run['rooms']:,} rooms"))
        out.extend(
            replace(check, figure=f"{check.figure}, {run['rooms']:,} rooms") for check in _cpu(run)
        )
    if len(runs) >= 2:
        small, large = runs[0], runs[-1]
        ok = small.get("status") == "done" and large.get("status") == "done"
        ratio = (
            round(large["rate"] / small["rate"], 2)
            if large.get("rate") and small.get("rate")
            else None
        )
        out.append(
            Check(
                f"  rate {large['rooms']:,} rooms / {small['rooms']:,} rooms",
                ratio,
                "x",
                f"{1 - TARGET_SWEEP_SPREAD:.1f}..{1 + TARGET_SWEEP_SPREAD:.1f}",
                ok and ratio is not None and abs(ratio - 1) <= TARGET_SWEEP_SPREAD,
            )
        )
    return out


def national_checks(national: dict[str, Any], scale: dict[str, Any] | None) -> list[Check]:
    """Informational: the national-scale run, and how it compares with the scale
    scenario's SQLite run of 1,000 rooms (rate, CPU per input) when both ran."""
    if "error" in national:
        return [Check("national scale", None, "", "runs", False, national["error"])]
    run = national.get("run", {})
    rooms, mixed = national.get("rooms", 0), national.get("mixed_inputs", 0)
    note = _run_note(run)
    out = [
        Check(
            f"national scale: {rooms:,} rooms, {mixed:,} mixed inputs "
            f"+ {rooms:,} room.configured (SQLite)",
            run.get("rate"),
            "inputs/s",
            "-",
            None,
            note,
        )
    ]
    out.extend(_tail(run, "  last aggregate after the last decision"))
    usage = run.get("usage") or {}
    if usage.get("aggregates_read") is not None:
        out.append(
            Check(
                "  usage-monthly aggregates sent",
                usage["aggregates_read"],
                "",
                "-",
                None,
                "" if usage.get("caught_up") else "they do not add up to the decisions",
            )
        )
    scale = scale or {}
    out.extend(_cpu(run, scale.get("ceiling")))
    small = scale.get("sqlite") or {}
    if not note and small.get("status") == "done":
        ratio = (
            round(run["rate"] / small["rate"], 2) if run.get("rate") and small.get("rate") else None
        )
        out.append(Check(f"  rate / scale run's ({small['rooms']:,} rooms)", ratio, "x", "-", None))
        theirs, mine = cpu_per_input(small), cpu_per_input(run)
        if theirs and mine:
            out.append(
                Check(
                    f"  CPU per input / scale run's ({small['rooms']:,} rooms)",
                    round(mine / theirs, 2),
                    "x",
                    "-",
                    None,
                )
            )
    samples = _rss_samples(run)
    for decided in sorted(samples):
        out.append(
            Check(
                f"  RSS of spaces run after {decided:,} decided", samples[decided], "MiB", "-", None
            )
        )
    return out


def capacity_checks(result: dict[str, Any], sizes: Sizes) -> list[Check]:
    note = (
        "" if result.get("status") == "done" else f"{result.get('status')}: {result.get('detail')}"
    )
    value = result.get("decide_s")
    size = result.get("state_json_bytes")
    return [
        Check(
            f"room state JSON with {sizes.bookings:,} bookings (Room.to_json)",
            round(size / 1024, 1) if size else None,
            "KiB",
            "-",
            None,
        ),
        Check(
            f"capacity change, room with {sizes.bookings:,} bookings: decide",
            value,
            "s",
            f"< {TARGET_CAPACITY_S:.0f}",
            value is not None and value < TARGET_CAPACITY_S,
            note or f"{result.get('conflicting_bookings')} conflicting bookings listed",
        ),
    ]


def history_checks(result: dict[str, Any]) -> list[Check]:
    """Informational: what each consumer costs per input with N ids remembered, and the
    ratio of the longest memory's to the empty one's (1.0 is flat in history)."""
    if "error" in result:
        return [Check("id memory", None, "", "runs", False, result["error"])]
    runs = result.get("runs", [])
    out: list[Check] = []
    for run in runs:
        done = run.get("status") == "done"
        where = (
            f"id memory: {run['history']:,} ids remembered, "
            f"{result.get('mixed_inputs', 0):,} mixed inputs over {result.get('rooms', 0):,} rooms"
        )
        note = "" if done else f"{run.get('status')}: {run.get('detail')}"
        written = run.get("bytes_per_input") or {}
        out += [
            Check(f"{where}: room authority", run.get("authority_us"), "us/input", "-", None, note),
            Check("  statistics", run.get("statistics_us"), "us/decision", "-", None),
            Check(
                "  bytes the statistics wrote per decision (SQLite's WAL, mostly)",
                written.get("statistics"),
                "B",
                "-",
                None,
                f"room authority: {written.get('authority')} per input" if written else "",
            ),
        ]
    if len(runs) >= 2 and all(run.get("status") == "done" for run in runs):
        empty, longest = runs[0], runs[-1]
        for name, key in (("room authority", "authority_us"), ("statistics", "statistics_us")):
            ratio = (
                round(longest[key] / empty[key], 2) if longest.get(key) and empty.get(key) else None
            )
            out.append(
                Check(
                    f"  {name}: {longest['history']:,} ids remembered / {empty['history']:,}",
                    ratio,
                    "x",
                    "-",
                    None,
                )
            )
    return out


# --------------------------------------------------------------------------- report


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _value(check: dict[str, Any]) -> str:
    value = check["value"]
    if value is None:
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
    return f"{text} {check['unit']}".strip()


def _commit(git: dict[str, Any]) -> str:
    if not git:
        return "no git"
    return f"{git['commit']}{' + uncommitted changes' if git['dirty'] else ''}"


def _cold_broker_warning(report: dict[str, Any]) -> list[str]:
    """A warning when the ceiling run met a broker still warming up (its own CPU per input)."""
    ceiling = (report.get("figures") or {}).get("scale", {}).get("ceiling") or {}
    broker_s, inputs = (ceiling.get("cpu_s") or {}).get("broker"), ceiling.get("inputs")
    if broker_s is None or not inputs:
        return []
    broker_us = broker_s / inputs * 1e6
    if broker_us <= WARM_BROKER_US:
        return []
    up_s = report["broker"].get("up_s")
    age = "" if up_s is None else f" (up {up_s:.0f} s when the bench began)"
    return [
        f"  WARNING: the broker spent {broker_us:.0f} us of CPU per input in the ceiling run, "
        f"more than a warm one ({WARM_BROKER_US:.0f}){age}: the ceiling ran slow, so every "
        "ratio to it reads too high. Warm the broker up with a few runs of the scale scenario "
        "(`MIXED=1 .venv/bin/python tools/scale_run.py 1000 100000`; one of 5,000 inputs was "
        "not enough), then `make bench` again."
    ]


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    git = report["git"]
    service = git.get("service") or {}
    out = [
        f"bench: {report['command']}",
        f"  {report['date']}, {m['nproc']} cores ({m['cpu']}), Python {m['python']}, "
        f"SQLite {m['sqlite']}, load {m['loadavg_at_start']}",
        *(
            f"  WARNING: a spaces service was already running, and took CPU from every run: {p}"
            for p in m.get("other_service_processes") or ()
        ),
        f"  broker {report['broker']['bootstrap']} ({report['broker']['note']})",
        *_cold_broker_warning(report),
        f"  service measured: {report['service_cwd']} at {_commit(service)}"
        f"{' (only ' + report['service_parts'] + ')' if report.get('service_parts') else ''}; "
        f"bench: {_commit(git.get('bench') or {})}",
        f"  service code: {report.get('service_native') or 'not recorded'}",
        "",
    ]
    rows = [["figure", "value", "target", "result", "note"]]
    mark = {True: "PASS", False: "FAIL", None: ""}
    for check in report["checks"]:
        rows.append(
            [
                check["figure"],
                _value(check),
                check["target"],
                mark[check["pass"]],
                check["note"].replace("\n", " ")[:90],
            ]
        )
    out.append(table(rows))
    out += ["", f"wrote {report['output']} in {report['elapsed_s']:.0f} s"]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=summary)
    parser.add_argument("--quick", action="store_true", help="small sizes, a ~2 minute smoke run")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--service-cwd",
        type=Path,
        default=REPO,
        help="the checkout whose `spaces run` (and domain, for the capacity scenario) is "
        f"measured; default {REPO}",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL run")
    parser.add_argument("--service-log-level", default="INFO", help="`spaces run --log-level`")
    parser.add_argument(
        "--service-parts",
        help="`spaces run --only` (e.g. authority,relay,clock: the kiosk path without the "
        "statistics); for the latency scenario: runs that wait for usage-monthly stall without "
        "the statistics",
    )
    parser.add_argument("--scale-inputs", type=int, help="mixed inputs of the scale scenario")
    parser.add_argument("--scale-rooms", type=int, help="rooms of the scale scenario")
    parser.add_argument("--latency-seconds", type=float, help="length of each latency window")
    parser.add_argument("--sweep-inputs", type=int, help="mixed inputs of each sweep run")
    parser.add_argument("--bookings", type=int, help="bookings of the capacity-change room")
    parser.add_argument("--stall-s", type=float, default=STALL_S, help="no progress = stalled")
    parser.add_argument("--max-run-s", type=float, help="limit of one consumer run")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default {OUTPUT}")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    args.service_cwd = args.service_cwd.resolve()
    if not (args.service_cwd / "entrypoints" / "cli.py").is_file():
        parser.error(f"{args.service_cwd} has no entrypoints/cli.py")
    return args


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    if args.scale_inputs:
        points = (max(1, args.scale_inputs // 10), args.scale_inputs)
        sizes = replace(sizes, scale_inputs=args.scale_inputs, rss_at=points)
    if args.scale_rooms:
        sizes = replace(sizes, scale_rooms=args.scale_rooms)
    if args.latency_seconds:
        sizes = replace(sizes, latency_s=args.latency_seconds)
    if args.sweep_inputs:
        sizes = replace(sizes, sweep_inputs=args.sweep_inputs)
    if args.bookings:
        sizes = replace(sizes, bookings=args.bookings)
    if args.max_run_s:
        sizes = replace(sizes, max_run_s=args.max_run_s)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Fresh topics answer NOT_LEADER for a moment; aiokafka logs each retry it then makes
    # (some at ERROR). A failure that matters raises, and the bench reports it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    began = time.monotonic()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    settings = Settings()
    host = machine()
    git = {"bench": git_revision(REPO), "service": git_revision(args.service_cwd)}
    native = native_status(args.service_cwd)

    pg: PgDatabases | None = None
    pg_note = "not part of this run"
    if "scale" in args.only:
        if args.no_postgres:
            pg_note = "--no-postgres"
        else:
            url, pg_note = postgres_server()
            pg = PgDatabases(url) if url else None

    broker: Broker = broker_up(settings)
    say(
        f"broker {broker.bootstrap}: {broker.note}; service from {args.service_cwd}; "
        f"{'quick' if args.quick else 'full'} sizes; PostgreSQL: {pg_note}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="spaces-bench-") as tmp:
            ctx = Context(
                base=settings,
                tmp=Path(tmp),
                service_cwd=args.service_cwd,
                log_level=args.service_log_level,
                service_parts=args.service_parts,
                stall_s=args.stall_s,
                max_run_s=sizes.max_run_s,
                pg=pg,
                pg_note=pg_note,
            )
            figures = asyncio.run(run_all(ctx, sizes, args.only))
    finally:
        stopped = broker_down(settings, broker)
        if stopped:
            say(stopped)

    report: dict[str, Any] = {
        "date": date,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": str(Path.cwd()),
        "service_cwd": str(args.service_cwd),
        "service_parts": args.service_parts,
        "service_native": native,
        "git": git,
        "machine": host,
        "broker": {
            "bootstrap": settings.bootstrap,
            "note": broker.note,
            "up_s": None if broker.up_s is None else round(broker.up_s, 1),
            "kafka_version": settings.kafka_version,
            "partitions": settings.partitions,
        },
        "parameters": {
            "quick": args.quick,
            "scenarios": args.only,
            "sizes": asdict(sizes),
            "seed": SEED,
            "stall_s": args.stall_s,
            "service_log_level": args.service_log_level,
            "postgresql": pg_note,
        },
        "checks": [c.as_dict() for c in checks(figures, sizes)],
        "figures": figures,
        "output": str(args.output),
    }
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    say("")
    say(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
