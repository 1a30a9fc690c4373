"""Output messages on ``decisions``: the authoritative log of what was decided.

Every decision names its own ``event_id``, the input it answers (``caused_by``,
``None`` when the clock caused it), the room and the time it was decided. The
fields beyond the contract (``center_id``, ``late``, ``previous_capacity``,
``waitlist_position``) are additions the contract allows; so are contract v1.1's
(``docs/contract.md``): the reasons ``duplicate_booking_id`` and ``booking_ended``, and
``conflicting_session_ids`` and ``occupancy_over_capacity`` on a room's new rules.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from schemas.common import (
    Capacity,
    Identifier,
    LocalTime,
    Message,
    PartySize,
    Timestamp,
    TimeZoneName,
)
from schemas.inputs import BookingMode

BookingRejectReason = Literal[
    "unknown_room",
    "outside_opening_hours",
    "over_capacity",
    "overlap",
    "in_the_past",
    "invalid",
    "unknown_booking",
    "duplicate_booking_id",
    "booking_ended",
]
SessionRejectReason = Literal[
    "unknown_room",
    "outside_opening_hours",
    "over_capacity",
    "overlap",
    "in_the_past",
    "invalid",
]
EnrollmentRejectReason = Literal[
    "unknown_session",
    "already_enrolled",
    "invalid",
    "unknown_enrollment",
]
CheckinDenyReason = Literal["room_full", "reserved", "closed", "unknown_room", "clock_skew"]
"""``clock_skew`` (v1.1): the kiosk's ``occurred_at`` is further ahead of the room
authority's clock than ``SPACES_KIOSK_CLOCK_TOLERANCE_S`` (docs/rules.md)."""
UnknownRoomReason = Literal["unknown_room"]


class Decision(Message):
    type: str
    event_id: UUID
    caused_by: UUID | None
    room_id: Identifier
    decided_at: Timestamp
    center_id: Identifier | None = None


class RoomConfiguredDecision(Decision):
    type: Literal["room.configured"] = "room.configured"
    name: str
    capacity: Capacity
    booking_mode: BookingMode
    opens: LocalTime
    closes: LocalTime
    timezone: TimeZoneName
    conflicting_booking_ids: list[Identifier] = Field(default_factory=list)
    """On a reconfiguration: confirmed bookings the new rules no longer allow (staff decide)."""
    conflicting_session_ids: list[Identifier] = Field(default_factory=list)
    """On a reconfiguration: sessions not yet over the new rules no longer fit (v1.1)."""
    occupancy_over_capacity: Annotated[int, Field(ge=0)] = 0
    """Persons inside above the new capacity (v1.1); nobody is put out, arrivals wait."""
    center_name: str | None = None
    """The center's name, when the configuration gave one (v1.1)."""


class CapacityChanged(Decision):
    type: Literal["capacity.changed"] = "capacity.changed"
    capacity: Capacity
    previous_capacity: Capacity
    reason: str
    conflicting_booking_ids: list[Identifier] = Field(default_factory=list)
    conflicting_session_ids: list[Identifier] = Field(default_factory=list)
    """Sessions not yet over the new capacity no longer fits; their seats are capped (v1.1)."""
    occupancy_over_capacity: Annotated[int, Field(ge=0)] = 0
    """Persons inside above the new capacity (v1.1); nobody is put out, arrivals wait."""


class SessionScheduledDecision(Decision):
    type: Literal["session.scheduled"] = "session.scheduled"
    session_id: Identifier
    title: str
    starts_at: Timestamp
    ends_at: Timestamp
    capacity: Capacity


class SessionRejected(Decision):
    type: Literal["session.rejected"] = "session.rejected"
    session_id: Identifier
    reason: SessionRejectReason


class BookingConfirmed(Decision):
    type: Literal["booking.confirmed"] = "booking.confirmed"
    booking_id: Identifier
    member_id: Identifier
    party_size: PartySize
    starts_at: Timestamp
    ends_at: Timestamp


