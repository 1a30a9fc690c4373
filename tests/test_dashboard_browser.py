"""The dashboard page in headless Chromium, served by the Kafka-fed dashboard process.

The dashboard runs as its own process with only ``SPACES_KAFKA_BOOTSTRAP`` (no database: see
``tests/test_integration_dashboard.py``) over topics holding the demo's messages; the test
checks the chart, the table, the heatmap, occupancy, the CSV link, the print report and live
updates pushed from the topics, against the JSON API.

Needs the real broker and Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install -y
chromium``) and the ``playwright`` Python package; never ``playwright install``. Saves
``artifacts/dashboard.png``, ``artifacts/dashboard-room-heatmap.png``, ``artifacts/report.png``
and ``artifacts/report.pdf``.
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

from entrypoints.dashboard import FIELDS
from infra.settings import Settings
from schemas.outputs import Occupancy
from tests.conftest import isolated_topics
from tests.test_dashboard import AS_OF, MONTH, REVISED_MONTH
from tests.test_integration_dashboard import (
    CENTER_NAMES,
    DashboardProcess,
    dashboard_process,
    demo_messages,
    publish,
)

CHROMIUM = os.environ.get("SPACES_CHROMIUM", "/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
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
async def server(
    kafka_settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Settings, DashboardProcess]]:
    """The demo's messages on fresh topics and a dashboard process that read them."""
    from infra.kafka_local import ensure_topics

    settings = kafka_settings.model_copy(update={"topics": isolated_topics(), "partitions": 3})
    await ensure_topics(settings)
    values, rooms = demo_messages()
    await publish(settings, values, rooms)
    async with dashboard_process(settings, tmp_path) as running:
        yield settings, running


