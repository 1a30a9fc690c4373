"""Capacity change on a room with many future bookings: ``bench/capacity_probe.py`` as a
child in the measured checkout, killed if it takes longer than the time limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO

PROBE = REPO / "bench" / "capacity_probe.py"
# ``-c`` puts the cwd (the measured checkout) first on sys.path; run_path does not add
# the probe's own directory, so ``domain`` comes from the cwd.
RUNNER = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def capacity_change(service_cwd: Path, bookings: int, timeout_s: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    command = [sys.executable, "-c", RUNNER, str(PROBE), "--bookings", str(bookings)]
    command += ["--expect-root", str(service_cwd)]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=service_cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "bookings": bookings,
            "detail": f"no answer in {timeout_s:.0f}s (the probe was killed)",
            "decide_s": None,
            "wall_s": round(time.perf_counter() - started, 1),
        }
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        return {
            "status": "crashed",
            "bookings": bookings,
            "detail": f"exit {done.returncode}: {tail}",
            "decide_s": None,
            "wall_s": round(time.perf_counter() - started, 1),
        }
    result: dict[str, Any] = json.loads(lines[-1])
    result["status"] = "done"
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result
