"""What the profiling tools read of a running `spaces run`: its processes' CPU, its /metrics."""
import os
import urllib.request


def children(pid: int) -> list[str]:
    """The pids of ``pid``'s children (the supervisor's per-role processes)."""
    return open(f"/proc/{pid}/task/{pid}/children").read().split()


def cpu_seconds(pid: str) -> float:
    """User + system CPU seconds the process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_lines(port: int, keep) -> list[str]:
    """The lines of the /metrics served on ``port`` that ``keep`` wants ([] if none answers)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return []
    return [line for line in text.splitlines() if keep(line)]
