"""``spaces report``: the month's table in the terminal, and its pure formatting helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from entrypoints.report import (
    average_line,
    display_width,
    fmt_hours,
    fmt_pct,
    fmt_peak_at,
    fmt_rate,
    format_table,
    monthly_average,
    occupancy_line,
    occupancy_report,
    pad,
    render_center,
    render_occupancy,
    report,
    status,
)
from infra.db import Database
from infra.read_models import month_range, normalise_aggregate
from infra.settings import Settings
from tests.test_dashboard import FIRST_MONTH, MONTH, REVISED_MONTH, WALK_IN_ROOM, fill_demo

# --- pure helpers ---------------------------------------------------------------------


def test_display_width_counts_hangul_double() -> None:
    assert display_width("abc") == 3
    assert display_width("북카페") == 6
    assert display_width("동아리실 1") == 10
    assert pad("북카페", 8) == "북카페  "
    assert pad("12", 5, ">") == "   12"
    assert pad("toolong", 3) == "toolong"


def test_format_table_aligns_wide_characters_and_sets_off_the_total() -> None:
    text = format_table(
        ["Room", "Visits"],
        [["북카페", "5"], ["office", "1,234"], ["Total", "1,239"]],
        ["<", ">"],
    )
    lines = text.splitlines()
    assert lines == [
        "Room    Visits",
        "------  ------",
        "북카페       5",
        "office   1,234",
        "------  ------",
        "Total    1,239",
    ]
    assert len({display_width(line) for line in lines}) == 1


def test_number_formats() -> None:
    assert fmt_hours(1234.25) == "1,234.3"
    assert fmt_hours(46.25) == "46.3" and fmt_hours(46.24) == "46.2"
    assert fmt_hours(0) == "0.0"
    assert fmt_pct(0.4567) == "45.7%"
    assert fmt_pct(1.25) == "125.0%"
    assert fmt_pct(0.11855) == "11.9%"


def test_rate_and_peak_formats() -> None:
    assert fmt_rate(None) == "-" and fmt_rate(0.125) == "12.5%" and fmt_rate(0.0) == "0.0%"
    peak = normalise_aggregate(
        "room", "r", MONTH, {"peak_at": "2026-11-28T14:03:00+09:00", "peak_hour": 14}
    )
    assert fmt_peak_at(peak) == "11-28 14:03"  # the room's local time, as the value says
    assert fmt_peak_at(normalise_aggregate("room", "r", MONTH, {"peak_hour": 9})) == "09:00"
    assert fmt_peak_at(normalise_aggregate("room", "r", MONTH, None)) == "-"


def test_occupancy_line_shows_a_walk_in_room_next_to_its_bookings() -> None:
    cafe = normalise_aggregate(
        "room",
        "bookcafe",
        MONTH,
        {
            "visits": 135,
            "utilization": 0.0,
            "person_hours": 491.25,
            "capacity_hours": 10_800.0,
            "occupancy_utilization": 0.0455,
            "peak_occupancy": 30,
            "peak_at": "2026-11-28T14:03:00+09:00",
            "peak_hour": 14,
        },
    )
    assert occupancy_line("공유 북카페", cafe) == (
        "공유 북카페: occupancy 4.6% (491.3 of 10,800.0 person-hours), booked 0.0%; "
        "peak 30 at 11-28 14:03; no booking reached its start"
    )
    club = normalise_aggregate(
        "room", "club", MONTH, {"no_shows": 2, "bookings_attended": 14, "no_show_rate": 0.125}
    )
    assert occupancy_line("club", club).endswith("; no-show rate 12.5% (2 of 16)")


def test_status() -> None:
    assert status(normalise_aggregate("room", "r", MONTH, None)) == "no data"
    assert status(normalise_aggregate("room", "r", MONTH, {"final": False})) == "open"
    assert status(normalise_aggregate("room", "r", MONTH, {"final": True})) == "final"
    revised = normalise_aggregate(
        "room", "r", MONTH, {"final": True, "revised_after_close": True, "revision": 2}
    )
    assert status(revised) == "final, revised (2)"


def test_monthly_average() -> None:
    history = [
        normalise_aggregate("center", "c", m, {"visits": v, "booked_hours": h})
        for m, v, h in [("2026-01", 10, 5.0), ("2026-02", 20, 7.5), ("2026-03", 33, 0.0)]
    ]
    average = monthly_average(history)
    assert average == {
        "first": "2026-01",
        "last": "2026-03",
        "months": 3,
        "visits": 21.0,
        "booked_hours": 12.5 / 3,
    }
    line = average_line(average)
    assert line.startswith("Monthly average since the center opened (2026-01, 3 months): ")
    assert line.endswith(": 21.0 visits, 4.2 booked hours")
    assert monthly_average([]) is None
    assert "no monthly figures" in average_line(None)


def test_render_center_is_pure() -> None:
    room: dict[str, Any] = normalise_aggregate("room", "r1", MONTH, {"visits": 7, "final": True})
    room.update(room_id="r1", name="동아리실 1", capacity=15)
    usage: dict[str, Any] = {
        "center_id": "c",
        "month": MONTH,
        "center": normalise_aggregate("center", "c", MONTH, {"visits": 7, "final": True}),
        "rooms": [room],
    }
    text = render_center(usage, [usage["center"]])
    lines = text.splitlines()
    assert lines[0] == f"c — {MONTH} (final)"
    assert lines[1].startswith("Room ") and lines[3].startswith("동아리실 1 (r1)")
    assert lines[-2].startswith("Total ")
    assert lines[-1].endswith("7.0 visits, 0.0 booked hours")


# --- the command ----------------------------------------------------------------------


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    await fill_demo(settings)
    return settings


def row_cells(output: str, label: str) -> list[str]:
    for line in output.splitlines():
        if line.startswith(label):
            return line[len(label) :].split()
    raise AssertionError(f"no row {label!r} in\n{output}")


async def test_report_one_center(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_dashboard import demo_values

    values = demo_values()
    assert await report(settings, MONTH, "seosan") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"seosan — {MONTH} (open)"
    assert "haemi" not in out

    header = out.splitlines()[1].split()
    assert header[:7] == ["Room", "Visits", "Confirmed", "Cancelled", "No-shows", "No-show", "%"]
    assert "Util" in header and "Occupied" in header and header[-3:] == ["Peak", "at", "Status"]

    total = values[f"center:seosan:{MONTH}"]
    cells = row_cells(out, "Total")
    assert cells[0] == f"{total['visits']:,}"
    assert cells[1] == str(total["bookings_confirmed"])
    assert abs(float(cells[4].rstrip("%")) - total["no_show_rate"] * 100) <= 0.0501
    assert abs(float(cells[6].replace(",", "")) - total["booked_hours"]) <= 0.0501
    assert abs(float(cells[8].rstrip("%")) - total["utilization"] * 100) <= 0.0501
    assert abs(float(cells[9].rstrip("%")) - total["occupancy_utilization"] * 100) <= 0.0501
    assert cells[13:15] == [total["peak_at"][5:10], total["peak_at"][11:16]]

    office = values[f"room:seosan-office:{MONTH}"]
    cells = row_cells(out, "공유오피스 (seosan-office)")
    assert cells[0] == f"{office['visits']:,}" and cells[-1] == "open"
    assert abs(float(cells[9].rstrip("%")) - office["occupancy_utilization"] * 100) <= 0.0501
    assert row_cells(out, f"동아리실 2 ({WALK_IN_ROOM})")[4] == "-"  # no booking reached its start
    assert row_cells(out, "북카페 (seosan-cafe)")[-2:] == ["no", "data"]

    months = [m for m in month_range(MONTH, 12) if m >= FIRST_MONTH]
    visits = sum(values[f"center:seosan:{m}"]["visits"] for m in months) / len(months)
    hours = sum(values[f"center:seosan:{m}"]["booked_hours"] for m in months) / len(months)
    assert out.splitlines()[-1] == (
        f"Monthly average since the center opened ({FIRST_MONTH}, {len(months)} months): "
        f"{fmt_hours(visits)} visits, {fmt_hours(hours)} booked hours"
    )


async def test_occupancy_report(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_dashboard import demo_values

    values = demo_values()
    assert await occupancy_report(settings, ["2024-05", MONTH], "seosan") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"seosan — {MONTH} (open): occupancy"
    office = values[f"room:seosan-office:{MONTH}"]
    line = next(x for x in lines if "(seosan-office)" in x)
    assert f"occupancy {fmt_pct(office['occupancy_utilization'])} " in line
    assert f"no-show rate {fmt_pct(office['no_show_rate'])} " in line
    assert next(x for x in lines if WALK_IN_ROOM in x).endswith("no booking reached its start")
    assert lines[-1].startswith("  Total: occupancy ")
    assert await occupancy_report(settings, ["2024-05"], "seosan") == 1
    assert "no usage figures for 2024-05" in capsys.readouterr().err


def test_render_occupancy_is_pure() -> None:
    room: dict[str, Any] = normalise_aggregate("room", "r1", MONTH, {"person_hours": 3.0})
    room.update(room_id="r1", name="동아리실 1", capacity=15)
    usage: dict[str, Any] = {
        "center_id": "c",
        "month": MONTH,
        "center": normalise_aggregate("center", "c", MONTH, {"final": True}),
        "rooms": [room],
    }
    lines = render_occupancy(usage).splitlines()
    assert lines[0] == f"c — {MONTH} (final): occupancy"
    assert lines[1].startswith("  동아리실 1 (r1): occupancy 0.0% (3.0 of 0.0 person-hours)")
    assert lines[2].startswith("  Total: ")


async def test_report_average_only_counts_months_up_to_the_one_asked(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await report(settings, "2026-02", "seosan") == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"Monthly average since the center opened ({FIRST_MONTH}, 2 months)")


async def test_report_every_center(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert await report(settings, REVISED_MONTH, None) == 0
    out = capsys.readouterr().out
    titles = [line for line in out.splitlines() if " — " in line]
    assert titles == [
        f"haemi — {REVISED_MONTH} (final, revised (1))",
        f"seosan — {REVISED_MONTH} (final, revised (1))",
    ]
    assert out.count("Monthly average since the center opened") == 2


async def test_report_without_data(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert await report(settings, "2024-05", None) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no usage figures for 2024-05" in captured.err

    assert await report(settings, "2024-05", "seosan") == 1
    assert "no usage figures for 2024-05 in center 'seosan'" in capsys.readouterr().err


async def test_report_unknown_center_and_bad_month(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await report(settings, MONTH, "nowhere") == 1
    assert "unknown center 'nowhere'" in capsys.readouterr().err
    assert await report(settings, "11/2026", None) == 1
    assert "YYYY-MM" in capsys.readouterr().err


async def test_report_on_an_empty_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    db = Database(settings)
    await db.migrate()
    await db.dispose()
    assert await report(settings, MONTH, None) == 1
    assert "no usage figures" in capsys.readouterr().err
