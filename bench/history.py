"""Cost per input against the ids the consumers remember: ``tools/consumer_bench.py`` as a
child in the measured checkout, once with an empty id memory and once with a long one.

Every other scenario starts on an empty database, so none of them sees a cost that grows with
the ids remembered (30 days of them in a service that has been running). This one stores
them first (``HISTORY=N``) and runs the same traffic through both consumers in-process,
without Kafka: the room authority, then the statistics over its decisions, on SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.probe import run_probe

TOOL = REPO / "tools" / "consumer_bench.py"
RUNS = 3
"""Runs of the tool's passes per figure, the best kept: single runs moved by tens of percent."""


ROUNDS = 2
"""Rounds over ``histories``, alternating: this machine's speed drifts by 20 % within minutes
(one full bench printed 1.21x for the statistics where three alternating pairs of the same
command showed no difference), so each figure is the best of both rounds."""


def history_cost(
    service_cwd: Path,
    rooms: int,
    inputs: int,
    histories: tuple[int, ...],
    timeout_s: float,
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """The tool once per number of ids remembered, in ``histories``' order, ``rounds``
    times; ``runs`` has one entry per number, with each consumer's best figures of all
    rounds, and ``every_run`` each run as the tool gave it."""
    out: dict[str, Any] = {"rooms": rooms, "mixed_inputs": inputs, "runs": [], "every_run": []}
    for _ in range(rounds):
        for history in histories:
            result = _one(service_cwd, rooms, inputs, history, timeout_s)
            out["every_run"].append(result)
            if result["status"] != "done":
                out["runs"].append(result)
                return out
    for history in histories:
        runs = [run for run in out["every_run"] if run["history"] == history]
        best = dict(runs[0])
        for key in ("authority_us", "statistics_us"):
            best[key] = min(run[key] for run in runs)
        written = [run["bytes_per_input"] for run in runs]
        best["bytes_per_input"] = {name: min(w[name] for w in written) for name in written[0]}
        best["rounds"] = len(runs)
        out["runs"].append(best)
    return out


def _one(
    service_cwd: Path, rooms: int, inputs: int, history: int, timeout_s: float
) -> dict[str, Any]:
    outcome = run_probe(
        TOOL,
        [str(rooms), str(inputs), "--json"],
        service_cwd,
        timeout_s,
        env={"HISTORY": str(history), "RUNS": str(RUNS)},
    )
    failed = {"history": history, "wall_s": outcome.wall_s}
    if outcome.status != "done":
        return failed | {"status": outcome.status, "detail": outcome.detail}
    code = outcome.result.get("code", "")
    if Path(code).resolve() != service_cwd.resolve():
        return failed | {
            "status": "crashed",
            "detail": f"measured the code in {code}, not in {service_cwd}",
        }
    return outcome.result | {"status": "done", "wall_s": outcome.wall_s}
