"""Read models: every query the dashboard and the report make, in one place.

They only READ the ``rooms`` table (kept by the room authority) and ``usage_monthly``
(kept by the statistics consumer), through an ``AsyncSession`` the caller opens on
``read_engine``, and answer plain typed dicts (``TypedDict``) that serialise to JSON as
they are. ``entrypoints.dashboard`` (HTTP) and ``entrypoints.report`` (terminal) only
parse their parameters, call these functions and render the answers.

A room's name lives inside its state document (``rooms.state``, which also holds its
bookings and can be large): the queries read just that field with a JSON path
(``JSON_EXTRACT`` on SQLite, ``->>`` on PostgreSQL), never the whole document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, TypedDict, get_args

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.months import add_months
from infra.db import RoomRow, UsageMonthlyRow, make_engine
from infra.settings import Settings
from schemas.outputs import usage_key

CountField = Literal[
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "visits",
    "checkins_denied",
    "unique_members",
    "peak_occupancy",
    "revision",
    "bookings_attended",
]
FloatField = Literal[
    "booked_hours",
    "open_hours",
    "utilization",
    "person_hours",
    "capacity_hours",
    "occupancy_utilization",
]
COUNT_FIELDS: tuple[CountField, ...] = get_args(CountField)
FLOAT_FIELDS: tuple[FloatField, ...] = get_args(FloatField)

CHART_MONTHS = 12
"""How many months ``month_usage`` returns for the chart by default."""

_CHUNK = 500
"""Keys per ``IN (...)``: well under every backend's limit on bound parameters."""


# --- the answers ----------------------------------------------------------------------


class Aggregate(TypedDict):
    """A ``usage-monthly`` value with every contract field present, plus ``has_data``."""

    scope: str
    id: str
    month: str
    bookings_confirmed: int
    bookings_rejected: int
    bookings_cancelled: int
    no_shows: int
    visits: int
    checkins_denied: int
    unique_members: int
    peak_occupancy: int
    revision: int
    booked_hours: float
    open_hours: float
    utilization: float
    final: bool
    updated_at: str | None
    revised_after_close: bool
    bookings_attended: int
    person_hours: float
    capacity_hours: float
    occupancy_utilization: float
    no_show_rate: float | None
    """``None``: no booking reached its start (or a value stored before the figure existed)."""
    peak_at: str | None
    peak_hour: int | None
    has_data: bool


class RoomAggregate(Aggregate):
    """A room's aggregate with what the ``rooms`` table says about the room."""

    room_id: str
    name: str
    capacity: int


class MonthUsage(TypedDict):
    """One center's month: its aggregate, its rooms', and the months ending with it."""

    center_id: str
    month: str
    center: Aggregate
    rooms: list[RoomAggregate]
    months: list[Aggregate]


class CenterSummary(TypedDict):
    center_id: str
    rooms: int


class RoomInfo(NamedTuple):
    room_id: str
    name: str
    capacity: int


# --- pure helpers ---------------------------------------------------------------------


def month_range(last: str, count: int) -> list[str]:
    """``count`` months ending with ``last``, oldest first."""
    return [add_months(last, n) for n in range(-(count - 1), 1)]


def empty_aggregate(scope: str, ident: str, month: str) -> Aggregate:
    """What a month without any ``usage-monthly`` value looks like: zeros, not final."""
    return Aggregate(
        scope=scope,
        id=ident,
        month=month,
        bookings_confirmed=0,
        bookings_rejected=0,
        bookings_cancelled=0,
        no_shows=0,
        visits=0,
        checkins_denied=0,
        unique_members=0,
        peak_occupancy=0,
        revision=0,
        booked_hours=0.0,
        open_hours=0.0,
        utilization=0.0,
        final=False,
        updated_at=None,
        revised_after_close=False,
        bookings_attended=0,
        person_hours=0.0,
        capacity_hours=0.0,
        occupancy_utilization=0.0,
        no_show_rate=None,
        peak_at=None,
        peak_hour=None,
        has_data=False,
    )


def normalise_aggregate(
    scope: str, ident: str, month: str, value: dict[str, Any] | None, final: bool = False
) -> Aggregate:
    """A stored value with every contract field present (missing ones zero, or ``None`` for
    the no-show rate and the peak's time) and ``has_data``."""
    result = empty_aggregate(scope, ident, month)
    if value is None:
        return result
    for count in COUNT_FIELDS:
        result[count] = int(value.get(count) or 0)
    for amount in FLOAT_FIELDS:
        result[amount] = float(value.get(amount) or 0.0)
    result["final"] = bool(value.get("final", final)) or final
    result["updated_at"] = value.get("updated_at")
    result["revised_after_close"] = bool(value.get("revised_after_close", False))
    rate, peak_at, peak_hour = (value.get(k) for k in ("no_show_rate", "peak_at", "peak_hour"))
    result["no_show_rate"] = None if rate is None else float(rate)
    result["peak_at"] = None if peak_at is None else str(peak_at)
    result["peak_hour"] = None if peak_hour is None else int(peak_hour)
    result["has_data"] = True
    return result


