"""The month close against a statistics consumer writing at the same moment (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import consumers.statistics as statistics
from consumers.statistics import close_months, save_states
from domain.usage import RoomUsage
from infra.db import Database, UsageStateRow
from infra.settings import Settings

NOW = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


async def test_a_close_that_meets_a_newer_state_reads_again_and_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}"))
    await db.migrate()
    settings = db.settings
    versions: dict[str, int] = {}
    async with db.unit_of_work(settings.statistics_group) as uow:
        await save_states(uow, {"room:r1": RoomUsage("r1", "c")}, versions)

    real_close_month = statistics.close_month
    interfered: list[bool] = []

    def close_month_while_the_consumer_writes(state: Any, month: str, now: datetime) -> Any:
        if not interfered:
            interfered.append(True)
            # What the statistics consumer does between the close's read and its write.
            statistics_write_now(db, settings, versions)
        return real_close_month(state, month, now)

    monkeypatch.setattr(statistics, "close_month", close_month_while_the_consumer_writes)
    assert await close_months(settings, db, "2026-11", NOW) == 1
    async with db.unit_of_work(settings.statistics_group) as uow:
        stored = await uow.load_states(UsageStateRow, ["room:r1"], lock=False)
    await db.dispose()
    assert interfered == [True]
    assert stored["room:r1"].version == 3  # created, the consumer's write, the close
    assert RoomUsage.from_json(stored["room:r1"].state).months["2026-11"].final


def statistics_write_now(db: Database, settings: Settings, versions: dict[str, int]) -> None:
    import asyncio
    import threading

    async def write() -> None:
        other = Database(settings)
        async with other.unit_of_work(settings.statistics_group) as uow:
            await save_states(uow, {"room:r1": RoomUsage("r1", "c")}, versions)
        await other.dispose()

    # Another process, as far as SQLite can tell: its own engine, in its own thread.
    thread = threading.Thread(target=lambda: asyncio.run(write()))
    thread.start()
    thread.join()
