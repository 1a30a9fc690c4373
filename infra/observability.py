"""Structured logs (one JSON object per line), the counters an operator watches, and the
``/health`` and ``/metrics`` endpoint of each service process.

The service logs JSON for machines (``configure_logging``); the ``spaces`` commands a person
runs log plain ``level: message`` lines and only what is worth a person's attention
(``configure_cli_logging``). Both drop aiokafka's reports of a group coordinator that is not
ready yet while a process starts (``StartupNoise``): aiokafka retries those by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

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
    # Libraries that log each statement, mapping or connection at INFO or DEBUG: a
    # service's lines are its own decisions and batches (about 60 lines of SQLAlchemy's
    # mapper set-up per process start before).
    for noisy in (
        "aiokafka",
        "kafka",
        "apscheduler",
        "sqlalchemy.engine",
        "sqlalchemy.orm",
        "sqlalchemy.pool",
        "aiosqlite",
        "alembic",
    ):
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


# --- /health and /metrics of a service process ------------------------------------------
#
# ``spaces run`` serves both on ``SPACES_METRICS_PORT`` (``entrypoints/service.py``). The
# hot loop only adds to plain counters (per decision) or observes once per batch; Prometheus
# reads the counters when it scrapes, so no label lookup happens per record.

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's metrics: what ``/metrics`` renders (not prometheus_client's global one,
which FastStream's middleware of the dashboard uses)."""