def room_name(room_id: str, name: object) -> str:
    """The name from the room's state, or its id when the state has none."""
    return str(name) if name else room_id


# --- the database, read-only ----------------------------------------------------------


def read_engine(settings: Settings) -> AsyncEngine:
    """Reads never take SQLite's write lock: a polling page must not slow the consumers."""
    return make_engine(settings, read_only=True)


_NAME = RoomRow.state["name"].as_string().label("name")
"""The room's name inside its state document, without loading the document."""


# --- queries --------------------------------------------------------------------------


async def list_centers(session: AsyncSession) -> list[CenterSummary]:
    """Every center the rooms or the usage figures know, with its room count."""
    counts: dict[str, int] = {}
    rows = await session.execute(
        select(RoomRow.center_id, func.count(RoomRow.room_id)).group_by(RoomRow.center_id)
    )
    for center_id, count in rows:
        counts[center_id] = int(count)
    idents = await session.scalars(
        select(UsageMonthlyRow.ident).where(UsageMonthlyRow.scope == "center").distinct()
    )
    for ident in idents:
        counts.setdefault(ident, 0)
    return [CenterSummary(center_id=c, rooms=counts[c]) for c in sorted(counts)]


async def center_exists(session: AsyncSession, center: str) -> bool:
    """Whether the center has a room or any stored center aggregate."""
    found = await session.scalar(
        select(RoomRow.room_id).where(RoomRow.center_id == center).limit(1)
    )
    if found is not None:
        return True
    found = await session.scalar(
        select(UsageMonthlyRow.key)
        .where(UsageMonthlyRow.scope == "center", UsageMonthlyRow.ident == center)
        .limit(1)
    )
    return found is not None


async def center_rooms(session: AsyncSession, center: str) -> list[RoomInfo]:
    """The center's rooms (id, name, capacity), by id."""
    rows = await session.execute(
        select(RoomRow.room_id, _NAME, RoomRow.capacity)
        .where(RoomRow.center_id == center)
        .order_by(RoomRow.room_id)
    )
    return [
        RoomInfo(room_id, room_name(room_id, name), capacity) for room_id, name, capacity in rows
    ]


async def usage_values(
    session: AsyncSession, keys: Sequence[str]
) -> dict[str, tuple[dict[str, Any], bool]]:
    """The stored ``(value, final)`` of each of ``keys`` that has one."""
    found: dict[str, tuple[dict[str, Any], bool]] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = await session.execute(
            select(UsageMonthlyRow.key, UsageMonthlyRow.value, UsageMonthlyRow.final).where(
                UsageMonthlyRow.key.in_(keys[start : start + _CHUNK])
            )
        )
        for key, value, final in rows:
            found[key] = (value, bool(final))
    return found


async def month_usage(
    session: AsyncSession, center: str, month: str, chart_months: int = CHART_MONTHS
) -> MonthUsage:
    """The center's aggregate, its rooms' aggregates and the last months for the chart."""
    rooms = await center_rooms(session, center)
    months = month_range(month, chart_months)
    keys = [usage_key("room", r.room_id, month) for r in rooms]
    keys += [usage_key("center", center, m) for m in months]
    values = await usage_values(session, keys)

    def aggregate(scope: str, ident: str, m: str) -> Aggregate:
        stored = values.get(usage_key(scope, ident, m))
        if stored is None:
            return empty_aggregate(scope, ident, m)
        return normalise_aggregate(scope, ident, m, stored[0], stored[1])

    return MonthUsage(
        center_id=center,
        month=month,
        center=aggregate("center", center, month),
        rooms=[
            RoomAggregate(
                **aggregate("room", room.room_id, month),
                room_id=room.room_id,
                name=room.name,
                capacity=room.capacity,
            )
            for room in rooms
        ],
        months=[aggregate("center", center, m) for m in months],
    )


async def center_history(session: AsyncSession, center: str, upto: str) -> list[Aggregate]:
    """Every stored center aggregate up to and including ``upto``, oldest first."""
    rows = await session.execute(
        select(UsageMonthlyRow.month, UsageMonthlyRow.value, UsageMonthlyRow.final)
        .where(
            UsageMonthlyRow.scope == "center",
            UsageMonthlyRow.ident == center,
            UsageMonthlyRow.month <= upto,
        )
        .order_by(UsageMonthlyRow.month)
    )
    return [normalise_aggregate("center", center, m, v, bool(f)) for m, v, f in rows]
