"""Output messages on ``occupancy``, ``usage-monthly`` and ``dead-letters``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import Identifier, Message, Timestamp

MonthKey = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class Occupancy(Message):
    room_id: Identifier
    center_id: Identifier
    occupancy: int
    capacity: int
    as_of: Timestamp
    # Contract v1.1 additions: names for dashboards that only have Kafka (``None``: unknown).
    room_name: str | None = None
    """The room's configured name (``room.configured`` ``name``)."""
    center_name: str | None = None
    """The center's name, when the room's configuration gave one."""


class UsageMonthly(Message):
    scope: Literal["room", "center"]
    id: Identifier
    month: MonthKey
    bookings_confirmed: int
    bookings_rejected: int
    bookings_cancelled: int
    no_shows: int
    booked_hours: float
    open_hours: float
    utilization: float
    visits: int
    checkins_denied: int
    unique_members: int
    peak_occupancy: int
    final: bool
    updated_at: Timestamp
    # Additions the contract allows: a closed month that later changed says so.
    revision: int = 0
    revised_after_close: bool = False
    # Contract v1.1 additions: how full the rooms were, next to how booked they were
    # (definitions in docs/usage-statistics.md). Older values lack them: read the defaults.
    person_hours: float = 0.0
    """Persons present x hours, from admissions and check-outs."""
    capacity_hours: float = 0.0
    """Capacity x open hours: the person-hours the room could have held."""
    occupancy_utilization: float = 0.0
    """``person_hours / capacity_hours`` (0 when ``capacity_hours`` is 0)."""
    bookings_attended: int = 0
    """Bookings (start month) a check-in was admitted for."""
    no_show_rate: float | None = None
    """``no_shows / (no_shows + bookings_attended)``; ``None`` when no booking reached its start."""
    peak_at: Timestamp | None = None
    """When ``peak_occupancy`` was first reached, in the room's local time (``None``: never)."""
    peak_hour: Annotated[int, Field(ge=0, le=23)] | None = None
    """The local hour of day (0-23) of ``peak_at``."""
    occupancy_by_weekday_hour: (
        Annotated[
            list[Annotated[list[float], Field(min_length=24, max_length=24)]],
            Field(min_length=7, max_length=7),
        ]
        | None
    ) = None
    """7 rows (Monday first) x 24 local hours: the average persons present in that
    weekday-hour over the month (a center: summed over its rooms). ``None``: not known
    (a month counted before the statistics kept it)."""

    @property
    def key(self) -> str:
        return usage_key(self.scope, self.id, self.month)


def usage_key(scope: str, ident: str, month: str) -> str:
    return f"{scope}:{ident}:{month}"


class DeadLetter(Message):
    topic: str
    partition: int
    offset: int
    key: str | None
    """Base64 of the original key, if any."""
    original: str
    """Base64 of the original value bytes, exactly as read."""
    reason: str
    consumer_group: str
    received_at: Timestamp
