"""What every scenario needs to know about this bench run."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from bench import child as children
from bench.common import PgDatabases, service_env
from infra.settings import Settings


@dataclass
class Context:
    base: Settings
    """Default settings (the broker on 127.0.0.1:19092 unless SPACES_KAFKA_BOOTSTRAP)."""
    tmp: Path
    """Temp dir of this run: SQLite files, service homes and logs."""
    service_cwd: Path
    log_level: str
    stall_s: float
    max_run_s: float
    pg: PgDatabases | None = None
    pg_note: str = ""
    service_parts: str | None = None
    """``spaces run --only`` (``--service-parts``): which part's cost a figure includes."""

    def sqlite_url(self, label: str, suffix: str) -> str:
        return f"sqlite+aiosqlite:///{self.tmp / f'{label}-{suffix}.db'}"

    def home(self, suffix: str) -> Path:
        home = self.tmp / f"home-{suffix}"
        with contextlib.suppress(FileExistsError):
            home.mkdir()
        return home

    def log_path(self, label: str, suffix: str) -> Path:
        return self.tmp / f"{label}-{suffix}.log"

    def consumer(
        self, target: str, settings: Settings, suffix: str, log_path: Path
    ) -> children.Child:
        """What a run measures, on ``settings``' topics: ``ceiling``, ``ceiling-eos`` (the
        exactly-once ceiling) or ``service`` (``spaces run``)."""
        if target.startswith("ceiling"):
            return children.ceiling(
                self.base.bootstrap,
                settings.topics.inputs,
                f"bench-{target}-{suffix}",
                settings.topics.decisions,
                log_path,
                transactional=target == "ceiling-eos",
            )
        env = service_env(settings, self.home(suffix))
        return children.service(self.service_cwd, env, log_path, self.log_level, self.service_parts)
