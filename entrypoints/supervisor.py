"""``spaces run`` on a machine with more than one core: one process per role.

The room authority (with the relay and the clock, which it wakes) and the statistics
consumer are independent consumer groups that meet only in the database, so each can
have a core of its own. The supervisor starts them as ``spaces run --only ...``
children, forwards SIGTERM/SIGINT, and stops everything (exit code non-zero) when one
child dies. A child dies with its supervisor (Linux ``PR_SET_PDEATHSIG``), so a
SIGKILLed ``spaces run`` leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)

ROLES: tuple[tuple[str, ...], ...] = (("authority", "relay", "clock"), ("statistics",))
"""Parts per child process: the kiosk path together, the statistics apart."""
_PR_SET_PDEATHSIG = 1


def roles_for(parts: Sequence[str]) -> list[tuple[str, ...]]:
    """``parts`` grouped as ``ROLES`` groups them (groups with none of them left out)."""
    groups = [tuple(p for p in role if p in parts) for role in ROLES]
    return [group for group in groups if group]


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: children then outlive a SIGKILLed supervisor


def _prepare_child(niceness: int) -> Callable[[], None]:
    def prepare() -> None:  # pragma: no cover - runs in the forked child
        _die_with_parent()
        if niceness:
            os.nice(niceness)

    return prepare


def metrics_ports(base: int, children: int) -> list[int]:
    """``SPACES_METRICS_PORT`` of each child: ``base``, ``base + 1``... (0: none serves)."""
    return [base + index if base else 0 for index in range(children)]


def supervise(
    groups: Sequence[tuple[str, ...]],
    log_level: str,
    grace_s: float = 60.0,
    niceness: Mapping[str, int] | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run each group as a child ``spaces run --only``; returns the exit code.

    ``niceness`` lowers the CPU priority of the children that run a part it names. Child
    ``i`` serves ``/health`` and ``/metrics`` on ``metrics_port + i`` (default: the
    ``SPACES_METRICS_PORT`` setting), so the two children of ``ROLES`` never clash.
    """
    if metrics_port is None:
        from infra.settings import Settings

        metrics_port = Settings().metrics_port
    ports = metrics_ports(metrics_port, len(groups))
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("stopping", extra={"signal": signal.Signals(signum).name})

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for group, port in zip(groups, ports, strict=True):
        name = ",".join(group)
        nice = max((niceness or {}).get(part, 0) for part in group)
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "run", "--only", name],
            env={**os.environ, "SPACES_LOG_LEVEL": log_level, "SPACES_METRICS_PORT": str(port)},
            preexec_fn=_prepare_child(nice),
        )
        log.info(
            "started",
            extra={"parts": name, "pid": children[name].pid, "nice": nice, "metrics_port": port},
        )
    failed: str | None = None
    while not stopping and failed is None:
        time.sleep(0.2)
        for name, child in children.items():
            if child.poll() is not None:
                failed = name
                log.error("part exited", extra={"parts": name, "exit_code": child.returncode})
                break
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if failed is not None:
        return children[failed].returncode or 1
    return max((child.returncode or 0 for child in children.values()), default=0)
