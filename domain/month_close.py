"""Which months of a room or center are due to close, by its own time zone(s).

Pure Python, like ``domain.usage``. A room's month ends at local midnight of the next 1st
in the room's time zone; a center's when it has ended in the zone of every one of its
rooms (the last of them), since the center sums them. Closing catches up: every month
after the last one closed, up to the last one ended, plus any month a late decision
opened again. Closing is idempotent: a month already final yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.months import (
    DEFAULT_TIMEZONE,
    add_months,
    month_start,
    parse_month,
    previous_month,
    require_aware,
)
from domain.usage import CenterUsage, RoomUsage, close_month
from schemas.outputs import UsageMonthly

__all__ = ["Closed", "close_due", "last_ended_month", "month_ends_at", "zones_of"]


def zones_of(state: RoomUsage | CenterUsage) -> set[str]:
    """The time zones whose months the state's months are."""
    if isinstance(state, RoomUsage):
        return {state.timezone}
    return {room.timezone for room in state.rooms.values()} or {DEFAULT_TIMEZONE}


def month_ends_at(month: str, zones: set[str]) -> datetime:
    """When ``month`` has ended in every zone of ``zones`` (UTC)."""
    parse_month(month)
    following = add_months(month, 1)
    return max(month_start(following, zone) for zone in zones)


def last_ended_month(zones: set[str], now: datetime) -> str:
    """The newest month that has ended in every zone of ``zones`` at ``now``."""
    require_aware(now, "now")
    return min(previous_month(now, zone) for zone in zones)


@dataclass(frozen=True)
class Closed:
    """What one scope's close did."""

    months: list[str]
    """The months that became final now (oldest first)."""
    aggregates: list[UsageMonthly]
    closed_through: str
    next_close_at: datetime
    """When the month after ``closed_through`` ends in the scope's zone(s)."""


def close_due(
    state: RoomUsage | CenterUsage,
    closed_through: str | None,
    now: datetime,
    through: str | None = None,
) -> Closed:
    """Close every month of ``state`` that has ended at ``now`` and is not final yet.

    ``closed_through``: the last month closed before (``None``: never closed: only the
    months the state has open, and the last one ended). ``through``: close no further
    than this month (a close by hand), even where later months have ended.
    """
    zones = zones_of(state)
    due = last_ended_month(zones, now)
    if through is not None and through < due:
        due = through
    wanted = {m for m, stats in state.months.items() if not stats.final and m <= due}
    if closed_through is None:
        wanted.add(due)
    else:
        month = add_months(closed_through, 1)
        while month <= due:
            wanted.add(month)
            month = add_months(month, 1)
    months: list[str] = []
    aggregates: list[UsageMonthly] = []
    for month in sorted(wanted):
        stats = state.months.get(month)
        if stats is not None and stats.final:
            continue
        months.append(month)
        aggregates.extend(close_month(state, month, now))
    reached = due if closed_through is None else max(due, closed_through)
    return Closed(months, aggregates, reached, month_ends_at(add_months(reached, 1), zones))