async def api(base: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").strip())


def heatmap_cells(grid: list[list[float]] | None) -> list[list[Any]]:
    """The cells the page should draw for ``grid``: [day, hour, value] (``""``: unknown)."""
    if grid is None:
        return []
    return [[d, h, v] for d, row in enumerate(grid) for h, v in enumerate(row)]


CELLS_JS = (
    "els => els.map(e => [Number(e.dataset.day), Number(e.dataset.hour),"
    " e.dataset.value === '' ? '' : Number(e.dataset.value)])"
)


async def test_dashboard_page(server: tuple[Settings, DashboardProcess], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    settings, running = server
    base = running.url
    values, _ = demo_messages()
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
            # The heading names the center (from the occupancy topic), not its id.
            assert usage["center_name"] == CENTER_NAMES["seosan"]
            assert (
                await page.inner_text("#month-title") == f"{CENTER_NAMES['seosan']} · 2026년 11월"
            )
            options = await page.eval_on_selector_all(
                "#center-select option", "els => els.map(e => e.textContent)"
            )
            assert f"{CENTER_NAMES['seosan']} (4개 공간)" in options
            family = await page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "Noto Sans CJK KR" in family and "Malgun Gothic" in family

            # The heatmap (center): every cell is the API's figure.
            center_grid = usage["center"]["occupancy_by_weekday_hour"]
            assert center_grid is not None
            await page.wait_for_selector('#heatmap[data-scope="center"] td.cell')
            shown_cells = await page.eval_on_selector_all("#heatmap td.cell", CELLS_JS)
            assert shown_cells == heatmap_cells(center_grid)
            busiest = max(v for row in center_grid for v in row)
            day, hour = next(
                (d, h)
                for d, row in enumerate(center_grid)
                for h, v in enumerate(row)
                if v == busiest
            )
            title = await page.get_attribute(
                f'#heatmap td[data-day="{day}"][data-hour="{hour}"]', "title"
            )
            assert title is not None and f"{busiest:.1f}명" in title

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

            # The heatmap of one room, through the scope picker.
            office = next(r for r in usage["rooms"] if r["room_id"] == "seosan-office")
            await page.select_option("#heatmap-scope", "seosan-office")
            await page.wait_for_selector('#heatmap[data-scope="seosan-office"]')
            shown_cells = await page.eval_on_selector_all("#heatmap td.cell", CELLS_JS)
            assert shown_cells == heatmap_cells(office["occupancy_by_weekday_hour"])
            await page.locator(".heatmap-card").screenshot(
                path=str(ARTIFACTS / "dashboard-room-heatmap.png")
            )
            # A room without figures this month says so instead of drawing zeros.
            await page.select_option("#heatmap-scope", "seosan-cafe")
            await page.wait_for_selector('#heatmap[data-scope="seosan-cafe"] .heatmap-empty')
            await page.select_option("#heatmap-scope", "center")

            # The print report: same figures, laid out for A4, saved as PNG and PDF.
            assert await page.get_attribute("#report-link", "href") == (
                f"/report?center=seosan&month={MONTH}"
            )
            report = await context.new_page()
            report.on("pageerror", lambda error: errors.append(str(error)))
            await report.goto(f"{base}/report?center=seosan&month={MONTH}")
            await report.wait_for_selector('#report[data-ready="true"]')
            heading = await report.inner_text("#report-title")
            assert heading == f"{CENTER_NAMES['seosan']} · 2026년 11월"
            rows = await report.eval_on_selector_all(
                "#report-rooms tbody tr[data-room]",
                """rows => rows.map(r => [r.dataset.room, Object.fromEntries(
                    [...r.querySelectorAll('td[data-field]')].map(
                        td => [td.dataset.field, td.dataset.value])), r.cells[0].innerText])""",
            )
            assert [r[0] for r in rows] == [r["room_id"] for r in usage["rooms"]]
            for (_, shown, name), room in zip(rows, usage["rooms"], strict=True):
                assert name == room["name"]
                for field in ("visits", "bookings_confirmed", "no_shows", "peak_occupancy"):
                    assert float(shown[field]) == room[field], field
                assert float(shown["occupancy_utilization"]) == room["occupancy_utilization"]
            summary = await report.get_attribute('#summary td[data-field="visits"]', "data-value")
            assert summary == str(usage["center"]["visits"])
            report_cells = await report.eval_on_selector_all("#report-heatmap td.cell", CELLS_JS)
            assert report_cells == heatmap_cells(center_grid)
            months = await report.eval_on_selector_all(
                "#report-months tbody tr",
                "rows => rows.map(r => [r.dataset.month,"
                " Number(r.querySelector('[data-field=visits]').dataset.value)])",
            )
            assert months == [[m["month"], m["visits"]] for m in usage["months"]]
            await report.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            await report.emulate_media(media="print")
            assert not await report.is_visible("#print-button")
            pdf = await report.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
            (ARTIFACTS / "report.pdf").write_bytes(pdf)
            await report.close()

            # Live: new figures arrive on the topics and the page follows without a reload:
            # occupancy pushed by the occupancy subscriber, usage through an update.
            await page.wait_for_selector("#live.on")
            await page.wait_for_selector("#live[data-version]")
            await page.wait_for_timeout(800)  # the refetch the first update asks for is done
            renders = await page.get_attribute("#main", "data-renders")
            await publish(
                settings,
                rooms=[
                    Occupancy(
                        room_id="seosan-club-1",
                        center_id="seosan",
                        occupancy=12,
                        capacity=15,
                        as_of=AS_OF + timedelta(minutes=1),
                        room_name="동아리실 1",
                        center_name=CENTER_NAMES["seosan"],
                    )
                ],
            )
            await page.wait_for_selector(
                '#occupancy .occ[data-room="seosan-club-1"][data-occupancy="12"]', timeout=5000
            )
            # Drawn from the pushed event itself: no refetch of the month.
            assert await page.get_attribute("#main", "data-renders") == renders
            value = dict(values[f"center:seosan:{MONTH}"])
            value["visits"] += 1000
            await publish(settings, usage={f"center:seosan:{MONTH}": value})
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
