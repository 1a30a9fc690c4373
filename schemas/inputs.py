"""Input messages: topics ``capacity``, ``bookings`` and ``checkins`` (contract-v1).

Besides the contract's types, ``capacity`` carries ``clock.tick``: the scheduler's
way of putting time-driven decisions (no-show release, closing check-out) through
the same log and the same consumer as everything else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from schemas.common import (
    Capacity,
    Identifier,
    InputEvent,
    LocalTime,
    PartySize,
    Timestamp,
    TimeZoneName,
    parse_hhmm,
)

MINUTES_PER_DAY = 24 * 60
LONGEST_INTERVAL = timedelta(days=31)
"""A booking or session longer than a month is a mistake (or a probe): refused at the edge."""
MAX_RECORD_BYTES = 16 * 1024
"""An input larger than this is no kiosk's or front end's: refused before it is parsed."""

BookingMode = Literal["exclusive", "shared"]


class _Interval(InputEvent):
    """An interval as requested. One that does not run forward (``ends_at`` not after
    ``starts_at``) is still read: the rules answer it ``invalid`` (contract v1.1), so the
    front end that sent it gets a decision instead of waiting for one that never comes."""

    starts_at: Timestamp
    ends_at: Timestamp

    @model_validator(mode="after")
    def _at_most_a_month(self) -> _Interval:
        if self.ends_at - self.starts_at > LONGEST_INTERVAL:
            raise ValueError(
                f"ends_at must be at most {LONGEST_INTERVAL.days} days after starts_at"
            )
        return self


# --- capacity -------------------------------------------------------------------------


class RoomConfigured(InputEvent):
    type: Literal["room.configured"] = "room.configured"
    center_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    capacity: Capacity
    booking_mode: BookingMode
    opens: LocalTime
    closes: LocalTime
    timezone: TimeZoneName = "Asia/Seoul"
    center_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The center's name as staff write it (contract v1.1): carried to ``occupancy`` so a
    dashboard that reads only Kafka can head its page with it."""

    @model_validator(mode="after")
    def _one_opening_a_day(self) -> RoomConfigured:
        """``closes`` before ``opens`` is open overnight (18:00-02:00, contract v1.1);
        ``00:00``-``24:00`` is around the clock. An opening that closes when it opens says
        nothing, and ``24:00`` is midnight at closing only."""
        opens, closes = parse_hhmm(self.opens), parse_hhmm(self.closes)
        if opens == MINUTES_PER_DAY:
            raise ValueError("opens must be 00:00-23:59 (24:00 is only a closing time)")
        if closes % MINUTES_PER_DAY == opens and (opens, closes) != (0, MINUTES_PER_DAY):
            raise ValueError("closes must differ from opens (00:00-24:00 is open around the clock)")
        return self


class RoomCapacityChanged(InputEvent):
    type: Literal["room.capacity_changed"] = "room.capacity_changed"
    capacity: Capacity
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class SessionScheduled(_Interval):
    type: Literal["session.scheduled"] = "session.scheduled"
    session_id: Identifier
    title: Annotated[str, Field(min_length=1, max_length=200)]
    capacity: Capacity


class ClockTick(InputEvent):
    """Appended by the scheduler; ``occurred_at`` is the time the clock read."""

    type: Literal["clock.tick"] = "clock.tick"


CapacityEvent = Annotated[
    RoomConfigured | RoomCapacityChanged | SessionScheduled | ClockTick,
    Field(discriminator="type"),
]

# --- bookings -------------------------------------------------------------------------


class BookingRequested(_Interval):
    type: Literal["booking.requested"] = "booking.requested"
    booking_id: Identifier
    member_id: Identifier
    party_size: PartySize


class BookingCancelRequested(InputEvent):
    type: Literal["booking.cancel_requested"] = "booking.cancel_requested"
    booking_id: Identifier
    member_id: Identifier


class EnrollmentRequested(InputEvent):
    type: Literal["enrollment.requested"] = "enrollment.requested"
    session_id: Identifier
    member_id: Identifier
    party_size: PartySize = 1


class EnrollmentCancelRequested(InputEvent):
    type: Literal["enrollment.cancel_requested"] = "enrollment.cancel_requested"
    session_id: Identifier
    member_id: Identifier


BookingEvent = Annotated[
    BookingRequested | BookingCancelRequested | EnrollmentRequested | EnrollmentCancelRequested,
    Field(discriminator="type"),
]

# --- checkins -------------------------------------------------------------------------


class Checkin(InputEvent):
    type: Literal["checkin"] = "checkin"
    kiosk_id: Identifier
    party_size: PartySize
    member_id: Identifier | None = None
    booking_id: Identifier | None = None
    session_id: Identifier | None = None


class Checkout(InputEvent):
    type: Literal["checkout"] = "checkout"
    kiosk_id: Identifier
    party_size: PartySize
    member_id: Identifier | None = None


CheckinEvent = Annotated[Checkin | Checkout, Field(discriminator="type")]

AnyInput = (
    RoomConfigured
    | RoomCapacityChanged
    | SessionScheduled
    | ClockTick
    | BookingRequested
    | BookingCancelRequested
    | EnrollmentRequested
    | EnrollmentCancelRequested
    | Checkin
    | Checkout
)

CAPACITY_ADAPTER: TypeAdapter[CapacityEvent] = TypeAdapter(CapacityEvent)
BOOKING_ADAPTER: TypeAdapter[BookingEvent] = TypeAdapter(BookingEvent)
CHECKIN_ADAPTER: TypeAdapter[CheckinEvent] = TypeAdapter(CheckinEvent)
