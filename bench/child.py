"""The processes the bench measures: ``spaces run`` and the ceiling loop, as children.

Each child gets its own session (signals from the terminal do not reach it), writes
stdout and stderr to a file in the bench's temp dir (a pipe nobody reads could fill
up and stall it), and is stopped by its pid: SIGTERM, then SIGKILL after a grace
period. ``atexit`` kills any child still alive if the bench itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO

STOP_GRACE_S = 30.0
_ALIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_leftovers() -> None:
    for pid, proc in list(_ALIVE.items()):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


atexit.register(_kill_leftovers)


class Child:
    def __init__(
        self,
        name: str,
        command: Sequence[str],
        cwd: Path,
        env: dict[str, str],
        log_path: Path,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0
        self.stopped: dict[str, Any] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.launched_at = time.time()
        _ALIVE[self.proc.pid] = self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def dead(self) -> str | None:
        """Why the child is no longer running, or None while it runs."""
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}; last lines:\n{self.tail(12)}"

    def stop(self, grace_s: float = STOP_GRACE_S) -> dict[str, Any]:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL. Idempotent."""
        if self.stopped is not None:
            return self.stopped
        if self.proc is None:
            self.stopped = {"how": "never started"}
            return self.stopped
        how = "had exited"
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
                how = "SIGTERM"
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
                how = f"SIGKILL after {grace_s:.0f}s"
        _ALIVE.pop(self.proc.pid, None)
        self.stopped = {"how": how, "returncode": self.proc.returncode}
        return self.stopped

    def tail(self, lines: int) -> str:
        try:
            text = self.log_path.read_bytes()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_mib(self) -> float | None:
        """VmRSS of the child and of all its descendants, from ``/proc``."""
        per_process = self.rss_by_process()
        return None if per_process is None else round(sum(per_process.values()), 1)

    def cpu_by_process(self) -> dict[str, float] | None:
        """CPU seconds (user + system) so far of the child and each descendant, by ``pid
        command line``: where the cores went, steadier from run to run than a rate."""
        return self._by_process(lambda pid: _rounded(cpu_seconds(pid), 2))

    def rss_by_process(self) -> dict[str, float] | None:
        """VmRSS in MiB of the child and each descendant, by ``pid command line``."""
        return self._by_process(lambda pid: _rounded(rss_mib_of(pid), 1))

    def _by_process(self, read: Callable[[int], float | None]) -> dict[str, float] | None:
        """``read(pid)`` of the child and each descendant (those it has a figure for), by
        ``pid command line``; None once the child has ended."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        out: dict[str, float] = {}
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                name = " ".join(a.decode(errors="replace") for a in args[-3:] if a)
                value = read(pid)
                if value is not None:
                    out[f"{pid} {name}"] = value
        return out


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def rss_mib_of(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB (``/proc/<pid>/status``), None if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (``/proc/<pid>/stat``), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# --------------------------------------------------------------------------- the two kinds


def service(
    service_cwd: Path, env: dict[str, str], log_path: Path, log_level: str, parts: str | None
) -> Child:
    """``spaces run`` as ``python -m entrypoints.cli run`` in ``service_cwd``: ``-m``
    puts the cwd first on ``sys.path``, so that checkout's code is what runs."""
    command = [sys.executable, "-m", "entrypoints.cli", "run", "--log-level", log_level]
    if parts:
        command += ["--only", parts]
    return Child("spaces run", command, service_cwd, env, log_path)


def ceiling(
    bootstrap: str,
    inputs: Sequence[str],
    group: str,
    output: str,
    log_path: Path,
    *,
    transactional: bool = False,
) -> Child:
    """The ceiling loop; ``transactional``: the exactly-once ceiling (``bench.ceiling``)."""
    command = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--bootstrap",
        bootstrap,
        "--topics",
        ",".join(inputs),
        "--group",
        group,
        "--output",
        output,
        *(["--transactional"] if transactional else []),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    env["PYTHONUNBUFFERED"] = "1"
    name = "exactly-once ceiling loop" if transactional else "ceiling loop"
    return Child(name, command, REPO, env, log_path)


def service_assigned_at(child: Child, input_topic: str) -> float | None:
    """Unix time of the service's first ``partitions assigned`` log line naming an input
    topic: the room authority's consumer has joined its group and starts fetching."""
    return _first_json_line(
        child.log_path,
        lambda entry: (
            entry.get("msg") == "partitions assigned"
            and input_topic in json.dumps(entry.get("partitions"))
        ),
        lambda entry: datetime.fromisoformat(str(entry["ts"])).timestamp(),
    )


def ceiling_assigned_at(child: Child) -> float | None:
    return _first_json_line(
        child.log_path,
        lambda entry: entry.get("event") == "assigned",
        lambda entry: float(entry["ts"]),
    )


def _first_json_line(
    path: Path,
    match: Callable[[dict[str, Any]], bool],
    value: Callable[[dict[str, Any]], float],
) -> float | None:
    try:
        with path.open("rb") as lines:
            for raw in lines:
                if not raw.startswith(b"{"):
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and match(entry):
                    return float(value(entry))
    except OSError:
        return None
    return None
