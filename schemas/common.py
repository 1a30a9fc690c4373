"""Field types shared by every message of the wire contract (contract-v1)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,64}$", min_length=1, max_length=64)
]
"""room_id, center_id, kiosk_id, member_id, booking_id, session_id: 1-64 of [A-Za-z0-9._:-]."""


def _rfc3339_only(value: object) -> object:
    if isinstance(value, bool | int | float):
        raise ValueError("must be an RFC 3339 string with an offset, not a number")
    return value


EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""Times outside years 2000-2100 are nobody's booking or check-in: a typo, a broken clock
or a probe. They are refused at the edge (a dead letter naming the field) so the rules
never compute with them (year 9999 plus a day overflows ``datetime``). The demo's
replayed months and the tests' fixed dates are well inside."""


def _sane_year(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be within years {EARLIEST_YEAR}-{LATEST_YEAR}")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_sane_year)]
"""RFC 3339 with an offset, within years 2000-2100; a naive time is refused because local
rules depend on it."""

PartySize = Annotated[int, Field(ge=1, le=10_000, strict=True)]
Capacity = Annotated[int, Field(ge=1, le=100_000, strict=True)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


LocalTime = Annotated[
    str, StringConstraints(pattern=r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
]
"""Local ``HH:MM`` (00:00-23:59, or 24:00 for midnight at closing)."""
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


@lru_cache(maxsize=256)
def parse_hhmm(value: str) -> int:
    """Minutes since local midnight; ``24:00`` is 1440 so closing at midnight works."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


class Message(BaseModel):
    """Base of every contract message: frozen, unknown fields ignored.

    The contract allows fields to be added (never renamed or removed), so a
    reader must tolerate fields it does not know. Sizes and capacities are
    strict integers (``"15"`` is refused); ids and times are parsed from JSON
    strings whether the JSON was decoded by pydantic or by FastStream.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")


class InputEvent(Message):
    event_id: UUID
    occurred_at: Timestamp
    room_id: Identifier
