"""``spaces report --month YYYY-MM [--center ID]``: a month's usage table in the terminal.

Reads ``usage_monthly`` and ``rooms`` only, through the read models the dashboard uses too
(``infra.read_models``). Per center:
one row per room, a total row (the center aggregate), and the monthly average of visits and
booked hours over every month stored for that center up to the month asked for ("since the
center opened"). Booked utilization (``Util``) and occupancy utilization (``Occupied``) stand
side by side: a walk-in room is used without being booked. The formatting helpers are pure
functions of the read models' dicts.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from entrypoints.dashboard import BadRequest, check_month
from infra.read_models import (
    Aggregate,
    MonthUsage,
    center_exists,
    center_history,
    list_centers,
    month_usage,
    read_engine,
)
from infra.settings import Settings

COLUMNS: tuple[tuple[str, str], ...] = (
    ("Room", "<"),
    ("Visits", ">"),
    ("Confirmed", ">"),
    ("Cancelled", ">"),
    ("No-shows", ">"),
    ("No-show %", ">"),
    ("Rejected", ">"),
    ("Booked h", ">"),
    ("Open h", ">"),
    ("Util", ">"),
    ("Occupied", ">"),
    ("Denied", ">"),
    ("Members", ">"),
    ("Peak", ">"),
    ("Peak at", ">"),
    ("Status", "<"),
)
"""``Util`` is booked hours over open hours; ``Occupied`` is person-hours over capacity x
open hours (docs/usage-statistics.md)."""
NOT_APPLICABLE = "-"
"""A rate or time that does not exist: ASCII, unlike the em dash of the titles."""


# --- pure formatting ------------------------------------------------------------------


def display_width(text: str) -> int:
    """Terminal columns: Hangul and other wide characters take two."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int, align: str = "<") -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if align == ">" else text + fill


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], aligns: Sequence[str]
) -> str:
    """A plain text table; the last row is set off by a rule (the total)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, display_width(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(pad(c, w, a) for c, w, a in zip(cells, widths, aligns, strict=True))

    rule = "  ".join("-" * w for w in widths)
    out = [line(headers), rule]
    out += [line(row) for row in rows[:-1]]
    if rows:
        out += [rule, line(rows[-1])]
    return "\n".join(line.rstrip() for line in out)


def fmt_int(value: float) -> str:
    return f"{int(value):,}"


def _half_up(value: float) -> Decimal:
    """One decimal, halves away from zero (as the page shows them: 46.25 -> 46.3)."""
    return Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def fmt_hours(value: float) -> str:
    return f"{_half_up(value):,}"


def fmt_pct(value: float) -> str:
    return f"{_half_up(value * 100)}%"


def fmt_rate(value: float | None) -> str:
    """A share that may not exist (no booking reached its start): a dash then."""
    return NOT_APPLICABLE if value is None else fmt_pct(value)


def fmt_peak_at(aggregate: Aggregate) -> str:
    """``MM-DD HH:MM`` in the room's local time (as the value carries it), or the hour."""
    peak_at = aggregate.get("peak_at")
    if peak_at:
        return f"{peak_at[5:10]} {peak_at[11:16]}"
    hour = aggregate.get("peak_hour")
    return NOT_APPLICABLE if hour is None else f"{hour:02d}:00"


def status(aggregate: Aggregate) -> str:
    if not aggregate.get("has_data", True):
        return "no data"
    if aggregate.get("revised_after_close"):
        return f"final, revised ({aggregate.get('revision', 0)})"
    return "final" if aggregate.get("final") else "open"


def table_row(label: str, aggregate: Aggregate) -> list[str]:
    a = aggregate
    return [
        label,
        fmt_int(a["visits"]),
        fmt_int(a["bookings_confirmed"]),
        fmt_int(a["bookings_cancelled"]),
        fmt_int(a["no_shows"]),
        fmt_rate(a["no_show_rate"]),
        fmt_int(a["bookings_rejected"]),
        fmt_hours(a["booked_hours"]),
        fmt_hours(a["open_hours"]),
        fmt_pct(a["utilization"]),
        fmt_pct(a["occupancy_utilization"]),
        fmt_int(a["checkins_denied"]),
        fmt_int(a["unique_members"]),
        fmt_int(a["peak_occupancy"]),
        fmt_peak_at(a),
        status(a),
    ]


def monthly_average(history: Sequence[Aggregate]) -> dict[str, Any] | None:
    """Average visits and booked hours over the months given (stored months only)."""
    if not history:
        return None
    n = len(history)
    return {
        "first": history[0]["month"],
        "last": history[-1]["month"],
        "months": n,
        "visits": sum(m["visits"] for m in history) / n,
        "booked_hours": sum(m["booked_hours"] for m in history) / n,
    }


