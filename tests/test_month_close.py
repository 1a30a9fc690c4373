"""The month close: durable, by each room's time zone, safe against a consumer and a second
closer writing at the same moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from consumers.statistics import (
    MonthNotEnded,
    close_due_months,
    load_state,
    save_states,
)
from domain.month_close import close_due, last_ended_month, month_ends_at
from domain.usage import CenterRoom, CenterUsage, RoomUsage, fold
from infra.db import Database, MonthCloseRow, OutboxRow, UsageStateRow
from infra.retention import DAY_MS, rereads_forgotten
from infra.settings import Settings
from schemas.decisions import CheckinAdmitted, RoomConfiguredDecision
from tests.pure_domain import pure

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

    # The consumer's module from source: a compiled one calls ``close_due`` directly.
    statistics_module = pure("consumers.statistics")
    real_close_due = statistics_module.close_due
    interfered: list[bool] = []

    def close_due_while_the_consumer_writes(*args: Any) -> Any:
        if not interfered:
            interfered.append(True)
            # What the statistics consumer does between the close's read and its write.
            statistics_write_now(db, settings, versions)
        return real_close_due(*args)

    monkeypatch.setattr(statistics_module, "close_due", close_due_while_the_consumer_writes)
    assert await statistics_module.close_months(settings, db, "2026-11", NOW) == 1
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


# --- durable close: catch-up, each room's time zone, two closers, by hand ---------------

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def configured(room: str, center: str, tz: str, at: datetime) -> RoomConfiguredDecision:
    return RoomConfiguredDecision(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=center,
        decided_at=at,
        name=room,
        capacity=10,
        booking_mode="shared",
        opens="09:00",
        closes="21:00",
        timezone=tz,
    )


def admitted(room: str, center: str, at: datetime, party: int = 2) -> CheckinAdmitted:
    return CheckinAdmitted(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=center,
        decided_at=at,
        kiosk_id="k",
        party_size=party,
        occupancy=party,
        capacity=10,
    )


async def store(db: Database, decisions: list[Any]) -> None:
    """Fold ``decisions`` the way the statistics consumer does, and store the states."""
    rooms: dict[str, RoomUsage] = {}
    centers: dict[str, CenterUsage] = {}
    for decision in decisions:
        room = rooms.setdefault(decision.room_id, RoomUsage(decision.room_id))
        center = centers.setdefault(decision.center_id, CenterUsage(decision.center_id))
        fold(room, center, decision, decision.decided_at)
    states: dict[str, Any] = {f"room:{r}": s for r, s in rooms.items()}
    states.update({f"center:{c}": s for c, s in centers.items()})
    async with db.unit_of_work(db.settings.statistics_group) as uow:
        await save_states(uow, states, {})


async def finals(db: Database) -> dict[str, set[str]]:
    """The final months of every stored state."""
    async with db.read_session() as session:
        rows = (await session.execute(select(UsageStateRow.scope_id, UsageStateRow.state))).all()
    return {
        sid: {m for m, s in load_state(sid, state).months.items() if s.final} for sid, state in rows
    }


async def test_a_restart_catches_up_every_month_not_closed(db: Database) -> None:
    """Down from August to December: every month from August to November closes, once."""
    await store(
        db,
        [
            configured("r1", "c1", "Asia/Seoul", datetime(2026, 8, 1, 8, tzinfo=SEOUL)),
            admitted("r1", "c1", datetime(2026, 8, 3, 10, tzinfo=SEOUL)),
            admitted("r1", "c1", datetime(2026, 10, 3, 10, tzinfo=SEOUL)),
        ],
    )
    now = datetime(2026, 12, 1, 0, 30, tzinfo=SEOUL)
    report = await close_due_months(db.settings, db, now=now)
    expected = {"2026-08", "2026-09", "2026-10", "2026-11"}
    assert report.closed == dict.fromkeys(sorted(expected), 2)  # the room and its center
    assert report.aggregates == 8
    assert await finals(db) == {"room:r1": expected, "center:c1": expected}
    async with db.read_session() as session:
        rows = {r.scope_id: r for r in await session.scalars(select(MonthCloseRow))}
    assert {r.closed_through for r in rows.values()} == {"2026-11"}
    # (SQLite gives the time back without its offset: UTC)
    next_close = rows["room:r1"].next_close_at
    assert next_close.replace(tzinfo=next_close.tzinfo or UTC) == datetime(
        2026, 12, 31, 15, tzinfo=UTC
    )

    # Again, later the same day: nothing is due, nothing is read, nothing is sent.
    again = await close_due_months(db.settings, db, now=now + timedelta(hours=5))
    assert (again.scopes, again.aggregates, again.closed) == (0, 0, {})
    # The next month, as soon as it has ended in Seoul.
    december = await close_due_months(db.settings, db, now=datetime(2026, 12, 31, 15, tzinfo=UTC))
    assert december.closed == {"2026-12": 2}


async def test_each_room_closes_when_its_own_month_has_ended(db: Database) -> None:
    """At 03:00 UTC on 1 December it is noon in Seoul and still November in New York."""
    await store(
        db,
        [
            configured("seoul", "c", "Asia/Seoul", datetime(2026, 11, 2, 8, tzinfo=SEOUL)),
            configured("ny", "c", "America/New_York", datetime(2026, 11, 2, 8, tzinfo=NEW_YORK)),
            admitted("seoul", "c", datetime(2026, 11, 30, 20, tzinfo=SEOUL)),
            admitted("ny", "c", datetime(2026, 11, 30, 20, tzinfo=NEW_YORK)),
        ],
    )
    await close_due_months(db.settings, db, now=datetime(2026, 12, 1, 3, tzinfo=UTC))
    closed = await finals(db)
    assert "2026-11" in closed["room:seoul"]
    assert "2026-11" not in closed["room:ny"]
    assert "2026-11" not in closed["center:c"]  # it sums New York's November too
    await close_due_months(db.settings, db, now=datetime(2026, 12, 1, 5, 1, tzinfo=UTC))
    closed = await finals(db)
    assert "2026-11" in closed["room:ny"] and "2026-11" in closed["center:c"]


async def test_two_closers_at_once_close_and_send_each_month_once(db: Database) -> None:
    await store(
        db,
        [
            configured("r1", "c1", "Asia/Seoul", datetime(2026, 10, 1, 8, tzinfo=SEOUL)),
            configured("r2", "c1", "Asia/Seoul", datetime(2026, 10, 1, 8, tzinfo=SEOUL)),
            admitted("r1", "c1", datetime(2026, 10, 3, 10, tzinfo=SEOUL)),
        ],
    )
    other = Database(db.settings)
    now = datetime(2026, 12, 1, 0, 30, tzinfo=SEOUL)
    try:
        reports = await asyncio.gather(
            close_due_months(db.settings, db, now=now),
            close_due_months(other.settings, other, now=now),
        )
    finally:
        await other.dispose()
    assert sum(r.aggregates for r in reports) == 6  # 3 scopes x (October, November)
    async with db.read_session() as session:
        rows = await session.execute(select(UsageStateRow.scope_id, UsageStateRow.version))
        versions = {scope: version for scope, version in rows}
        sent = [
            str(key)
            for key in await session.scalars(
                select(OutboxRow.key).where(OutboxRow.topic == db.settings.topics.usage_monthly)
            )
        ]
    assert versions == {"room:r1": 2, "room:r2": 2, "center:c1": 2}  # stored, then closed once
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 6


async def test_a_close_by_hand_refuses_a_month_that_has_not_ended_everywhere(
    db: Database,
) -> None:
    await store(
        db,
        [configured("ny", "c", "America/New_York", datetime(2026, 11, 2, 8, tzinfo=NEW_YORK))],
    )
    with pytest.raises(MonthNotEnded, match=r"America/New_York.*2026-12-01 05:00 UTC"):
        await close_due_months(
            db.settings, db, through="2026-11", now=datetime(2026, 12, 1, 3, tzinfo=UTC)
        )
    assert await finals(db) == {"room:ny": set(), "center:c": set()}
    with pytest.raises(ValueError, match="not a month"):
        await close_due_months(db.settings, db, through="2026-13")
    # By hand closes up to the month named, not further.
    report = await close_due_months(
        db.settings, db, through="2026-11", now=datetime(2027, 2, 10, tzinfo=UTC)
    )
    assert report.closed == {"2026-11": 2}


# --- the rules, without a database ------------------------------------------------------

ZONES = ["Asia/Seoul", "America/New_York", "Europe/London", "Pacific/Kiritimati", "UTC"]


@settings(max_examples=200, deadline=None)
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    now=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    back=st.integers(min_value=0, max_value=14),
)
def test_a_close_catches_up_only_ended_months_and_is_idempotent(
    zones: list[str], now: datetime, back: int
) -> None:
    center = CenterUsage("c")
    for i, zone in enumerate(zones):
        center.rooms[f"r{i}"] = CenterRoom(timezone=zone)
    last = last_ended_month(set(zones), now)
    year, month = divmod(int(last[:4]) * 12 + int(last[5:]) - 1 - back, 12)
    before = f"{year:04d}-{month + 1:02d}"
    first = close_due(center, before, now)
    assert first.closed_through == last
    assert len(first.months) == back and all(before < m <= last for m in first.months)
    assert all(month_ends_at(m, set(zones)) <= now for m in first.months)
    assert first.next_close_at > now  # the next month has not ended anywhere it counts
    again = close_due(center, first.closed_through, now)
    assert (again.months, again.aggregates) == ([], [])


@pytest.mark.parametrize(
    ("retention_days", "offsets_days", "unsafe"),
    [
        (None, 10_000, True),  # kept forever: only positions in the database make it safe
        (7, 7, False),  # the broker's defaults: shorter than the id memory
        (30, 7, False),  # as long as the id memory
        (90, 7, True),  # longer than both
        (90, 90, False),  # offsets kept as long as records: a record read is never re-read
    ],
)
def test_which_retentions_can_make_a_consumer_read_a_forgotten_record_again(
    retention_days: int | None, offsets_days: int, unsafe: bool
) -> None:
    retention = None if retention_days is None else retention_days * DAY_MS
    assert rereads_forgotten(retention, 30 * DAY_MS, offsets_days * DAY_MS) is unsafe
