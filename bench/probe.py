"""A script of the bench run as a child in the measured checkout, answering one JSON line.

The capacity probe and the id memory scenario both run this way: the child's cwd is the
measured checkout and comes first on its ``sys.path``, so that checkout's code is what it
measures; it is killed after a time limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ``-c`` puts the cwd (the measured checkout) first on sys.path; run_path does not add
# the script's own directory, so the service's packages come from the cwd.
RUNNER = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


@dataclass
class ProbeOutcome:
    status: str
    """``done``, ``timeout`` (killed at the limit) or ``crashed`` (no JSON line, or an error)."""
    wall_s: float
    detail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    """The last line of its output that starts with ``{``, parsed (when ``done``)."""


def run_probe(
    script: Path,
    args: Sequence[str],
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> ProbeOutcome:
    """``script args`` in ``cwd``, with the bench's environment minus every ``SPACES_*``
    variable, plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    environment |= env or {}
    command = [sys.executable, "-c", RUNNER, str(script), *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProbeOutcome(
            "timeout",
            round(time.perf_counter() - started, 1),
            f"no answer in {timeout_s:.0f}s (the probe was killed)",
        )
    wall_s = round(time.perf_counter() - started, 1)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        return ProbeOutcome("crashed", wall_s, f"exit {done.returncode}: {tail}")
    return ProbeOutcome("done", wall_s, result=json.loads(lines[-1]))
