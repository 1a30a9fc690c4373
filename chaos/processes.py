"""The service's parts as separate OS processes, to be killed and started again.

Each is ``python -m entrypoints.cli run --only <parts>`` (= ``spaces run --only ...``) in
its own session (a terminal's Ctrl-C does not reach it), with its output appended to a
log file of its own across restarts. ``atexit`` kills any left if the driver dies.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 30.0
_ALIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_leftovers() -> None:
    for pid, proc in list(_ALIVE.items()):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


atexit.register(_kill_leftovers)


class ServiceProcess:
    """One part (or a few) of the service; ``wanted`` says whether it should be running."""

    def __init__(self, name: str, parts: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.parts = parts
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.wanted = False
        self.starts = 0
        self.started_at = 0.0

    def start(self) -> int:
        command = [sys.executable, "-m", "entrypoints.cli", "run", "--only", self.parts]
        command += ["--log-level", "INFO"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"--- chaos: start {self.name} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _ALIVE[self.proc.pid] = self.proc
        self.wanted = True
        self.starts += 1
        self.started_at = time.monotonic()
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        """SIGKILL: no batch finished, no offset committed, nothing flushed."""
        self.wanted = False
        if self.proc is None or self.proc.poll() is not None:
            return None
        pid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        _ALIVE.pop(pid, None)
        return pid

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM (the batch in flight is finished, the group left), then SIGKILL."""
        self.wanted = False
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        _ALIVE.pop(self.proc.pid, None)
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_bytes()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
