"""The dashboard page in headless Chromium: chart, table, occupancy, CSV link, live updates.

Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the
``playwright`` Python package; never ``playwright install``. Saves
``artifacts/dashboard.png``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from entrypoints.dashboard import FIELDS, create_app
from infra.db import Database, RoomRow, UsageMonthlyRow
from infra.settings import Settings
from tests.test_dashboard import AS_OF, MONTH, REVISED_MONTH, ServerThread, fill_demo

CHROMIUM = os.environ.get("SPACES_CHROMIUM", "/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Settings, ServerThread]]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    await fill_demo(settings)
    with ServerThread(create_app(settings, poll_interval=0.2)) as running:
        yield settings, running


async def api(base: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").strip())


async def test_dashboard_page(server: tuple[Settings, ServerThread], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    settings, running = server
    base = running.url
    usage = await api(base, f"/api/usage?center=seosan&month={MONTH}")
    occupancy = (await api(base, "/api/occupancy?center=seosan"))["rooms"]

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1360, "height": 900},
                locale="ko-KR",
                timezone_id="Asia/Seoul",
                accept_downloads=True,
                device_scale_factor=1,
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda msg: errors.append(msg.text) if msg.type == "error" else None,
            )

            await page.goto(f"{base}/?center=seosan&month={MONTH}")
            await page.wait_for_selector(f'#rooms-table[data-month="{MONTH}"]')
            assert await page.input_value("#center-select") == "seosan"
            assert await page.input_value("#month-input") == MONTH

            # The chart: one bar per month, the API's figures.
            bars = await page.eval_on_selector_all(
                "#chart-svg rect.bar.visits",
                "els => els.map(e => [e.dataset.month, Number(e.dataset.visits)])",
            )
            assert bars == [[m["month"], m["visits"]] for m in usage["months"]]
            hours = await page.eval_on_selector_all(
                "#chart-svg rect.bar.hours",
                "els => els.map(e => [e.dataset.month, Number(e.dataset.bookedHours)])",
            )
            assert hours == [[m["month"], m["booked_hours"]] for m in usage["months"]]
            points = await page.eval_on_selector_all(
                "#chart-svg circle.util-point",
                "els => els.map(e => [e.dataset.month, Number(e.dataset.utilization)])",
            )
            assert points == [[m["month"], m["utilization"]] for m in usage["months"]]
            occupied = await page.eval_on_selector_all(
                "#chart-svg circle.occ-point",
                "els => els.map(e => [e.dataset.month, Number(e.dataset.occupancyUtilization)])",
            )
            assert occupied == [[m["month"], m["occupancy_utilization"]] for m in usage["months"]]
            # Taller bar for more visits (the drawing matches the data).
            heights = await page.eval_on_selector_all(
                "#chart-svg rect.bar.visits", "els => els.map(e => e.getBBox().height)"
            )
            by_visits = sorted(zip(bars, heights, strict=True), key=lambda x: x[0][1])
            assert [h for _, h in by_visits] == sorted(heights)

            # The room table: the numbers shown are the API's.
            rows = await page.eval_on_selector_all(
                "#rooms-table tbody tr[data-room]",
                """rows => rows.map(r => [r.dataset.room, Object.fromEntries(
                    [...r.querySelectorAll('td[data-field]')].map(
                        td => [td.dataset.field, td.innerText.trim()]))])""",
            )
            assert [room_id for room_id, _ in rows] == [r["room_id"] for r in usage["rooms"]]
            for (_, shown), room in zip(rows, usage["rooms"], strict=True):
                assert room["name"] in shown["name"]
                for field in ("visits", "bookings_confirmed", "bookings_cancelled", "no_shows"):
                    assert number(shown[field]) == room[field], field
                for field in ("bookings_rejected", "checkins_denied", "unique_members"):
                    assert number(shown[field]) == room[field], field
                assert number(shown["peak_occupancy"]) == room["peak_occupancy"]
                assert abs(number(shown["booked_hours"]) - room["booked_hours"]) <= 0.0501
                assert abs(number(shown["open_hours"]) - room["open_hours"]) <= 0.0501
                assert abs(number(shown["utilization"]) - room["utilization"] * 100) <= 0.0501
                occupied = room["occupancy_utilization"] * 100
                assert abs(number(shown["occupancy_utilization"]) - occupied) <= 0.0501
                if room["no_show_rate"] is None:
                    assert shown["no_show_rate"] == "—"
                else:
                    rate = room["no_show_rate"] * 100
                    assert abs(number(shown["no_show_rate"]) - rate) <= 0.0501
                if room["peak_at"] is None:
                    assert shown["peak_at"] == "—"
                else:  # day and time of the room's local clock: "14일 12:10"
                    day, time = int(room["peak_at"][8:10]), room["peak_at"][11:16]
                    assert shown["peak_at"] == f"{day}일 {time}"
            total = await page.inner_text('#rooms-table tfoot td[data-field="visits"]')
            assert number(total) == usage["center"]["visits"]
            kpi = await page.inner_text('#kpis [data-field="visits"] .kpi-value')
            assert number(kpi) == usage["center"]["visits"]
            kpi = await page.inner_text('#kpis [data-field="occupancy_utilization"] .kpi-value')
            assert abs(number(kpi) - usage["center"]["occupancy_utilization"] * 100) <= 0.0501

            # Live occupancy against capacity.
            shown_occ = await page.eval_on_selector_all(
                "#occupancy .occ",
                "els => els.map(e => [e.dataset.room, Number(e.dataset.occupancy),"
                " Number(e.dataset.capacity)])",
            )
            assert shown_occ == [[r["room_id"], r["occupancy"], r["capacity"]] for r in occupancy]

            # The CSV link downloads the month's export.
            async with page.expect_download() as download_info:
                await page.click("#csv-link")
            download = await download_info.value
            assert download.suggested_filename == f"usage-seosan-{MONTH}.csv"
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            exported = list(csv.DictReader(io.StringIO(saved.read_text("utf-8-sig"))))
            assert list(exported[0]) == [*FIELDS, "name"]
            assert [r["id"] for r in exported] == [
                *(r["room_id"] for r in usage["rooms"]),
                "seosan",
            ]
            for row, room in zip(exported, [*usage["rooms"], usage["center"]], strict=True):
                assert int(row["visits"]) == room["visits"]
                assert float(row["booked_hours"]) == room["booked_hours"]
                assert float(row["utilization"]) == room["utilization"]
                assert float(row["occupancy_utilization"]) == room["occupancy_utilization"]

            # Another month through the picker: a revised, final month shows its badges.
            await page.fill("#month-input", REVISED_MONTH)
            await page.dispatch_event("#month-input", "change")
            await page.wait_for_selector(f'#rooms-table[data-month="{REVISED_MONTH}"]')
            assert await page.locator("#rooms-table .badge.revised").count() == 4
            assert await page.locator("#rooms-table .badge.final").count() == 4
            assert REVISED_MONTH in page.url
            await page.fill("#month-input", MONTH)
            await page.dispatch_event("#month-input", "change")
            await page.wait_for_selector(f'#rooms-table[data-month="{MONTH}"]')
            await page.locator("#month-input").blur()
            await page.mouse.move(0, 0)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # Live: decisions arrive (rows change) and the page follows without a reload.
            await page.wait_for_selector("#live.on")
            db = Database(settings)
            async with db.session() as session, session.begin():
                await session.execute(
                    update(RoomRow)
                    .where(RoomRow.room_id == "seosan-club-1")
                    .values(occupancy=12, updated_at=AS_OF + timedelta(minutes=1))
                )
                key = f"center:seosan:{MONTH}"
                value = dict(usage["center"])
                value.pop("has_data")
                value["visits"] += 1000
                await session.execute(
                    update(UsageMonthlyRow)
                    .where(UsageMonthlyRow.key == key)
                    .values(value=value, updated_at=AS_OF + timedelta(minutes=1))
                )
            await db.dispose()
            await page.wait_for_selector(
                '#occupancy .occ[data-room="seosan-club-1"][data-occupancy="12"]', timeout=5000
            )
            expected = usage["center"]["visits"] + 1000
            await page.wait_for_selector(
                f'#kpis [data-field="visits"][data-value="{expected}"]', timeout=5000
            )
            last_bar = await page.get_attribute(
                f'#chart-svg rect.bar.visits[data-month="{MONTH}"]', "data-visits"
            )
            assert last_bar == str(expected)

            assert errors == []
            await context.close()
        finally:
            await browser.close()