BATCH_RECORDS = Histogram(
    "spaces_batch_records",
    "Records decided per batch (one database transaction), by consumer.",
    ["consumer"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "spaces_batch_seconds",
    "Seconds from taking a batch to its committed offsets, by consumer.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "spaces_consumer_lag",
    "Records in Kafka not fetched yet: highwater - position, per assigned partition.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "spaces_outbox_backlog",
    "Outbox rows written but not published yet (counted up to 100,000).",
    registry=None,
)
"""Registered at its first sample (``set_outbox_backlog``): a process without the relay
does not sample it, and should not show a backlog of 0."""
BROKER_REACHABLE = Gauge(
    "spaces_broker_reachable",
    "1 when every consumer of this process heard from the broker recently, else 0.",
    registry=REGISTRY,
)
WRITER_LOCK_WAIT = Histogram(
    "spaces_sqlite_writer_lock_wait_seconds",
    "Seconds a write transaction waited for SQLite's one writer (this process's other "
    "writers, or another process's).",
    buckets=(0.0001, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=None,
)
"""Registered at its first wait (``observe_writer_lock_wait``): only SQLite has one."""
CHECKPOINT_SECONDS = Histogram(
    "spaces_sqlite_checkpoint_seconds",
    "Seconds each WAL checkpoint took (in a thread, outside the writer lock).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=None,
)
"""Registered at the first checkpoint (``observe_checkpoint``): only SQLite has them."""
RELAY_TRANSACTION_SECONDS = Histogram(
    "spaces_outbox_transaction_seconds",
    "Seconds each of the relay's Kafka transactions took, begin to commit: what a row "
    "committed while one is open waits, before its own.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=None,
)
"""Registered at the relay's first transaction (``observe_relay_transaction``)."""
_BATCH_CHILDREN: dict[str, tuple[Any, Any]] = {}
_shown: list[Collector] = []
"""Metrics registered at their first sample: a process that never samples one (no relay,
no SQLite) does not show it as 0."""


def _show(metric: Collector) -> None:
    if metric not in _shown:
        REGISTRY.register(metric)
        _shown.append(metric)


def set_outbox_backlog(rows: int) -> None:
    _show(OUTBOX_BACKLOG)
    OUTBOX_BACKLOG.set(rows)


def observe_writer_lock_wait(seconds: float) -> None:
    """How long a write waited for SQLite's writer lock: where the processes contend."""
    _show(WRITER_LOCK_WAIT)
    WRITER_LOCK_WAIT.observe(seconds)


def observe_checkpoint(seconds: float) -> None:
    _show(CHECKPOINT_SECONDS)
    CHECKPOINT_SECONDS.observe(seconds)


def observe_relay_transaction(seconds: float) -> None:
    _show(RELAY_TRANSACTION_SECONDS)
    RELAY_TRANSACTION_SECONDS.observe(seconds)


def observe_batch(consumer: str, records: int, seconds: float) -> None:
    """One committed batch: its size and duration (once per batch, children cached)."""
    children = _BATCH_CHILDREN.get(consumer)
    if children is None:
        children = _BATCH_CHILDREN[consumer] = (
            BATCH_RECORDS.labels(consumer),
            BATCH_SECONDS.labels(consumer),
        )
    children[0].observe(records)
    children[1].observe(seconds)


class DecisionCounts:
    """Decisions by (type, reason), counted when the batch that made them commits.

    ``add`` is a dict increment per decision; a batch that rolls back is decided again, so
    what it added is ``discard`` ed, and ``commit`` moves it to the totals Prometheus reads.
    Pending counts are kept per handler: two consumers may share the process.
    """

    def __init__(self) -> None:
        self.totals: Counter[tuple[str, str]] = Counter()
        self._pending: dict[int, Counter[tuple[str, str]]] = {}

    def add(self, handler: object, decisions: Iterable[Any]) -> None:
        pending = self._pending.get(id(handler))
        if pending is None:
            pending = self._pending[id(handler)] = Counter()
        for decision in decisions:
            # Fields are in the model's __dict__; getattr on a model without ``reason`` would
            # go through pydantic's __getattr__ and an exception, per decision.
            reason = decision.__dict__.get("reason")
            pending[(decision.type, str(reason) if reason else "")] += 1

    def commit(self, handler: object) -> None:
        pending = self._pending.pop(id(handler), None)
        if pending:
            self.totals.update(pending)

    def discard(self, handler: object) -> None:
        self._pending.pop(id(handler), None)


DECISIONS = DecisionCounts()

_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


class _ProcessCounters(Collector):
    """``METRICS`` and ``DECISIONS`` as Prometheus families, read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "spaces_decisions_by_type",
            "Decisions the room authority committed, by type and reason ('' without one).",
            labels=["type", "reason"],
        )
        for (kind, reason), count in sorted(DECISIONS.totals.items()):
            decisions.add_metric([kind, reason], count)
        yield decisions
        for name, value in sorted(METRICS.counters.items()):
            metric = "spaces_" + _NOT_IN_A_NAME.sub("_", name)
            if metric.endswith("_total"):
                yield CounterMetricFamily(metric[: -len("_total")], name, value=value)
            else:
                yield UnknownMetricFamily(metric, name, value=value)
        for name, gauge in sorted(METRICS.gauges.items()):
            yield GaugeMetricFamily("spaces_" + _NOT_IN_A_NAME.sub("_", name), name, value=gauge)


REGISTRY.register(_ProcessCounters())
ProcessCollector(registry=REGISTRY)


class Health:
    """What ``/health`` answers: the parts of this process, and whether the broker answered
    its consumers within ``stale_s``.

    ``parts`` says, when asked, how each part is (``starting``, ``running``, ``stopped``,
    ``failed``). Consumers report each answer of the broker (``broker_answered``); one that
    has not heard from it for ``stale_s`` makes the process unhealthy, and so does a part
    that is not running.
    """

    def __init__(
        self,
        stale_s: float,
        parts: Callable[[], dict[str, str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_s = stale_s
        self.parts = parts
        self.clock = clock
        self.answered: dict[str, float] = {}
        """Consumer -> when the broker last answered it."""

    def broker_answered(self, consumer: str) -> None:
        self.answered[consumer] = self.clock()

    def expect(self, consumer: str) -> None:
        """A consumer whose answers count, from now (unanswered: stale after ``stale_s``)."""
        self.answered.setdefault(consumer, self.clock())

    def report(self) -> tuple[bool, dict[str, Any]]:
        now = self.clock()
        parts = self.parts()
        silent = {name: round(now - at, 1) for name, at in sorted(self.answered.items())}
        reachable = all(age <= self.stale_s for age in silent.values())
        running = bool(parts) and all(state == "running" for state in parts.values())
        BROKER_REACHABLE.set(1 if reachable else 0)
        healthy = running and reachable
        return healthy, {
            "status": "ok" if healthy else "unavailable",
            "parts": parts,
            "broker": {"reachable": reachable, "seconds_since_answer": silent},
        }


class MetricsServer:
    """A small HTTP/1.1 server on the event loop: ``GET /health`` and ``GET /metrics``.

    On the loop on purpose: a process whose loop is stuck does not answer ``/health``.
    One request per connection (``Connection: close``), as Prometheus and probes make them.
    """

    def __init__(self, host: str, port: int, health: Health) -> None:
        self.host = host
        self.port = port
        self.health = health
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (``port`` 0 in tests: any free one)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for ``path``."""
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path == "/health":
            healthy, document = self.health.report()
            body = json.dumps(document).encode() + b"\n"
            return (200 if healthy else 503), "application/json", body
        return 404, "text/plain; charset=utf-8", b"not found: try /health or /metrics\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5.0)
            while True:  # the headers: nothing in them matters here
                line = await asyncio.wait_for(reader.readline(), timeout=5.0)
                if line in (b"\r\n", b"\n", b""):
                    break
            method, target, *_ = request.decode("latin-1").split()
            if method not in ("GET", "HEAD"):
                status, content_type, body = 405, "text/plain", b"GET only\n"
            else:
                status, content_type, body = self.respond(target.split("?", 1)[0])
            reason = HTTPStatus(status).phrase
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, UnicodeError):
            pass  # a client that went away or sent no request line
        finally:
            writer.close()