def average_line(average: dict[str, Any] | None) -> str:
    if average is None:
        return "Monthly average since the center opened: no monthly figures yet"
    months = average["months"]
    return (
        f"Monthly average since the center opened ({average['first']}, "
        f"{months} month{'s' if months != 1 else ''}): "
        f"{fmt_hours(average['visits'])} visits, {fmt_hours(average['booked_hours'])} booked hours"
    )


def render_center(usage: MonthUsage, history: Sequence[Aggregate]) -> str:
    """The block printed for one center: title, table (rooms + total) and the average."""
    title = f"{usage['center_id']} — {usage['month']} ({status(usage['center'])})"
    rows = [table_row(f"{r['name']} ({r['room_id']})", r) for r in usage["rooms"]]
    rows.append(table_row("Total", usage["center"]))
    headers = [name for name, _ in COLUMNS]
    aligns = [align for _, align in COLUMNS]
    table = format_table(headers, rows, aligns)
    return f"{title}\n{table}\n{average_line(monthly_average(history))}\n"


def occupancy_line(label: str, a: Aggregate) -> str:
    """How full a room was next to how booked it was, its peak and its no-show rate."""
    rate = a["no_show_rate"]
    reached = a["no_shows"] + a["bookings_attended"]
    no_shows = (
        "no booking reached its start"
        if rate is None
        else f"no-show rate {fmt_pct(rate)} ({fmt_int(a['no_shows'])} of {fmt_int(reached)})"
    )
    return (
        f"{label}: occupancy {fmt_pct(a['occupancy_utilization'])} "
        f"({fmt_hours(a['person_hours'])} of {fmt_hours(a['capacity_hours'])} person-hours), "
        f"booked {fmt_pct(a['utilization'])}; peak {fmt_int(a['peak_occupancy'])} "
        f"at {fmt_peak_at(a)}; {no_shows}"
    )


def render_occupancy(usage: MonthUsage) -> str:
    """Per room and for the center: occupancy utilization next to booked utilization, the
    peak and the no-show rate (the rooms used without bookings show here)."""
    title = f"{usage['center_id']} — {usage['month']} ({status(usage['center'])}): occupancy"
    rooms = [("  " + occupancy_line(f"{r['name']} ({r['room_id']})", r)) for r in usage["rooms"]]
    total = "  " + occupancy_line("Total", usage["center"])
    lines = [*rooms, total]
    return "\n".join([title, *lines]) + "\n"


def has_data(usage: MonthUsage) -> bool:
    return bool(usage["center"]["has_data"]) or any(r["has_data"] for r in usage["rooms"])


# --- the command ----------------------------------------------------------------------


async def _blocks(session: AsyncSession, month: str, center: str | None) -> list[str] | str:
    """The printed blocks, or an error message."""
    if center is not None:
        if not await center_exists(session, center):
            return f"unknown center {center!r}"
        centers = [center]
    else:
        centers = [c["center_id"] for c in await list_centers(session)]
    blocks = []
    for ident in centers:
        usage = await month_usage(session, ident, month, chart_months=1)
        if not has_data(usage):
            continue
        history = await center_history(session, ident, month)
        blocks.append(render_center(usage, history))
    if not blocks:
        where = f"center {center!r}" if center is not None else "any center"
        return f"no usage figures for {month} in {where}"
    return blocks


async def occupancy_report(settings: Settings, months: Sequence[str], center: str) -> int:
    """Print, for each of ``months``, the center's occupancy lines; 1 when none has figures."""
    engine = read_engine(settings)
    blocks: list[str] = []
    try:
        async with AsyncSession(engine) as session:
            for month in months:
                usage = await month_usage(session, center, check_month(month), chart_months=1)
                if has_data(usage):
                    blocks.append(render_occupancy(usage))
    finally:
        await engine.dispose()
    if not blocks:
        print(f"no usage figures for {', '.join(months)} in center {center!r}", file=sys.stderr)
        return 1
    print("\n".join(blocks), end="")
    return 0


async def report(settings: Settings, month: str, center: str | None) -> int:
    """Print the month's usage table per center; 1 (and a message) when there is nothing."""
    try:
        check_month(month)
    except BadRequest as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    engine = read_engine(settings)
    try:
        async with AsyncSession(engine) as session:
            result = await _blocks(session, month, center)
    finally:
        await engine.dispose()
    if isinstance(result, str):
        print(result, file=sys.stderr)
        return 1
    print("\n".join(result), end="")
    return 0
