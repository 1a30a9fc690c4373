"""What every scenario of the bench shares: isolation, the broker, databases, the report.

Nothing here imports the service's consumers, ``infra.db`` or ``domain``: the bench
talks to the service only through Kafka, its environment and ``/proc``, so it keeps
working while those are rewritten (and can measure an older checkout of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from infra import kafka_local
from infra.settings import Settings, Topics

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]
"""The checkout the bench belongs to (the default ``--service-cwd``)."""
PG_ENV = "SPACES_BENCH_POSTGRES_URL"
PG_SCRIPT_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- isolation


def new_suffix() -> str:
    return uuid.uuid4().hex[:8]


def isolated(base: Settings, suffix: str, database_url: str | None = None) -> Settings:
    """Own topics (``bench-<topic>-<suffix>``) and consumer groups for one run."""
    defaults = Topics()
    topics = Topics.model_validate(
        {name: f"bench-{getattr(defaults, name)}-{suffix}" for name in Topics.model_fields}
    )
    update: dict[str, Any] = {
        "topics": topics,
        "authority_group": f"bench-authority-{suffix}",
        "statistics_group": f"bench-statistics-{suffix}",
        "decide_at": "wall",
    }
    if database_url is not None:
        update["database_url"] = database_url
    return base.model_copy(update=update)


def service_env(settings: Settings, home: Path) -> dict[str, str]:
    """The environment of a ``spaces run`` child: this run's broker, topics, groups, DB.

    Every ``SPACES_*`` variable of the bench's own environment is dropped first, so a
    setting exported in the shell cannot leak into the measured service.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    topics = settings.topics
    env.update(
        {
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_PARTITIONS": str(settings.partitions),
            "SPACES_DATABASE_URL": settings.database_url,
            "SPACES_HOME": str(home),
            "SPACES_AUTHORITY_GROUP": settings.authority_group,
            "SPACES_STATISTICS_GROUP": settings.statistics_group,
            "SPACES_DECIDE_AT": "wall",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in Topics.model_fields:
        env[f"SPACES_TOPIC_{name.upper()}"] = str(getattr(topics, name))
    return env


async def create_topics(settings: Settings) -> None:
    """All seven topics of ``settings`` (compacted ones compacted), leaders elected."""
    await kafka_local.ensure_topics(settings)


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Best effort: the bench's topics are throwaway and the broker may be someone's."""
    wanted = sorted(set(names))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(wanted)
    except Exception as error:
        log.warning("could not delete bench topics: %r", error)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


# --------------------------------------------------------------------------- broker


@dataclass
class Broker:
    bootstrap: str
    started: bool
    """True: this bench launched it, so it stops it at the end."""
    note: str
    up_s: float | None = None
    """How long the local broker's JVM had run when the bench began (``None``: external)."""


WARM_BROKER_US = 20.0
"""The broker's CPU per input in the ceiling run above which it was still warming up: a warm
one spent 9-14 us, a Kafka JVM minutes old 40-64 us (docs/benchmarks.md). Then the ceiling
ran slower, so every ratio to it reads higher than the service deserves."""


def process_age_s(pid: int) -> float | None:
    """Seconds since process ``pid`` started (Linux ``/proc``), or ``None``."""
    try:
        started_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def broker_age_s(settings: Settings) -> float | None:
    """How long the local broker has been running, or ``None`` (external, or not found)."""
    if settings.uses_external_kafka:
        return None
    pid = kafka_local.node_pid(settings)
    return None if pid is None else process_age_s(pid)


def broker_up(settings: Settings) -> Broker:
    """Reuse whatever answers on the bootstrap address; else start the local broker."""
    if settings.uses_external_kafka:
        kafka_local.up(settings)
        return Broker(settings.bootstrap, False, "external (SPACES_KAFKA_BOOTSTRAP)")
    try:
        asyncio.run(_probe(settings.bootstrap))
    except Exception:
        info = kafka_local.up(settings)
        how = "started by the bench" if info.started else "already running (reused)"
        return Broker(settings.bootstrap, info.started, how, broker_age_s(settings))
    return Broker(
        settings.bootstrap, False, "already running (reused, left running)", broker_age_s(settings)
    )


async def _probe(bootstrap: str) -> None:
    quiet = [logging.getLogger(n) for n in ("aiokafka", "aiokafka.conn", "aiokafka.client")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL + 1)
    try:
        await kafka_local.probe(bootstrap, timeout_s=3.0)
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def broker_down(settings: Settings, broker: Broker) -> str | None:
    if broker.started:
        return kafka_local.down(settings)
    return None


# --------------------------------------------------------------------------- PostgreSQL


def postgres_server() -> tuple[str | None, str]:
    """(server URL or None, how it was found or why not). ``$SPACES_BENCH_POSTGRES_URL``
    wins; else ``bash infra/postgres.sh`` (starts the local cluster) prints it last."""
    url = os.environ.get(PG_ENV)
    if url:
        return url, f"${PG_ENV}"
    script = REPO / "infra" / "postgres.sh"
    try:
        done = subprocess.run(
            ["bash", str(script)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=PG_SCRIPT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"infra/postgres.sh failed: {error!r}"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("postgresql"):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"infra/postgres.sh exited {done.returncode}: {tail}"
    return lines[-1].strip(), "infra/postgres.sh"


class PgDatabases:
    """Fresh PostgreSQL databases on one server, dropped again by ``drop``."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    async def create(self, label: str) -> tuple[str, str]:
        """(database name, SQLAlchemy URL of it)."""
        name = f"spaces_bench_{label}_{uuid.uuid4().hex[:8]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        url = make_url(self.server_url).set(database=name)
        return name, url.render_as_string(hide_password=False)

    async def drop(self, name: str) -> None:
        try:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as error:
            log.warning("could not drop database %s: %r", name, error)

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds so far of the server, when it runs on this machine (``None``
        otherwise: not ours to read). Its CPU is not in the service's processes, unlike
        SQLite's, so the PostgreSQL run's CPU per input names it apart."""
        if make_url(self.server_url).host not in ("127.0.0.1", "localhost", "::1"):
            return None
        return postgres_cpu_seconds()

    async def _admin(self, statement: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        url = make_url(self.server_url)
        conn = await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.host,
            port=url.port,
            database=url.database or "postgres",
            timeout=30,
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


def postgres_cpu_seconds(proc: Path = Path("/proc")) -> float | None:
    """User + system CPU seconds of every ``postgres`` process, with what their exited
    children used (``cutime``, ``cstime``: the postmaster's reaped backends), so a backend
    that came and went between two samples counts too; ``None`` if none runs here."""
    ticks, found = 0, False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
            found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


# --------------------------------------------------------------------------- figures


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; ``inf`` samples (never answered) count as the slowest."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rounded(value: float, digits: int = 1) -> float | None:
    """JSON has no inf/nan: those become null."""
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


@dataclass
class Check:
    """One figure of the table: its value, its target and whether it met it."""

    figure: str
    value: float | None
    unit: str
    target: str
    passed: bool | None
    """None: informational (no target), or not measured."""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "pass": self.passed,
            "note": self.note,
        }


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    memory_mib: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mib = round(int(line.split()[1]) / 1024)
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": affinity,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": memory_mib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "other_service_processes": other_service_processes(),
    }


SERVING = (["run"], ["demo"])
"""The ``spaces`` commands that keep processes running."""


def other_service_processes() -> list[str]:
    """``pid: command`` of each ``spaces`` service process already running (a ``spaces run``
    or a demo left behind): it takes CPU from every run measured, so the figures are not
    this machine's. One left running by a crashed profiling run cost a session its
    measurements for an hour before anyone saw it."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(
            Path(part).name in ("spaces", "entrypoints.cli") and argv[i + 1 : i + 2] in SERVING
            for i, part in enumerate(argv)
        ):
            found.append(f"{entry.name}: {' '.join(part for part in argv if part)[:120]}")
    return sorted(found, key=lambda line: int(line.split(":", 1)[0]))


def native_status(path: Path) -> str:
    """Whether the checkout at ``path`` runs its mypyc build (``python -m infra.native status``
    there), or why not; a checkout from before the build says so."""
    if not (path / "infra" / "native.py").exists():
        return "interpreted: no infra/native.py in this checkout"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "infra.native", "status"],
            cwd=path,
            env={k: v for k, v in os.environ.items() if not k.startswith("SPACES_")},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown: {error}"[:200]
    return done.stdout.strip()


def git_revision(path: Path) -> dict[str, Any] | None:
    """The commit at ``path`` and whether its work tree had changes on top of it."""
    try:
        head, status = (
            subprocess.run(
                ["git", "-C", str(path), *command],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            for command in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain"])
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # Each line is two status letters, a space and the path: " M docs/x.md". (Stripping the
    # whole output cut the first path's first letter when its first column was blank.)
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    head = head.strip()
    return {"path": str(path), "commit": head, "dirty": bool(changed), "changed": changed[:50]}
