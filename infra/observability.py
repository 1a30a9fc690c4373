"""Structured logs (one JSON object per line) and the counters an operator watches.

The service logs JSON for machines (``configure_logging``); the ``spaces`` commands a person
runs log plain ``level: message`` lines and only what is worth a person's attention
(``configure_cli_logging``). Both drop aiokafka's reports of a group coordinator that is not
ready yet while a process starts (``StartupNoise``): aiokafka retries those by itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Every ``extra=`` field (room, event_id, topic, partition, offset...) becomes a key."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


COORDINATOR_LOOKUP_FAILED = "Group Coordinator Request failed: %s"
"""aiokafka (ERROR) when it cannot find the group coordinator yet; it retries a retriable error."""
COORDINATOR_MARKED_DEAD = "Marking the coordinator dead (node %s)for group %s."
"""aiokafka (WARNING) when it forgets the coordinator and looks it up again."""
BOOTSTRAP_UNREACHABLE = 'Unable connect to "%s:%s": %s'
"""aiokafka (ERROR) for each bootstrap address it cannot reach, just before it raises
``KafkaConnectionError``: the ``spaces`` commands say so themselves, in one line."""

SERVICE_STARTUP_WINDOW_S = 60.0
"""How long after start a service drops coordinator noise. A broker that has just started
has no coordinator for some seconds; one still missing after a minute is a real problem."""


class StartupNoise(logging.Filter):
    """Drops aiokafka's "coordinator not ready yet" lines while a process starts.

    On a fresh broker or a new group the coordinator is unknown for a few seconds: aiokafka
    logs ``Group Coordinator Request failed`` and ``Marking the coordinator dead`` and tries
    again. A newcomer reads those as failures. Only retriable lookups are dropped, and only
    for ``window_s`` seconds (``None``: for the whole run, which an interactive command is).
    """

    def __init__(self, window_s: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.started = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        if self.window_s is not None and self.clock() - self.started > self.window_s:
            return True
        if record.msg == COORDINATOR_MARKED_DEAD:
            return False
        if record.msg == COORDINATOR_LOOKUP_FAILED:
            error = record.args[0] if isinstance(record.args, tuple) and record.args else None
            return not getattr(error, "retriable", False)
        return True


class ReportedByTheCommand(logging.Filter):
    """Drops aiokafka's line for an unreachable bootstrap address: the command's error says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("aiokafka") and record.msg == BOOTSTRAP_UNREACHABLE)


class PlainFormatter(logging.Formatter):
    """``warning: no decision yet ...``: what a person at a terminal reads.

    An exception logged with the line is named on it; its traceback only with ``tracebacks``
    (``spaces --debug``).
    """

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if self.tracebacks:
                text += "\n" + self.formatException(record.exc_info)
            else:
                text += f" ({type(error).__name__}: {error})"
        return text


class CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


QUIET_FOR_A_PERSON = ("aiokafka", "kafka", "apscheduler", "sqlalchemy", "alembic", "asyncio")
"""Libraries that speak only of errors to a person at a terminal (``configure_cli_logging``)."""


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for a service process (``spaces run``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(StartupNoise(window_s=SERVICE_STARTUP_WINDOW_S))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for library in QUIET_FOR_A_PERSON:  # as they were before a CLI command quieted them
        logging.getLogger(library).setLevel(logging.NOTSET)
    for noisy in ("aiokafka", "kafka", "apscheduler", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_cli_logging(tracebacks: bool = False) -> None:
    """Plain lines on stderr, warnings and up, for the commands a person runs.

    The command reports what went wrong itself (one line, see ``entrypoints/cli.py``), so
    the libraries under it only speak up for errors; aiokafka's startup noise and its line
    for an unreachable broker are dropped. Replaces only a handler it installed before.
    """
    handler = CurrentStderr()
    handler.setFormatter(PlainFormatter(tracebacks))
    handler.addFilter(StartupNoise(window_s=None))
    handler.addFilter(ReportedByTheCommand())
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, CurrentStderr)]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for library in QUIET_FOR_A_PERSON:
        logging.getLogger(library).setLevel(logging.ERROR)


class Metrics:
    """Process-local counters, rendered in Prometheus' text format and logged periodically."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}

    def inc(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def set(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def snapshot(self) -> dict[str, float]:
        return {**self.counters, **self.gauges}

    def render(self) -> str:
        lines = [f"spaces_{name} {value}" for name, value in sorted(self.snapshot().items())]
        return "\n".join(lines) + "\n"


METRICS = Metrics()
