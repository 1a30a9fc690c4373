"""One settings object for the whole system (env vars prefixed ``SPACES_``).

Every topic name, partition count, database URL and tunable lives here so that
producers, consumers, the local broker and the tests can never disagree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Topics(BaseSettings):
    """Topic names of the wire contract (contract-v1)."""

    model_config = SettingsConfigDict(env_prefix="SPACES_TOPIC_", extra="ignore")

    capacity: str = "capacity"
    bookings: str = "bookings"
    checkins: str = "checkins"
    decisions: str = "decisions"
    occupancy: str = "occupancy"
    usage_monthly: str = "usage-monthly"
    dead_letters: str = "dead-letters"

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.capacity, self.bookings, self.checkins)

    @property
    def compacted(self) -> tuple[str, str]:
        return (self.occupancy, self.usage_monthly)

    def all(self) -> tuple[str, ...]:
        return (
            self.capacity,
            self.bookings,
            self.checkins,
            self.decisions,
            self.occupancy,
            self.usage_monthly,
            self.dead_letters,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACES_", extra="ignore")

    # Kafka. When ``kafka_bootstrap`` is set we use that cluster and start nothing.
    kafka_bootstrap: str | None = None
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    kafka_version: str = "4.1.1"
    partitions: int = Field(default=6, ge=1)

    # Where the local broker keeps its storage, pid and log, and where jars are cached.
    home: Path = Path(".spaces")
    jar_cache: Path = Path.home() / ".cache" / "community-spaces"

    database_url: str = "sqlite+aiosqlite:///.spaces/spaces.db"

    # Domain defaults.
    timezone: str = "Asia/Seoul"
    no_show_grace_minutes: int = Field(default=15, ge=0)
    early_arrival_minutes: int = Field(default=15, ge=0)
    """How early before its start a booked party (or a session's attendees) may come in;
    from then on an exclusive room is theirs. (It was the grace period's setting.)"""
    late_checkin_tolerance_minutes: int = Field(default=10, ge=0)
    decide_at: Literal["wall", "event"] = "wall"
    """``wall``: decide at the time the input is processed (production). ``event``: at
    the input's ``occurred_at``, to replay or simulate history (the demo's months)."""

    # Consumers.
    run_processes: Literal["one", "per-role"] = "per-role"
    """``spaces run`` without ``--only``: every part in one process, or the room authority
    (with relay and clock) and the statistics each in a process of its own (two cores)."""
    statistics_nice: int = Field(default=10, ge=0, le=19)
    """How much the per-role statistics process yields the CPU to the kiosk path (Unix
    ``nice``): it catches up when the authority is idle, instead of delaying admissions."""
    authority_group: str = "room-authority"
    statistics_group: str = "usage-statistics"
    batch_max_records: int = Field(default=1000, ge=1)
    """Inputs the room authority decides in one transaction at most."""
    statistics_batch_max_records: int = Field(default=4000, ge=1)
    """Decisions the statistics fold in one transaction at most: a larger batch writes each
    changed state once for more decisions, and holds more in memory. 4,000 against 2,000:
    the statistics' CPU per decision 78-80 against 87-89 us (``tools/consumer_bench.py 1000
    60000``), memory growth 41-44 MiB against 38-50 in ``make bench``. 6,000 made the whole
    service faster (``tools/scale_run.py``) but its memory grew 46-56 MiB from 10,000 to
    100,000 inputs in ``make bench`` (target 50), against 37-38 at 2,000."""
    statistics_linger_ms: int = Field(default=500, ge=0)
    """After a small batch (under a tenth of ``statistics_batch_max_records``: caught up
    with live traffic), the statistics wait this long (from its start) before the next:
    they fold fewer, larger batches, so each room's aggregate goes out once for several
    decisions, and they take SQLite's writer and the CPU from the kiosk path less often. A
    backlog (larger batches) is folded without waiting. 0: fold each batch as it comes."""
    statistics_publish_interval_ms: int = Field(default=5000, ge=0)
    """How often the statistics send the monthly aggregates that changed, each once, as
    the last batch left them; and at once when no more decisions come. Until then their
    offsets stay uncommitted, so a crash reads those decisions again and sends their
    aggregates. 0: every batch sends."""
    gc_thresholds: tuple[int, int, int] = (50_000, 20, 100)
    """Python's cycle collector thresholds in a service process (``gc.set_threshold``).
    The default (700, 10, 10) runs a collection every few hundred allocations, each
    walking the young objects of a batch, which reference counting frees anyway; the
    collector is only for cycles. Measured with the start-up freeze in
    ``docs/benchmarks.md`` (``SPACES_GC_THRESHOLDS='[700,10,10]'`` to compare)."""
    state_cache_size: int = Field(default=50_000, ge=1)
    """States (rooms, room usage) a consumer keeps in memory between batches."""
    batch_timeout_ms: int = Field(default=100, ge=1)
    relay_interval_s: float = 0.05
    clock_interval_s: float = 30.0
    clock_secret: str | None = None
    """Key of the HMAC that signs the scheduler's ``clock.tick`` s; only a holder can move a
    room's clock. Unset: generated once into ``<home>/clock.secret`` (0600). Every machine
    running the service (or its admin tools) must share it: set it where there are several."""
    clock_tick_tolerance_s: float = Field(default=5.0, ge=0)
    """A signed tick stamped further than this ahead of the room authority's clock is
    refused (dead letter): a scheduler whose clock runs ahead moves no room's time."""
    kiosk_clock_tolerance_s: float = Field(default=300.0, ge=0)
    """A check-in stamped further than this ahead of the room authority's clock is denied
    ``clock_skew`` (with ``decide_at=wall``; replayed history is not judged)."""
    processed_retention_days: int = Field(default=30, ge=1)
    """How long consumed ``event_id`` s are remembered (far longer than Kafka keeps inputs)."""
    outbox_retention_days: int = Field(default=7, ge=1)
    month_close_interval_s: float = Field(default=300.0, gt=0)
    """How often the month close looks for rooms whose local month has ended (cheap when
    none has): a room's month closes at most this long after its local midnight."""
    decisions_retention_ms: int = Field(default=-1, ge=-1)
    """``retention.ms`` of ``decisions`` when it is created: -1 keeps the log of record
    forever, so ``spaces replay`` can rebuild every room however old its configuration."""

    # Clients.
    kiosk_timeout_s: float = 10.0

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8321

    # Each service process's own /health and /metrics (infra/observability.py).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=8331, ge=0, le=65535)
    """Port of ``spaces run``'s /health and /metrics; 0: not served. With
    ``run_processes=per-role`` the authority's process serves on this port and the
    statistics' process on the next one (port + 1); the supervisor itself serves none."""
    metrics_interval_s: float = Field(default=5.0, gt=0)
    """How often consumer lag, the outbox backlog and the broker are sampled."""
    health_stale_s: float = Field(default=30.0, gt=0)
    """/health answers 503 when the broker has not answered a consumer for this long."""

    topics: Topics = Field(default_factory=Topics)

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_external_kafka(self) -> bool:
        return self.kafka_bootstrap is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
