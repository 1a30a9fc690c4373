"""Capacity change on a room with many future bookings: ``bench/capacity_probe.py`` as a
child in the measured checkout, killed if it takes longer than the time limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.probe import run_probe

PROBE = REPO / "bench" / "capacity_probe.py"


def capacity_change(service_cwd: Path, bookings: int, timeout_s: float) -> dict[str, Any]:
    args = ["--bookings", str(bookings), "--expect-root", str(service_cwd)]
    outcome = run_probe(PROBE, args, service_cwd, timeout_s)
    if outcome.status != "done":
        return {
            "status": outcome.status,
            "bookings": bookings,
            "detail": outcome.detail,
            "decide_s": None,
            "wall_s": outcome.wall_s,
        }
    return outcome.result | {"status": "done", "wall_s": outcome.wall_s}
