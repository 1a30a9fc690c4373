"""What every scenario needs to know about this bench run."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from bench.common import PgDatabases
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

    def sqlite_url(self, label: str, suffix: str) -> str:
        return f"sqlite+aiosqlite:///{self.tmp / f'{label}-{suffix}.db'}"

    def home(self, suffix: str) -> Path:
        home = self.tmp / f"home-{suffix}"
        with contextlib.suppress(FileExistsError):
            home.mkdir()
        return home

    def log_path(self, label: str, suffix: str) -> Path:
        return self.tmp / f"{label}-{suffix}.log"
