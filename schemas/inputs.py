"""Input messages: topics ``capacity``, ``bookings`` and ``checkins`` (contract-v1).

Besides the contract's types, ``capacity`` carries ``clock.tick``: the scheduler's
way of putting time-driven decisions (no-show release, closing check-out) through
the same log and the same consumer as everything else.
"""

from __future__ import annotations

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

BookingMode = Literal["exclusive", "shared"]


class _Interval(InputEvent):
    starts_at: Timestamp
    ends_at: Timestamp

    @model_validator(mode="after")
    def _ends_after_start(self) -> _Interval:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
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

    @model_validator(mode="after")
    def _opens_before_closes(self) -> RoomConfigured:
        if parse_hhmm(self.closes) <= parse_hhmm(self.opens):
            raise ValueError("closes must be after opens (rooms open overnight are not supported)")
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
