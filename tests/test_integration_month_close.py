"""Issue 7, finding 4 on the real broker: the month close survives restarts, closes each
room by its own time zone, and ``spaces month close YYYY-MM`` does it by hand.

Decisions go onto ``decisions``; the statistics count them; the service is then started
again after the month ended (as after a restart at the wrong minute), and the final
figures are read back from ``usage-monthly`` as a dashboard would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from entrypoints import cli
from entrypoints.service import Services
from infra.kafka import make_producer
from infra.settings import Settings
from schemas.decisions import CheckinAdmitted, Decision, RoomConfiguredDecision
from tests.stack import read_topic, running, wait_for

pytestmark = pytest.mark.integration
SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def configured(room: str, tz: str, at: datetime) -> RoomConfiguredDecision:
    return RoomConfiguredDecision(
        event_id=uuid.uuid4(),
        caused_by=uuid.uuid4(),
        room_id=room,
        center_id="town",
        decided_at=at,
        name=room,
        capacity=10,
        booking_mode="shared",
        opens="09:00",
        closes="21:00",
        timezone=tz,
    )


def admitted(room: str, at: datetime) -> CheckinAdmitted:
    return CheckinAdmitted(
        event_id=uuid.uuid4(),
        caused_by=uuid.uuid4(),
        room_id=room,
        center_id="town",
        decided_at=at,
        kiosk_id="k",
        party_size=2,
        occupancy=2,
        capacity=10,
    )


async def append_decisions(settings: Settings, decisions: list[Decision]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for decision in decisions:
            await producer.send_and_wait(
                settings.topics.decisions,
                key=decision.room_id.encode(),
                value=decision.model_dump_json().encode(),
            )
    finally:
        await producer.stop()


async def usage(settings: Settings) -> dict[str, dict[str, Any]]:
    """The latest ``usage-monthly`` value per key (scope:id:month)."""
    latest: dict[str, dict[str, Any]] = {}
    for value in await read_topic(settings, settings.topics.usage_monthly, timeout=5):
        latest[f"{value['scope']}:{value['id']}:{value['month']}"] = value
    return latest


async def counted(settings: Settings, key: str, visits: int) -> None:
    async def seen() -> bool:
        value = (await usage(settings)).get(key)
        return value is not None and value["visits"] == visits

    await wait_for(seen, timeout=60)


async def final(settings: Settings, *keys: str) -> None:
    async def all_final() -> bool:
        latest = await usage(settings)
        return all(key in latest and latest[key]["final"] for key in keys)

    await wait_for(all_final, timeout=60)


@asynccontextmanager
async def running_at(
    settings: Settings, parts: tuple[str, ...], now: Callable[[], datetime]
) -> AsyncIterator[Services]:
    """The service with its clock at ``now()`` (the month close reads it)."""
    services = Services(settings, parts, clock_now=now)
    task = asyncio.create_task(services.run())
    ready = asyncio.create_task(services.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, "services did not become ready within 60 s"
    try:
        yield services
    finally:
        services.stop.set()
        await asyncio.wait_for(task, timeout=60)


async def test_a_restart_after_the_1st_closes_each_room_when_its_own_month_ends(
    stack_settings: Settings,
) -> None:
    settings = stack_settings.model_copy(update={"month_close_interval_s": 0.2})
    await append_decisions(
        settings,
        [
            configured("seoul.1", "Asia/Seoul", datetime(2026, 10, 1, 8, tzinfo=SEOUL)),
            admitted("seoul.1", datetime(2026, 10, 5, 10, tzinfo=SEOUL)),
            admitted("seoul.1", datetime(2026, 11, 5, 10, tzinfo=SEOUL)),
            configured("ny.1", "America/New_York", datetime(2026, 11, 2, 8, tzinfo=NEW_YORK)),
            admitted("ny.1", datetime(2026, 11, 30, 20, tzinfo=NEW_YORK)),
        ],
    )
    # Counted in November; then the service is down over the 1st.
    async with running(settings, ("statistics", "relay")):
        await counted(settings, "room:ny.1:2026-11", 2)
        await counted(settings, "room:seoul.1:2026-11", 2)

    # Back at 03:00 UTC on 1 December: noon in Seoul, 22:00 on 30 November in New York.
    clock = [datetime(2026, 12, 1, 3, tzinfo=UTC)]
    async with running_at(settings, ("clock", "relay"), lambda: clock[0]):
        await final(settings, "room:seoul.1:2026-10", "room:seoul.1:2026-11")
        latest = await usage(settings)
        assert latest["room:seoul.1:2026-11"]["visits"] == 2
        assert not latest["room:ny.1:2026-11"]["final"]
        assert not latest["center:town:2026-11"]["final"]  # New York's November is in it

        clock[0] = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)  # 00:30 in New York
        await final(settings, "room:ny.1:2026-11", "center:town:2026-11")
    latest = await usage(settings)
    assert latest["center:town:2026-11"]["visits"] == 4
    assert latest["room:ny.1:2026-11"]["revised_after_close"] is False


def month_close(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``spaces month close ...`` with these settings; (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    original = cli.load_settings
    cli.load_settings = lambda: settings
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["month", "close", *args])
    finally:
        cli.load_settings = original
    return code, out.getvalue(), err.getvalue()


async def test_spaces_month_close_closes_by_hand(stack_settings: Settings) -> None:
    await append_decisions(
        stack_settings,
        [
            configured("seoul.1", "Asia/Seoul", datetime(2026, 9, 1, 8, tzinfo=SEOUL)),
            admitted("seoul.1", datetime(2026, 9, 5, 10, tzinfo=SEOUL)),
            admitted("seoul.1", datetime(2026, 10, 5, 10, tzinfo=SEOUL)),
        ],
    )
    async with running(stack_settings, ("statistics", "relay")):
        await counted(stack_settings, "room:seoul.1:2026-10", 2)

        code, out, err = await asyncio.to_thread(month_close, stack_settings, "2026-13")
        assert code == 2 and out == ""
        assert err.strip().splitlines() == [
            "error: month: '2026-13' is not a month: use YYYY-MM, e.g. 2026-11"
        ]
        code, out, err = await asyncio.to_thread(month_close, stack_settings, "2999-01")
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("error: 2999-01 has not ended yet in Asia/Seoul")

        code, out, err = await asyncio.to_thread(month_close, stack_settings, "2026-10", "--json")
        assert code == 0, err
        assert json.loads(out) == {
            "month": "2026-10",
            "closed": {"2026-09": 2, "2026-10": 2},
            "aggregates": 4,
        }
        await final(stack_settings, "room:seoul.1:2026-09", "room:seoul.1:2026-10")
        assert not (await usage(stack_settings)).get("room:seoul.1:2026-11", {}).get("final")

        code, out, err = await asyncio.to_thread(month_close, stack_settings, "2026-10")
        assert (code, out.strip()) == (
            0,
            "nothing to close: 2026-10 and the months before it are final already",
        )


async def test_a_close_at_03_00_utc_on_the_1st_leaves_new_york_open(
    stack_settings: Settings,
) -> None:
    """The close runs by each room's zone, not by the settings' (Asia/Seoul)."""
    from consumers.statistics import close_months
    from infra.db import Database

    await append_decisions(
        stack_settings,
        [
            configured("seoul.1", "Asia/Seoul", datetime(2026, 11, 2, 8, tzinfo=SEOUL)),
            admitted("seoul.1", datetime(2026, 11, 5, 10, tzinfo=SEOUL)),
            configured("ny.1", "America/New_York", datetime(2026, 11, 2, 8, tzinfo=NEW_YORK)),
            admitted("ny.1", datetime(2026, 11, 30, 20, tzinfo=NEW_YORK)),
        ],
    )
    async with running(stack_settings, ("statistics", "relay")):
        await counted(stack_settings, "room:ny.1:2026-11", 2)
        await counted(stack_settings, "room:seoul.1:2026-11", 2)
        db = Database(stack_settings)
        try:
            await close_months(stack_settings, db, now=datetime(2026, 12, 1, 3, tzinfo=UTC))
        finally:
            await db.dispose()
        await final(stack_settings, "room:seoul.1:2026-11")
    latest = await usage(stack_settings)
    assert not latest["room:ny.1:2026-11"]["final"]
    assert not latest["center:town:2026-11"]["final"]
