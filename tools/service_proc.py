"""What the profiling tools read of a running `spaces run`: its processes' CPU, its /metrics."""
import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.request

from bench import child
from bench.common import other_service_processes


def service_cwd() -> str:
    """The checkout whose service the tools start: ``SPACES_SERVICE_CWD`` (e.g. a worktree of
    an older commit, the "before" of a pair), else this one."""
    return os.environ.get("SPACES_SERVICE_CWD", str(pathlib.Path(__file__).resolve().parents[1]))


def children(pid: int) -> list[str]:
    """The pids of ``pid``'s children (the supervisor's per-role processes)."""
    return open(f"/proc/{pid}/task/{pid}/children").read().split()


def cpu_seconds(pid: str) -> float:
    """User + system CPU seconds the process has used (0 if it is gone)."""
    return child.cpu_seconds(int(pid)) or 0.0


def metric_lines(port: int, keep, timeout: float = 2.0) -> list[str]:
    """The lines of the /metrics served on ``port`` that ``keep`` wants ([] if none answers
    within ``timeout`` seconds)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout).read().decode()
    except OSError:
        return []
    return [line for line in text.splitlines() if keep(line)]


def refuse_if_serving(ports=(8331, 8332)) -> None:
    """Exit if a service already answers on the ports the tools read /metrics from: its
    figures would be taken for the run's (a `spaces run` left behind by a crashed tool run
    once made `tools/scale_run.py` stop reading before the statistics had finished)."""
    busy = [port for port in ports if metric_lines(port, lambda line: True, timeout=0.5)]
    if busy:
        sys.exit(f"a spaces service already serves /metrics on {busy}; stop it first: {other_service_processes()}")


def stop_at_exit(process: subprocess.Popen) -> subprocess.Popen:
    """Terminate ``process`` when this tool exits, however it exits short of SIGKILL: a tool
    that died on an error left its `spaces run` running, and it took CPU from every later
    measurement."""

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    atexit.register(stop)
    return process


RUNS = pathlib.Path("/tmp/spaces-scale")
"""Where the tools put each run's SQLite file, service home and log."""


def forget_run_files(sfx: str) -> None:
    """A run's SQLite file (with its WAL and lock files) and service home; its log stays.
    A run of 100,000 inputs leaves about a gigabyte; /tmp once held 29 GB of them."""
    for path in RUNS.glob(f"{sfx}.db*"):
        path.unlink()
    shutil.rmtree(RUNS / f"h{sfx}", ignore_errors=True)