class BookingRejected(Decision):
    type: Literal["booking.rejected"] = "booking.rejected"
    booking_id: Identifier
    member_id: Identifier
    reason: BookingRejectReason


class BookingCancelled(Decision):
    type: Literal["booking.cancelled"] = "booking.cancelled"
    booking_id: Identifier
    member_id: Identifier
    starts_at: Timestamp
    ends_at: Timestamp


class BookingReleased(Decision):
    type: Literal["booking.released"] = "booking.released"
    booking_id: Identifier
    member_id: Identifier
    starts_at: Timestamp
    ends_at: Timestamp


class EnrollmentConfirmed(Decision):
    type: Literal["enrollment.confirmed"] = "enrollment.confirmed"
    session_id: Identifier
    member_id: Identifier
    party_size: PartySize


class EnrollmentWaitlisted(Decision):
    type: Literal["enrollment.waitlisted"] = "enrollment.waitlisted"
    session_id: Identifier
    member_id: Identifier
    party_size: PartySize
    waitlist_position: int


class EnrollmentRejected(Decision):
    type: Literal["enrollment.rejected"] = "enrollment.rejected"
    session_id: Identifier
    member_id: Identifier
    reason: EnrollmentRejectReason


class EnrollmentCancelled(Decision):
    type: Literal["enrollment.cancelled"] = "enrollment.cancelled"
    session_id: Identifier
    member_id: Identifier
    was: Literal["confirmed", "waitlisted"]


class EnrollmentPromoted(Decision):
    type: Literal["enrollment.promoted"] = "enrollment.promoted"
    session_id: Identifier
    member_id: Identifier
    party_size: PartySize


class _CheckinOutcome(Decision):
    kiosk_id: Identifier
    party_size: PartySize
    occupancy: int
    capacity: int
    member_id: Identifier | None = None
    booking_id: Identifier | None = None
    session_id: Identifier | None = None
    late: bool = False
    attended_booking_id: Identifier | None = None
    """On an admission: the booking this check-in counts as attendance for, if any."""


class CheckinAdmitted(_CheckinOutcome):
    type: Literal["checkin.admitted"] = "checkin.admitted"


class CheckinDenied(_CheckinOutcome):
    type: Literal["checkin.denied"] = "checkin.denied"
    reason: CheckinDenyReason


class CheckoutRecorded(Decision):
    """``kiosk_id`` is ``None`` for the check-out of everyone still inside at closing."""

    type: Literal["checkout.recorded"] = "checkout.recorded"
    kiosk_id: Identifier | None
    party_size: int
    occupancy: int
    capacity: int
    member_id: Identifier | None = None


class CheckoutRejected(Decision):
    """A check-out the room authority cannot record (v1.1): the room was never configured.
    The kiosk gets an answer instead of waiting out its timeout."""

    type: Literal["checkout.rejected"] = "checkout.rejected"
    kiosk_id: Identifier
    party_size: PartySize
    member_id: Identifier | None = None
    reason: UnknownRoomReason


class CapacityRejected(Decision):
    """A ``room.capacity_changed`` for a room never configured (v1.1); ``capacity`` is the
    capacity asked for."""

    type: Literal["capacity.rejected"] = "capacity.rejected"
    capacity: Capacity
    reason: UnknownRoomReason


AnyDecision = Annotated[
    RoomConfiguredDecision
    | CapacityChanged
    | SessionScheduledDecision
    | SessionRejected
    | BookingConfirmed
    | BookingRejected
    | BookingCancelled
    | BookingReleased
    | EnrollmentConfirmed
    | EnrollmentWaitlisted
    | EnrollmentRejected
    | EnrollmentCancelled
    | EnrollmentPromoted
    | CheckinAdmitted
    | CheckinDenied
    | CheckoutRecorded
    | CheckoutRejected
    | CapacityRejected,
    Field(discriminator="type"),
]

DECISION_ADAPTER: TypeAdapter[AnyDecision] = TypeAdapter(AnyDecision)
