"""Issue 7: the small ``make chaos`` run, part of ``make test``.

``python -m chaos`` with 10,000 inputs over 200 rooms: two room-authority processes, the
relay, the statistics and the clock as separate processes on a broker of its own (other
ports, its own home: it restarts that broker, never the shared test broker), three
SIGKILLs at random moments, a third authority that joins and leaves, the broker killed and
started again. Then the checker compares everything that landed with the reference model
(docs/chaos.md). The full size is ``make chaos`` (and ``make chaos BROKERS=3``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_small_chaos_run_loses_duplicates_and_miscounts_nothing(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "chaos", "--inputs", "10000", "--rooms", "200"]
    command += ["--kills", "3", "--rate", "250", "--rebalances", "1", "--seed", "7"]
    command += ["--port", str(port), "--controller-port", str(controller)]
    command += ["--run-dir", str(tmp_path / "run"), "--report", str(report)]
    command += ["--settle-timeout", "240"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    result = json.loads(report.read_text())
    counts, faults = result["counts"], result["faults"]
    # 10,000 sent after the 200 configurations: 5 % of them clock ticks, which decide nothing.
    assert counts["clock ticks"] > 300
    assert counts["inputs (distinct event ids)"] + counts["clock ticks"] >= 10_000
    assert counts["re-sends (same event id again)"] > 100
    assert counts["decisions read"] == counts["inputs (distinct event ids)"] > 9_000
    for problem in ("lost", "duplicated", "wrong", "over capacity", "aggregate mismatches"):
        assert counts[problem] == 0, problem
    assert faults["kills"] == 3 and faults["restarts"] >= 3
    assert faults["rebalances"] == 2 and faults["broker_restarts"] == 1
    assert "| result" in done.stdout and "PASS" in done.stdout
