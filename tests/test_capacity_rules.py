"""Example-based tests of every capacity rule (``domain/capacity.py``, ``docs/rules.md``).

All times are in Asia/Seoul. Unless a test says otherwise, inputs are decided at
``NOW`` (08:00 on Friday 2026-11-20, before the rooms open), so every slot of that
day is still ahead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import uuid4, uuid5
from zoneinfo import ZoneInfo

import pytest

from chaos.reference import DECISION_NAMESPACE
from domain.capacity import (
    KEEP_HISTORY,
    Policy,
    Room,
    conflicting_bookings,
    decide,
    max_concurrent,
)
from schemas.decisions import (
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingReleased,
    CapacityChanged,
    CapacityRejected,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    CheckoutRejected,
    Decision,
    EnrollmentCancelled,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    EnrollmentRejected,
    EnrollmentWaitlisted,
    RoomConfiguredDecision,
    SessionRejected,
    SessionScheduledDecision,
)
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingMode,
    BookingRequested,
    Checkin,
    Checkout,
    ClockTick,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomCapacityChanged,
    RoomConfigured,
    SessionScheduled,
)

KST = ZoneInfo("Asia/Seoul")
D = TypeVar("D", bound=Decision)


def kst(hour: int, minute: int = 0, *, day: int = 20, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=KST)


NOW = kst(8)


# --- inputs -----------------------------------------------------------------------------


def configured(
    room_id: str = "club",
    *,
    capacity: int = 15,
    mode: BookingMode = "exclusive",
    opens: str = "09:00",
    closes: str = "22:00",
    timezone: str = "Asia/Seoul",
    name: str = "동아리방",
) -> RoomConfigured:
    return RoomConfigured(
        event_id=uuid4(),
        occurred_at=NOW,
        room_id=room_id,
        center_id="gangnam-1",
        name=name,
        capacity=capacity,
        booking_mode=mode,
        opens=opens,
        closes=closes,
        timezone=timezone,
    )


def booking(
    booking_id: str,
    *,
    member: str = "m1",
    party: int = 2,
    start: datetime | None = None,
    end: datetime | None = None,
    room_id: str = "club",
) -> BookingRequested:
    return BookingRequested(
        event_id=uuid4(),
        occurred_at=NOW,
        room_id=room_id,
        booking_id=booking_id,
        member_id=member,
        party_size=party,
        starts_at=start or kst(10),
        ends_at=end or kst(12),
    )


def cancel(booking_id: str, member: str = "m1", room_id: str = "club") -> BookingCancelRequested:
    return BookingCancelRequested(
        event_id=uuid4(), occurred_at=NOW, room_id=room_id, booking_id=booking_id, member_id=member
    )


def session(
    session_id: str = "s1",
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    seats: int = 20,
    room_id: str = "edu",
) -> SessionScheduled:
    return SessionScheduled(
        event_id=uuid4(),
        occurred_at=NOW,
        room_id=room_id,
        session_id=session_id,
        title="한글 교실",
        starts_at=start or kst(14),
        ends_at=end or kst(16),
        capacity=seats,
    )


def enroll(
    member: str, *, party: int = 1, session_id: str = "s1", room_id: str = "edu"
) -> EnrollmentRequested:
    return EnrollmentRequested(
        event_id=uuid4(),
        occurred_at=NOW,
        room_id=room_id,
        session_id=session_id,
        member_id=member,
        party_size=party,
    )


def unenroll(
    member: str, *, session_id: str = "s1", room_id: str = "edu"
) -> EnrollmentCancelRequested:
    return EnrollmentCancelRequested(
        event_id=uuid4(), occurred_at=NOW, room_id=room_id, session_id=session_id, member_id=member
    )


def checkin(
    at: datetime,
    *,
    party: int = 1,
    member: str | None = None,
    booking_id: str | None = None,
    session_id: str | None = None,
    room_id: str = "club",
) -> Checkin:
    return Checkin(
        event_id=uuid4(),
        occurred_at=at,
        room_id=room_id,
        kiosk_id="kiosk-1",
        party_size=party,
        member_id=member,
        booking_id=booking_id,
        session_id=session_id,
    )


def checkout(at: datetime, *, party: int = 1, room_id: str = "club") -> Checkout:
    return Checkout(
        event_id=uuid4(), occurred_at=at, room_id=room_id, kiosk_id="kiosk-2", party_size=party
    )


def tick(at: datetime, room_id: str = "club") -> ClockTick:
    return ClockTick(event_id=uuid4(), occurred_at=at, room_id=room_id)


def capacity_changed(capacity: int, room_id: str = "club") -> RoomCapacityChanged:
    return RoomCapacityChanged(
        event_id=uuid4(), occurred_at=NOW, room_id=room_id, capacity=capacity, reason="distancing"
    )


# --- deciding ---------------------------------------------------------------------------


def new_room(room_id: str = "club", **rules: object) -> Room:
    room, _ = decide(None, configured(room_id, **rules), NOW)  # type: ignore[arg-type]
    assert room is not None
    return room


def club() -> Room:
    """A 15-person club room, booked whole."""
    return new_room("club", capacity=15)


def classroom() -> Room:
    """A 20-seat education room, booked whole, with no sessions yet."""
    return new_room("edu", capacity=20, name="교육실")


def lounge(capacity: int = 10) -> Room:
    """A shared room: bookings may overlap while the persons booked fit."""
    return new_room("lounge", capacity=capacity, mode="shared", name="공유 라운지")


def run(room: Room | None, event: AnyInput, now: datetime = NOW) -> list[Decision]:
    after, decisions = decide(room, event, now)
    assert after is room
    return decisions


def only(room: Room | None, event: AnyInput, kind: type[D], now: datetime = NOW) -> D:
    decisions = run(room, event, now)
    assert len(decisions) == 1, decisions
    assert isinstance(decisions[0], kind), decisions[0]
    assert decisions[0].caused_by == event.event_id
    assert decisions[0].decided_at == now
    return decisions[0]


def book(room: Room, booking_id: str, now: datetime = NOW, **fields: object) -> BookingConfirmed:
    event = booking(booking_id, room_id=room.room_id, **fields)  # type: ignore[arg-type]
    return only(room, event, BookingConfirmed, now=now)


def with_session(seats: int = 20) -> Room:
    room = classroom()
    only(room, session(seats=seats), SessionScheduledDecision)
    return room


# --- rooms ------------------------------------------------------------------------------


def test_configure_creates_the_room() -> None:
    event = configured("club", capacity=15)
    room, decisions = decide(None, event, NOW)
    assert room is not None
    assert (room.room_id, room.capacity, room.booking_mode) == ("club", 15, "exclusive")
    assert (room.opens, room.closes, room.timezone, room.occupancy) == (
        "09:00",
        "22:00",
        "Asia/Seoul",
        0,
    )
    [decision] = decisions
    assert isinstance(decision, RoomConfiguredDecision)
    assert decision.caused_by == event.event_id
    assert decision.center_id == "gangnam-1"
    assert (decision.name, decision.capacity, decision.booking_mode) == (
        "동아리방",
        15,
        "exclusive",
    )


def test_a_center_name_is_kept_in_the_decision_the_state_and_the_log() -> None:
    """v1.1: dashboards that read only Kafka head their page with the center's name."""
    from domain.capacity import Room
    from domain.rebuild import apply

    event = configured("club").model_copy(update={"center_name": "강남 공유센터"})
    room, [decision] = decide(None, event, NOW)
    assert room is not None and room.center_name == "강남 공유센터"
    assert isinstance(decision, RoomConfiguredDecision)
    assert decision.center_name == "강남 공유센터"
    assert Room.from_json(json.loads(json.dumps(room.to_json()))).center_name == "강남 공유센터"
    rebuilt = apply(None, decision)
    assert rebuilt is not None and rebuilt.center_name == "강남 공유센터"
    renamed = configured("club").model_copy(update={"center_name": "강남센터"})
    room, _ = decide(room, renamed, NOW)
    assert room is not None and room.center_name == "강남센터"
    # Without a name (v1 producers) nothing is invented, and an old state still reads.
    plain, [unnamed] = decide(None, configured("other"), NOW)
    assert plain is not None and plain.center_name is None
    assert isinstance(unnamed, RoomConfiguredDecision) and unnamed.center_name is None
    old = {k: v for k, v in plain.to_json().items() if k != "center_name"}
    assert Room.from_json(old).center_name is None


def test_reconfigure_changes_the_rules_and_keeps_the_state() -> None:
    room = club()
    book(room, "b1")
    only(room, checkin(kst(9, 30)), CheckinAdmitted, now=kst(9, 30))
    event = configured("club", capacity=12, opens="10:00", closes="21:00", name="동아리방 A")
    after, decisions = decide(room, event, kst(9, 31))
    assert after is room
    [decision] = decisions
    assert isinstance(decision, RoomConfiguredDecision)
    assert (decision.capacity, decision.opens, decision.closes) == (12, "10:00", "21:00")
    assert (room.name, room.capacity, room.opens, room.closes) == (
        "동아리방 A",
        12,
        "10:00",
        "21:00",
    )
    assert "b1" in room.bookings
    assert room.occupancy == 1


def test_reconfigure_lists_the_bookings_the_new_rules_no_longer_allow() -> None:
    room = new_room("club", mode="shared", capacity=15)
    book(room, "evening", party=4, start=kst(19), end=kst(21))
    book(room, "big", party=10, start=kst(10), end=kst(12))
    book(room, "beside", party=3, start=kst(11), end=kst(13))
    book(room, "fine", party=2, start=kst(14), end=kst(15))
    event = configured("club", capacity=8, mode="exclusive", opens="09:00", closes="20:00")
    [decision] = decide(room, event, kst(9))[1]
    assert isinstance(decision, RoomConfiguredDecision)
    # too big now; overlapping in a room made exclusive; ending after the new closing
    assert decision.conflicting_booking_ids == ["big", "beside", "evening"]
    assert room.bookings["big"].status == "confirmed"  # staff decide what happens to them


def test_first_clock_tick_of_a_new_room_does_not_check_out_people_admitted_today() -> None:
    room = club()
    only(room, checkin(kst(10, 5), party=3), CheckinAdmitted, now=kst(10, 5))
    assert run(room, tick(kst(10, 6)), kst(10, 6)) == []
    assert room.occupancy == 3


# --- capacity changes -------------------------------------------------------------------


def test_capacity_change_lists_exclusive_bookings_with_a_party_above_the_new_capacity() -> None:
    room = club()
    book(room, "big", party=10, start=kst(10), end=kst(12))
    book(room, "small", party=4, start=kst(13), end=kst(14))
    book(room, "gone", party=12, start=kst(15), end=kst(16))
    only(room, cancel("gone"), BookingCancelled)
    event = capacity_changed(8)
    decision = only(room, event, CapacityChanged)
    assert (decision.capacity, decision.previous_capacity) == (8, 15)
    assert decision.reason == "distancing"
    assert decision.conflicting_booking_ids == ["big"]
    assert room.capacity == 8
    # The bookings stay confirmed: staff decide what to do with them.
    assert room.bookings["big"].status == "confirmed"


def test_capacity_change_ignores_bookings_already_over() -> None:
    room = club()
    book(room, "morning", party=10, start=kst(9), end=kst(10))
    decision = only(room, capacity_changed(5), CapacityChanged, now=kst(10))
    assert decision.conflicting_booking_ids == []


def test_capacity_change_lists_shared_bookings_whose_concurrency_exceeds_capacity() -> None:
    room = lounge(10)
    book(room, "a", party=4, start=kst(10), end=kst(12))
    book(room, "b", party=4, start=kst(11), end=kst(13))
    book(room, "c", party=2, start=kst(13), end=kst(14))  # back to back with b: not concurrent
    book(room, "d", party=5, start=kst(15), end=kst(16))
    decision = only(room, capacity_changed(6, room_id="lounge"), CapacityChanged)
    assert decision.conflicting_booking_ids == ["a", "b"]
    assert conflicting_bookings(room, NOW) == ["a", "b"]


def test_capacity_change_in_a_shared_room_with_ten_thousand_future_bookings() -> None:
    """City scale: five hours a day for 1000 days booked twice, then the capacity lowered.

    Each hour has a party from :00 and one from :30, back to back with the next hour, so
    the two conflict exactly when together they exceed the new capacity.
    (How long this takes is measured by ``make bench``, not here.)
    """
    room = lounge(10)
    expected: list[str] = []
    for day in range(1000):
        for hour in range(5):
            starts = NOW + timedelta(days=1 + day, hours=2 + hour)
            first, second = 1 + (day + hour) % 4, 1 + (7 * day + 3 * hour) % 5
            ids = (f"d{day:04d}-h{hour}-a", f"d{day:04d}-h{hour}-b")
            book(room, ids[0], party=first, start=starts, end=starts + timedelta(hours=1))
            halfway = starts + timedelta(minutes=30)
            book(room, ids[1], party=second, start=halfway, end=starts + timedelta(hours=1))
            if first + second > 6:
                expected.extend(ids)
    assert len(room.bookings) == 10_000 and 0 < len(expected) < 10_000

    decision = only(room, capacity_changed(6, room_id="lounge"), CapacityChanged)
    assert decision.conflicting_booking_ids == expected
    # A tick with nothing to release or forget decides nothing and keeps every booking.
    assert run(room, tick(NOW + timedelta(minutes=1), "lounge"), NOW + timedelta(minutes=1)) == []
    assert len(room.bookings) == 10_000


def test_capacity_change_of_an_unknown_room_is_rejected_not_unanswered() -> None:
    """Issue 7: every input naming a room gets its decision (it was dead-lettered)."""
    event = capacity_changed(5)
    decision = only(None, event, CapacityRejected)
    assert (decision.reason, decision.capacity, decision.caused_by) == (
        "unknown_room",
        5,
        event.event_id,
    )


# --- unknown rooms ----------------------------------------------------------------------


def test_booking_for_an_unknown_room_is_rejected() -> None:
    decision = only(None, booking("b1"), BookingRejected)
    assert decision.reason == "unknown_room"
    assert decision.center_id is None


def test_cancel_for_an_unknown_room_is_rejected() -> None:
    assert only(None, cancel("b1"), BookingRejected).reason == "unknown_room"


def test_session_for_an_unknown_room_is_rejected() -> None:
    assert only(None, session(), SessionRejected).reason == "unknown_room"


def test_enrollment_in_an_unknown_room_or_session_is_rejected() -> None:
    assert only(None, enroll("m1"), EnrollmentRejected).reason == "unknown_session"
    # The contract: a cancel of an enrollment that does not exist is `unknown_enrollment`.
    assert only(None, unenroll("m1"), EnrollmentRejected).reason == "unknown_enrollment"
    room = classroom()
    assert only(room, enroll("m1", session_id="nope"), EnrollmentRejected).reason == (
        "unknown_session"
    )
    assert only(room, unenroll("m1", session_id="nope"), EnrollmentRejected).reason == (
        "unknown_enrollment"
    )


def test_checkin_at_an_unknown_room_is_denied() -> None:
    decision = only(None, checkin(kst(10)), CheckinDenied, now=kst(10))
    assert decision.reason == "unknown_room"
    assert (decision.occupancy, decision.capacity) == (0, 0)


def test_checkout_at_an_unknown_room_is_rejected_not_unanswered() -> None:
    event = checkout(kst(10))
    decision = only(None, event, CheckoutRejected, now=kst(10))
    assert (decision.reason, decision.party_size, decision.caused_by) == (
        "unknown_room",
        event.party_size,
        event.event_id,
    )


def test_clock_tick_for_an_unknown_room_decides_nothing() -> None:
    assert decide(None, tick(kst(22)), kst(22)) == (None, [])


# --- sessions ---------------------------------------------------------------------------


def test_session_is_scheduled_and_holds_the_room() -> None:
    room = classroom()
    event = session(seats=20)
    decision = only(room, event, SessionScheduledDecision)
    assert (decision.session_id, decision.capacity) == ("s1", 20)
    assert (decision.starts_at, decision.ends_at) == (kst(14), kst(16))
    assert "s1" in room.sessions
    assert only(
        room, booking("b1", room_id="edu", start=kst(15), end=kst(17)), BookingRejected
    ).reason == ("overlap")


def test_session_with_more_seats_than_the_room_is_over_capacity() -> None:
    assert only(classroom(), session(seats=21), SessionRejected).reason == "over_capacity"


def test_session_overlapping_a_booking_or_session_in_an_exclusive_room_is_rejected() -> None:
    room = classroom()
    book(room, "b1", start=kst(13), end=kst(15))
    assert only(room, session(), SessionRejected).reason == "overlap"
    only(room, session("s2", start=kst(15), end=kst(17)), SessionScheduledDecision)
    assert only(room, session("s3", start=kst(16), end=kst(18)), SessionRejected).reason == (
        "overlap"
    )


def test_sessions_in_a_shared_room_overlap_while_the_seats_fit() -> None:
    room = lounge(10)
    only(room, session("s1", seats=6, room_id="lounge"), SessionScheduledDecision)
    only(room, session("s2", seats=4, room_id="lounge"), SessionScheduledDecision)
    rejected = only(room, session("s3", seats=1, room_id="lounge"), SessionRejected)
    assert rejected.reason == "over_capacity"


@pytest.mark.parametrize(
    ("start", "end"),
    [(kst(8, 30), kst(10)), (kst(21), kst(22, 30)), (kst(21), kst(10, day=21))],
)
def test_session_outside_opening_hours_is_rejected(start: datetime, end: datetime) -> None:
    rejected = only(classroom(), session(start=start, end=end), SessionRejected)
    assert rejected.reason == "outside_opening_hours"


def test_session_in_the_past_is_rejected() -> None:
    rejected = only(classroom(), session(), SessionRejected, now=kst(14, 1))
    assert rejected.reason == "in_the_past"


def test_session_with_a_duplicate_id_is_invalid() -> None:
    room = with_session()
    rejected = only(room, session(start=kst(18), end=kst(19)), SessionRejected)
    assert rejected.reason == "invalid"
    assert room.sessions["s1"].starts_at == kst(14)


# --- bookings ---------------------------------------------------------------------------


def test_booking_is_confirmed() -> None:
    room = club()
    event = booking("b1", member="kim", party=6)
    decision = only(room, event, BookingConfirmed)
    assert (decision.booking_id, decision.member_id, decision.party_size) == ("b1", "kim", 6)
    assert (decision.starts_at, decision.ends_at) == (kst(10), kst(12))
    assert decision.center_id == "gangnam-1"
    assert room.bookings["b1"].status == "confirmed"


def test_booking_in_the_past_is_rejected() -> None:
    rejected = only(club(), booking("b1"), BookingRejected, now=kst(10, 0, second=1))
    assert rejected.reason == "in_the_past"


def test_booking_starting_right_now_is_accepted() -> None:
    only(club(), booking("b1"), BookingConfirmed, now=kst(10))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (kst(8, 30), kst(10)),  # starts before opening
        (kst(21), kst(22, 1)),  # ends after closing
        (kst(21), kst(10, day=21)),  # runs overnight
        (kst(22), kst(23)),  # starts at closing
    ],
)
def test_booking_outside_opening_hours_is_rejected(start: datetime, end: datetime) -> None:
    rejected = only(club(), booking("b1", start=start, end=end), BookingRejected)
    assert rejected.reason == "outside_opening_hours"


def test_booking_for_the_whole_opening_hours_is_accepted() -> None:
    only(club(), booking("b1", start=kst(9), end=kst(22)), BookingConfirmed)


def test_opening_hours_are_read_in_the_rooms_time_zone() -> None:
    # 10:00-12:00 in Seoul is 01:00-03:00 in London, where this room is closed.
    london = new_room("uk", timezone="Europe/London")
    rejected = only(london, booking("b1", room_id="uk"), BookingRejected)
    assert rejected.reason == "outside_opening_hours"
    # 18:00-20:00 KST is 09:00-11:00 GMT.
    only(london, booking("b2", room_id="uk", start=kst(18), end=kst(20)), BookingConfirmed)


def test_booking_above_capacity_is_rejected() -> None:
    rejected = only(club(), booking("b1", party=16), BookingRejected)
    assert rejected.reason == "over_capacity"
    only(club(), booking("b1", party=15), BookingConfirmed)


def test_overlapping_booking_in_an_exclusive_room_is_rejected() -> None:
    room = club()
    book(room, "b1", start=kst(10), end=kst(12))
    for start, end in [(kst(11), kst(13)), (kst(9), kst(10, 1)), (kst(10, 30), kst(11))]:
        rejected = only(room, booking("b2", member="m2", start=start, end=end), BookingRejected)
        assert rejected.reason == "overlap"
    assert "b2" not in room.bookings


def test_back_to_back_bookings_are_allowed_because_intervals_are_half_open() -> None:
    room = club()
    book(room, "b1", start=kst(10), end=kst(12))
    book(room, "b2", member="m2", start=kst(12), end=kst(14))
    book(room, "b0", member="m3", start=kst(9), end=kst(10))


def test_shared_room_sums_the_persons_of_overlapping_bookings() -> None:
    room = lounge(10)
    book(room, "a", party=4, start=kst(10), end=kst(12))
    book(room, "b", member="m2", party=4, start=kst(11), end=kst(13))
    rejected = only(
        room,
        booking("c", member="m3", party=3, start=kst(11, 30), end=kst(12, 30), room_id="lounge"),
        BookingRejected,
    )
    assert rejected.reason == "over_capacity"
    book(room, "d", member="m3", party=2, start=kst(11, 30), end=kst(12, 30))
    # Only a and b meet at 11:00-12:00; from 12:00 b (4) alone: 6 more fit.
    book(room, "e", member="m4", party=6, start=kst(13), end=kst(14))
    book(room, "f", member="m5", party=4, start=kst(12, 30), end=kst(13))


def test_shared_room_counts_session_seats_as_held() -> None:
    room = lounge(10)
    only(room, session(seats=8, room_id="lounge"), SessionScheduledDecision)
    rejected = only(
        room, booking("b1", party=3, start=kst(15), end=kst(17), room_id="lounge"), BookingRejected
    )
    assert rejected.reason == "over_capacity"
    book(room, "b2", party=2, start=kst(15), end=kst(17))


# --- cancellations ----------------------------------------------------------------------


def test_member_cancels_their_own_booking_and_frees_the_room() -> None:
    room = club()
    book(room, "b1")
    decision = only(room, cancel("b1"), BookingCancelled)
    assert (decision.booking_id, decision.member_id) == ("b1", "m1")
    assert (decision.starts_at, decision.ends_at) == (kst(10), kst(12))
    assert room.bookings["b1"].status == "cancelled"
    book(room, "b2", member="m2")


def test_cancel_of_an_unknown_booking_is_rejected() -> None:
    assert only(club(), cancel("nope"), BookingRejected).reason == "unknown_booking"


def test_cancel_of_someone_elses_booking_is_rejected_as_unknown() -> None:
    room = club()
    book(room, "b1", member="kim")
    rejected = only(room, cancel("b1", member="lee"), BookingRejected)
    assert (rejected.reason, rejected.member_id) == ("unknown_booking", "lee")
    assert room.bookings["b1"].status == "confirmed"


def test_second_cancel_of_the_same_booking_is_rejected() -> None:
    room = club()
    book(room, "b1")
    only(room, cancel("b1"), BookingCancelled)
    assert only(room, cancel("b1"), BookingRejected).reason == "unknown_booking"


def test_cancel_of_a_released_booking_is_rejected() -> None:
    room = club()
    book(room, "b1")
    run(room, tick(kst(10, 15)), kst(10, 15))
    assert only(room, cancel("b1"), BookingRejected, now=kst(10, 16)).reason == "unknown_booking"


# --- enrollments ------------------------------------------------------------------------


def test_twenty_seats_and_twenty_five_requests_confirm_twenty_and_waitlist_five() -> None:
    room = with_session(seats=20)
    decisions = [run(room, enroll(f"m{i:02}"))[0] for i in range(25)]
    confirmed = [d for d in decisions if isinstance(d, EnrollmentConfirmed)]
    waitlisted = [d for d in decisions if isinstance(d, EnrollmentWaitlisted)]
    assert [d.member_id for d in confirmed] == [f"m{i:02}" for i in range(20)]
    assert [(d.member_id, d.waitlist_position) for d in waitlisted] == [
        (f"m{i:02}", i - 19) for i in range(20, 25)
    ]
    assert room.sessions["s1"].seats_taken == 20


def test_enrolling_twice_is_rejected_whether_confirmed_or_waitlisted() -> None:
    room = with_session(seats=1)
    only(room, enroll("a"), EnrollmentConfirmed)
    only(room, enroll("b"), EnrollmentWaitlisted)
    assert only(room, enroll("a"), EnrollmentRejected).reason == "already_enrolled"
    assert only(room, enroll("b"), EnrollmentRejected).reason == "already_enrolled"


def test_enrollment_that_can_never_fit_or_comes_after_the_session_is_invalid() -> None:
    room = with_session(seats=5)
    assert only(room, enroll("a", party=6), EnrollmentRejected).reason == "invalid"
    assert only(room, enroll("b"), EnrollmentRejected, now=kst(16)).reason == "invalid"
    only(room, enroll("c"), EnrollmentConfirmed, now=kst(15, 59))


def test_cancel_of_a_confirmed_enrollment_promotes_the_oldest_waitlisted() -> None:
    room = with_session(seats=20)
    for i in range(25):
        run(room, enroll(f"m{i:02}"))
    event = unenroll("m03")
    cancelled, promoted = run(room, event)
    assert isinstance(cancelled, EnrollmentCancelled)
    assert (cancelled.member_id, cancelled.was) == ("m03", "confirmed")
    assert isinstance(promoted, EnrollmentPromoted)
    assert (promoted.member_id, promoted.party_size) == ("m20", 1)
    assert cancelled.caused_by == promoted.caused_by == event.event_id
    assert cancelled.event_id != promoted.event_id
    s1 = room.sessions["s1"]
    assert s1.seats_taken == 20
    assert [e.member_id for e in s1.waitlist] == ["m21", "m22", "m23", "m24"]


def test_promotion_skips_a_waitlisted_party_that_does_not_fit() -> None:
    room = with_session(seats=5)
    only(room, enroll("a", party=3), EnrollmentConfirmed)
    only(room, enroll("b", party=2), EnrollmentConfirmed)
    only(room, enroll("c", party=3), EnrollmentWaitlisted)
    only(room, enroll("d", party=2), EnrollmentWaitlisted)
    only(room, enroll("e", party=1), EnrollmentWaitlisted)
    decisions = run(room, unenroll("b"))
    assert [type(d) for d in decisions] == [EnrollmentCancelled, EnrollmentPromoted]
    assert decisions[1].member_id == "d"  # type: ignore[attr-defined]
    s1 = room.sessions["s1"]
    assert [e.member_id for e in s1.enrolled] == ["a", "d"]
    assert [e.member_id for e in s1.waitlist] == ["c", "e"]


def test_freed_seats_promote_every_waitlisted_enrollment_that_fits_in_order() -> None:
    room = with_session(seats=4)
    only(room, enroll("a", party=4), EnrollmentConfirmed)
    for member in ("b", "c", "d"):
        run(room, enroll(member, party=2))
    decisions = run(room, unenroll("a"))
    promoted = [d.member_id for d in decisions if isinstance(d, EnrollmentPromoted)]
    assert promoted == ["b", "c"]


def test_a_newcomer_too_big_for_the_free_seats_waits_behind_the_waitlist() -> None:
    room = with_session(seats=5)
    only(room, enroll("a", party=3), EnrollmentConfirmed)
    only(room, enroll("b", party=3), EnrollmentWaitlisted)
    assert only(room, enroll("c", party=3), EnrollmentWaitlisted).waitlist_position == 2


def test_cancel_of_a_waitlisted_enrollment_promotes_nobody() -> None:
    room = with_session(seats=1)
    only(room, enroll("a"), EnrollmentConfirmed)
    only(room, enroll("b"), EnrollmentWaitlisted)
    only(room, enroll("c"), EnrollmentWaitlisted)
    decision = only(room, unenroll("b"), EnrollmentCancelled)
    assert decision.was == "waitlisted"
    assert [e.member_id for e in room.sessions["s1"].waitlist] == ["c"]


def test_cancel_of_an_unknown_enrollment_is_rejected() -> None:
    room = with_session()
    only(room, enroll("a"), EnrollmentConfirmed)
    assert only(room, unenroll("zz"), EnrollmentRejected).reason == "unknown_enrollment"
    only(room, unenroll("a"), EnrollmentCancelled)
    assert only(room, unenroll("a"), EnrollmentRejected).reason == "unknown_enrollment"


# --- check-ins --------------------------------------------------------------------------


def test_fifteen_of_twenty_singles_fit_in_a_fifteen_person_room() -> None:
    room = club()
    now = kst(10)
    decisions = [run(room, checkin(now), now)[0] for _ in range(20)]
    admitted = [d for d in decisions if isinstance(d, CheckinAdmitted)]
    denied = [d for d in decisions if isinstance(d, CheckinDenied)]
    assert len(admitted) == 15 and len(denied) == 5
    assert [d.occupancy for d in admitted] == list(range(1, 16))
    assert all((d.reason, d.occupancy, d.capacity) == ("room_full", 15, 15) for d in denied)
    assert room.occupancy == 15


def test_a_party_too_big_for_the_rest_of_the_room_is_denied() -> None:
    room = club()
    only(room, checkin(kst(10), party=12), CheckinAdmitted, now=kst(10))
    denied = only(room, checkin(kst(10), party=4), CheckinDenied, now=kst(10))
    assert (denied.reason, denied.party_size, denied.occupancy) == ("room_full", 4, 12)
    only(room, checkin(kst(10), party=3), CheckinAdmitted, now=kst(10))


def test_exclusive_room_booked_by_someone_else_now_is_reserved() -> None:
    room = club()
    book(room, "b1", member="kim", party=4)
    # Until a quarter of an hour before the booking starts the room is free for walk-ins.
    only(room, checkin(kst(9, 44)), CheckinAdmitted, now=kst(9, 44))
    assert only(room, checkin(kst(9, 45)), CheckinDenied, now=kst(9, 45)).reason == "reserved"
    denied = only(room, checkin(kst(10, 30), member="lee"), CheckinDenied, now=kst(10, 30))
    assert denied.reason == "reserved"
    only(room, checkin(kst(12)), CheckinAdmitted, now=kst(12))  # the booking is over


def test_the_booker_is_admitted_by_member_or_booking_id() -> None:
    room = club()
    book(room, "b1", member="kim", party=4)
    # Early arrival (up to 15 min) counts as the booking's own check-in.
    admitted = only(
        room, checkin(kst(9, 45), party=2, member="kim"), CheckinAdmitted, now=kst(9, 45)
    )
    assert room.bookings["b1"].checked_in
    # The decision names the booking the check-in counted against.
    assert admitted.attended_booking_id == "b1"
    assert admitted.booking_id is None  # what the kiosk sent is echoed as sent
    only(room, checkin(kst(10, 5), party=2, booking_id="b1"), CheckinAdmitted, now=kst(10, 5))
    assert room.occupancy == 4


def test_session_attendees_are_admitted_and_others_find_the_room_reserved() -> None:
    room = with_session(seats=1)
    only(room, enroll("a"), EnrollmentConfirmed)
    only(room, enroll("b"), EnrollmentWaitlisted)
    at = kst(14, 5)
    only(room, checkin(at, member="a", room_id="edu"), CheckinAdmitted, now=at)
    only(room, checkin(at, session_id="s1", room_id="edu"), CheckinAdmitted, now=at)
    assert only(room, checkin(at, member="x", room_id="edu"), CheckinDenied, now=at).reason == (
        "reserved"
    )
    # A waitlisted member holds no seat.
    assert only(room, checkin(at, member="b", room_id="edu"), CheckinDenied, now=at).reason == (
        "reserved"
    )
    # Naming the session does not make a member who is not enrolled an attendee.
    named = checkin(at, member="x", session_id="s1", room_id="edu")
    assert only(room, named, CheckinDenied, now=at).reason == "reserved"


@pytest.mark.parametrize(
    ("at", "admitted"),
    [
        (kst(8, 59), False),
        (kst(9), True),
        (kst(21, 59), True),
        (kst(22), False),
        (datetime(2026, 11, 19, 23, 59, tzinfo=UTC), False),  # 08:59 KST
        (datetime(2026, 11, 20, 0, 0, tzinfo=UTC), True),  # 09:00 KST
    ],
)
def test_checkin_outside_opening_hours_is_closed(at: datetime, admitted: bool) -> None:
    decisions = run(club(), checkin(at), at)
    if admitted:
        assert isinstance(decisions[0], CheckinAdmitted)
    else:
        assert isinstance(decisions[0], CheckinDenied)
        assert decisions[0].reason == "closed"


def test_shared_room_keeps_places_for_booked_parties_not_yet_arrived() -> None:
    room = lounge(10)
    book(room, "b1", member="kim", party=6)
    # Even before the booking starts its places are kept from walk-ins (who may stay).
    denied = only(
        room, checkin(kst(9, 30), party=5, room_id="lounge"), CheckinDenied, now=kst(9, 30)
    )
    assert denied.reason == "room_full"
    at = kst(10, 30)
    denied = only(room, checkin(at, party=5, room_id="lounge"), CheckinDenied, now=at)
    assert denied.reason == "room_full"
    only(room, checkin(at, party=4, room_id="lounge"), CheckinAdmitted, now=at)
    # The booked party takes its held places.
    admitted = only(
        room, checkin(at, party=6, member="kim", room_id="lounge"), CheckinAdmitted, now=at
    )
    assert admitted.occupancy == 10
    assert room.bookings["b1"].checked_in


def test_checkout_never_goes_below_zero() -> None:
    room = club()
    only(room, checkin(kst(10), party=2), CheckinAdmitted, now=kst(10))
    recorded = only(room, checkout(kst(11), party=5), CheckoutRecorded, now=kst(11))
    assert (recorded.party_size, recorded.occupancy, recorded.capacity) == (5, 0, 15)
    assert recorded.kiosk_id == "kiosk-2"
    assert room.occupancy == 0


# --- the clock --------------------------------------------------------------------------


def test_no_show_is_released_exactly_at_the_end_of_the_grace_period() -> None:
    room = club()
    book(room, "b1", member="kim", party=4)
    early = kst(10, 14, second=59)
    assert run(room, tick(early), early) == []
    event = tick(kst(10, 15))
    [released] = run(room, event, kst(10, 15))
    assert isinstance(released, BookingReleased)
    assert (released.booking_id, released.member_id) == ("b1", "kim")
    assert released.caused_by is None
    assert room.bookings["b1"].status == "released"
    assert run(room, tick(kst(10, 16)), kst(10, 16)) == []
    # The room is free again.
    only(room, checkin(kst(10, 20)), CheckinAdmitted, now=kst(10, 20))
    book(room, "b2", member="lee", start=kst(10, 30), end=kst(11), now=kst(10, 20))


def test_the_grace_period_is_a_policy() -> None:
    room = club()
    book(room, "b1")
    policy = Policy(no_show_grace=timedelta(minutes=5))
    _, decisions = decide(room, tick(kst(10, 5)), kst(10, 5), policy)
    assert [d.type for d in decisions] == ["booking.released"]


def test_a_checked_in_booking_is_never_released() -> None:
    room = club()
    book(room, "b1", member="kim")
    only(room, checkin(kst(10, 5), member="kim"), CheckinAdmitted, now=kst(10, 5))
    for at in (kst(10, 15), kst(11, 59), kst(13)):
        assert all(d.type != "booking.released" for d in run(room, tick(at), at))
    assert room.bookings["b1"].status == "confirmed"


def test_everyone_still_inside_is_checked_out_once_per_closing() -> None:
    room = club()
    only(room, checkin(kst(21), party=5), CheckinAdmitted, now=kst(21))
    assert run(room, tick(kst(21, 59)), kst(21, 59)) == []
    event = tick(kst(22))
    [out] = run(room, event, kst(22))
    assert isinstance(out, CheckoutRecorded)
    assert (out.kiosk_id, out.caused_by, out.member_id) == (None, None, None)
    assert (out.party_size, out.occupancy, out.capacity) == (5, 0, 15)
    assert room.occupancy == 0
    assert run(room, tick(kst(22, 1)), kst(22, 1)) == []
    # The next day's closing checks out the next day's visitors.
    next_day = kst(10, day=21)
    only(room, checkin(next_day, party=3), CheckinAdmitted, now=next_day)
    assert run(room, tick(kst(21, day=21)), kst(21, day=21)) == []
    [out] = run(room, tick(kst(23, day=21)), kst(23, day=21))
    assert isinstance(out, CheckoutRecorded) and out.party_size == 3


def test_closing_with_nobody_inside_records_nothing_but_counts_as_done() -> None:
    room = club()
    assert run(room, tick(kst(22, 30)), kst(22, 30)) == []
    assert room.last_closing == kst(22)


def test_a_checkin_from_before_the_last_closing_is_closed() -> None:
    room = club()
    run(room, tick(kst(22)), kst(22))
    # Stood at the door at 21:55, delivered after the closing check-out.
    denied = only(room, checkin(kst(21, 55)), CheckinDenied, now=kst(22, 5))
    assert (denied.reason, denied.late) == ("closed", False)
    denied = only(room, checkin(kst(21, 55)), CheckinDenied, now=kst(22, 30))
    assert (denied.reason, denied.late) == ("closed", True)
    # A day-old check-in from opening hours is still closed: that day has been closed.
    next_day = kst(10, day=21)
    denied = only(room, checkin(kst(21)), CheckinDenied, now=next_day)
    assert (denied.reason, denied.late) == ("closed", True)


def test_a_checkin_delivered_after_the_late_tolerance_is_marked_late() -> None:
    room = club()
    on_time = only(room, checkin(kst(10)), CheckinAdmitted, now=kst(10, 10))
    assert not on_time.late
    late = only(room, checkin(kst(10)), CheckinAdmitted, now=kst(10, 10, second=1))
    assert late.late


def test_the_clock_forgets_bookings_and_sessions_long_over() -> None:
    room = classroom()
    book(room, "b1", start=kst(10), end=kst(11))
    only(room, session(), SessionScheduledDecision)
    at = kst(16) + KEEP_HISTORY - timedelta(seconds=1)
    run(room, tick(at, "edu"), at)
    assert "b1" not in room.bookings and "s1" in room.sessions
    at = kst(16) + KEEP_HISTORY
    run(room, tick(at, "edu"), at)
    assert room.sessions == {}
    # A forgotten booking is unknown to a cancel.
    assert only(room, cancel("b1", room_id="edu"), BookingRejected).reason == "unknown_booking"


# --- determinism and state --------------------------------------------------------------


def copied(room: Room) -> Room:
    """A copy of the room, through its stored form: the rules compiled with mypyc
    (``infra/native.py``) cannot be deep-copied."""
    return Room.from_json(room.to_json())


def test_decision_ids_are_deterministic_per_input() -> None:
    room = with_session(seats=1)
    only(room, enroll("a"), EnrollmentConfirmed)
    only(room, enroll("b"), EnrollmentWaitlisted)
    event = unenroll("a")
    first = run(copied(room), event)
    again = run(copied(room), event)
    assert first == again
    assert len(first) == 2 and first[0].event_id != first[1].event_id
    # As the contract names them (the chaos checker's reference derives them so too).
    assert [d.event_id for d in first] == [
        uuid5(DECISION_NAMESPACE, f"{event.event_id}:{n}") for n in range(2)
    ]
    assert all(d.caused_by == event.event_id for d in first)
    other = run(copied(room), unenroll("a"))
    assert {d.event_id for d in other}.isdisjoint(d.event_id for d in first)


def test_clock_decisions_have_deterministic_ids_and_no_cause() -> None:
    room = club()
    book(room, "b1")
    event = tick(kst(10, 15))
    first = run(copied(room), event, kst(10, 15))
    again = run(copied(room), event, kst(10, 15))
    assert first == again and len(first) == 1
    assert first[0].caused_by is None
    assert first[0].event_id != event.event_id


def test_room_survives_a_json_round_trip() -> None:
    room = with_session(seats=2)
    book(room, "b1", start=kst(10), end=kst(11))
    book(room, "b2", member="m2", start=kst(11), end=kst(12))
    book(room, "b3", member="m3", start=kst(12), end=kst(13))
    only(room, cancel("b2", member="m2", room_id="edu"), BookingCancelled)
    only(room, enroll("a", party=2), EnrollmentConfirmed)
    only(room, enroll("b"), EnrollmentWaitlisted)
    only(room, checkin(kst(9, 50), member="m1", room_id="edu"), CheckinAdmitted, now=kst(9, 50))
    run(room, tick(kst(12, 15), "edu"), kst(12, 15))
    assert room.bookings["b3"].status == "released"
    assert room.last_closing is not None

    data = json.loads(json.dumps(room.to_json()))
    restored = Room.from_json(data)
    assert restored == room
    assert restored.to_json() == room.to_json()
    # The restored room decides exactly as the original does.
    event = checkin(kst(13), party=3, room_id="edu")
    assert run(restored, event, kst(13)) == run(room, event, kst(13))
    assert restored == room


def test_max_concurrent_treats_intervals_as_half_open() -> None:
    room = lounge(10)
    book(room, "a", party=3, start=kst(10), end=kst(11))
    book(room, "b", party=4, start=kst(11), end=kst(12))
    book(room, "c", party=2, start=kst(10, 30), end=kst(11, 30))
    holds = room.holds()
    assert max_concurrent(holds, kst(10), kst(12)) == 6
    assert max_concurrent(holds, kst(11, 30), kst(12)) == 4
    assert max_concurrent(holds, kst(12), kst(13)) == 0


# --- protected bookings: the booked party finds its places (issue 9, 1) ------------------


def test_walk_ins_in_the_early_arrival_window_of_an_exclusive_booking_are_reserved() -> None:
    """Ten walk-ins at 17:50 used to fill the room booked from 18:00 for a party of 8."""
    room = club()
    book(room, "eve", member="kim", party=8, start=kst(18), end=kst(20))
    at = kst(17, 50)
    denied = only(room, checkin(at, party=10), CheckinDenied, now=at)
    assert denied.reason == "reserved"
    admitted = only(room, checkin(kst(18), party=8, member="kim"), CheckinAdmitted, now=kst(18))
    assert admitted.attended_booking_id == "eve"
    assert run(room, tick(kst(18, 15)), kst(18, 15)) == []  # not a no-show
    assert room.bookings["eve"].status == "confirmed"


def test_walk_ins_before_the_window_leave_the_booked_partys_places_free() -> None:
    room = club()
    book(room, "eve", member="kim", party=8, start=kst(18), end=kst(20))
    at = kst(17, 30)
    # Walk-ins may stay until closing: only 15 - 8 places are left for them.
    assert only(room, checkin(at, party=10), CheckinDenied, now=at).reason == "room_full"
    only(room, checkin(at, party=7), CheckinAdmitted, now=at)
    assert only(room, checkin(at), CheckinDenied, now=at).reason == "room_full"
    admitted = only(room, checkin(kst(18), party=8, member="kim"), CheckinAdmitted, now=kst(18))
    assert admitted.occupancy == 15


def test_a_shared_room_holds_a_bookings_places_before_it_starts() -> None:
    room = lounge(10)
    book(room, "eve", member="kim", party=6, start=kst(18), end=kst(20))
    at = kst(17, 50)
    assert only(room, checkin(at, party=5, room_id="lounge"), CheckinDenied, now=at).reason == (
        "room_full"
    )
    only(room, checkin(at, party=4, room_id="lounge"), CheckinAdmitted, now=at)
    booker = checkin(kst(18), party=6, member="kim", room_id="lounge")
    assert only(room, booker, CheckinAdmitted, now=kst(18)).occupancy == 10


def test_a_party_arriving_in_parts_keeps_the_places_of_those_still_to_come() -> None:
    room = lounge(10)
    book(room, "b1", member="kim", party=6, start=kst(10), end=kst(12))
    at = kst(10, 5)
    only(room, checkin(at, party=2, member="kim", room_id="lounge"), CheckinAdmitted, now=at)
    assert room.bookings["b1"].arrived == 2
    # Four of kim's party are still to come: walk-ins get 10 - 2 - 4.
    assert only(room, checkin(at, party=5, room_id="lounge"), CheckinDenied, now=at).reason == (
        "room_full"
    )
    only(room, checkin(at, party=4, room_id="lounge"), CheckinAdmitted, now=at)
    rest = checkin(kst(10, 20), party=4, booking_id="b1", room_id="lounge")
    assert only(room, rest, CheckinAdmitted, now=kst(10, 20)).occupancy == 10
    assert room.bookings["b1"].arrived == 6


def test_a_booked_party_larger_than_its_booking_brings_walk_ins() -> None:
    room = club()
    book(room, "b1", member="kim", party=4, start=kst(10), end=kst(12))
    book(room, "b2", member="lee", party=14, start=kst(13), end=kst(15))
    # kim comes with 6: 4 booked, 2 more who may stay, and lee's 14 must still fit later.
    denied = only(room, checkin(kst(10), party=6, member="kim"), CheckinDenied, now=kst(10))
    assert denied.reason == "room_full"
    admitted = only(room, checkin(kst(10), party=5, member="kim"), CheckinAdmitted, now=kst(10))
    assert admitted.attended_booking_id == "b1"
    assert room.bookings["b1"].arrived == 4


# --- back to back: a party comes in when its own booking holds the room (issue 9, 2) ------


def test_back_to_back_the_next_party_waits_for_the_booking_before_it_to_end() -> None:
    room = club()
    book(room, "a", member="kim", party=4, start=kst(10), end=kst(12))
    book(room, "b", member="lee", party=4, start=kst(12), end=kst(14))
    at = kst(11, 50)
    assert only(room, checkin(at, member="lee"), CheckinDenied, now=at).reason == "reserved"
    named = checkin(at, booking_id="b", member="lee")
    assert only(room, named, CheckinDenied, now=at).reason == "reserved"
    only(room, checkin(at, member="kim"), CheckinAdmitted, now=at)  # a's own party
    admitted = only(room, checkin(kst(12), member="lee"), CheckinAdmitted, now=kst(12))
    assert admitted.attended_booking_id == "b"


def test_after_a_gap_the_next_party_may_come_early_again() -> None:
    room = club()
    book(room, "a", member="kim", party=4, start=kst(10), end=kst(11, 50))
    book(room, "b", member="lee", party=4, start=kst(12), end=kst(14))
    only(room, checkin(kst(11, 50), member="lee"), CheckinAdmitted, now=kst(11, 50))
    assert room.bookings["b"].checked_in


def test_in_a_shared_room_an_early_party_waits_while_it_would_not_fit() -> None:
    room = lounge(10)
    book(room, "a", member="kim", party=6, start=kst(10), end=kst(12))
    book(room, "b", member="lee", party=6, start=kst(12), end=kst(14))
    book(room, "c", member="park", party=2, start=kst(14), end=kst(15))
    only(
        room,
        checkin(kst(10), party=6, member="kim", room_id="lounge"),
        CheckinAdmitted,
        now=kst(10),
    )
    early = checkin(kst(11, 50), party=6, member="lee", room_id="lounge")
    decision = only(room, early, CheckinDenied, now=kst(11, 50))
    assert (decision.reason, decision.attended_booking_id) == ("room_full", None)
    # Beside b's 6 there is room for c's 2, so c's party may come a quarter early.
    only(room, checkout(kst(12), party=6, room_id="lounge"), CheckoutRecorded, now=kst(12))
    only(
        room,
        checkin(kst(12), party=6, member="lee", room_id="lounge"),
        CheckinAdmitted,
        now=kst(12),
    )
    at = kst(13, 45)
    admitted = only(
        room, checkin(at, party=2, member="park", room_id="lounge"), CheckinAdmitted, now=at
    )
    assert admitted.attended_booking_id == "c"


# --- fair waitlists (issue 9, 3) --------------------------------------------------------


def test_a_newcomer_that_fits_the_free_seats_is_confirmed_despite_the_waitlist() -> None:
    room = with_session(seats=20)
    only(room, enroll("many", party=19), EnrollmentConfirmed)
    only(room, enroll("three", party=3), EnrollmentWaitlisted)
    confirmed = only(room, enroll("one", party=1), EnrollmentConfirmed)
    assert confirmed.party_size == 1
    assert [e.member_id for e in room.sessions["s1"].waitlist] == ["three"]


def test_a_freed_seat_goes_to_the_oldest_waitlisted_party_that_fits() -> None:
    room = with_session(seats=5)
    only(room, enroll("a", party=3), EnrollmentConfirmed)
    only(room, enroll("b", party=2), EnrollmentConfirmed)
    only(room, enroll("c", party=3), EnrollmentWaitlisted)
    only(room, enroll("d", party=3), EnrollmentWaitlisted)
    decisions = run(room, unenroll("b"))
    assert [d.type for d in decisions] == ["enrollment.cancelled"]  # 2 free: neither fits
    decisions = run(room, unenroll("a"))
    assert [(d.type, getattr(d, "member_id", None)) for d in decisions] == [
        ("enrollment.cancelled", "a"),
        ("enrollment.promoted", "c"),
    ]


# --- distancing: sessions and the people inside (issue 9, 4) ----------------------------


def test_a_capacity_cut_caps_a_sessions_seats_and_lists_the_session() -> None:
    room = new_room("edu", capacity=30, name="교육실")
    only(room, session(seats=20), SessionScheduledDecision)
    for i in range(8):
        only(room, enroll(f"m{i}"), EnrollmentConfirmed)
    cut = only(room, capacity_changed(10, room_id="edu"), CapacityChanged)
    assert cut.conflicting_session_ids == ["s1"]
    assert cut.conflicting_booking_ids == []
    only(room, enroll("m8"), EnrollmentConfirmed)
    only(room, enroll("m9"), EnrollmentConfirmed)
    waiting = only(room, enroll("m10"), EnrollmentWaitlisted)
    assert waiting.waitlist_position == 1
    assert room.sessions["s1"].seats_taken == 10
    # The capacity back at 30: the session has its 20 seats again, and the waitlist moves up.
    event = capacity_changed(30, room_id="edu")
    restored, promoted = run(room, event)
    assert isinstance(restored, CapacityChanged) and restored.conflicting_session_ids == []
    assert isinstance(promoted, EnrollmentPromoted) and promoted.member_id == "m10"
    assert promoted.caused_by == event.event_id


def test_a_capacity_cut_below_the_people_inside_says_how_many_are_over() -> None:
    room = club()
    only(room, checkin(kst(10), party=12), CheckinAdmitted, now=kst(10))
    cut = only(room, capacity_changed(10), CapacityChanged, now=kst(10, 1))
    assert (cut.capacity, cut.occupancy_over_capacity) == (10, 2)
    assert room.occupancy == 12  # nobody is put out; new arrivals wait
    assert only(room, checkin(kst(10, 2)), CheckinDenied, now=kst(10, 2)).reason == "room_full"
    fine = only(room, capacity_changed(15), CapacityChanged, now=kst(10, 3))
    assert fine.occupancy_over_capacity == 0


def test_a_reconfiguration_lists_sessions_and_the_persons_over_too() -> None:
    room = new_room("edu", capacity=30, name="교육실")
    only(room, session(seats=20), SessionScheduledDecision)
    only(room, checkin(kst(10), party=25, room_id="edu"), CheckinAdmitted, now=kst(10))
    [decision] = decide(room, configured("edu", capacity=12, name="교육실"), kst(10, 1))[1]
    assert isinstance(decision, RoomConfiguredDecision)
    assert decision.conflicting_session_ids == ["s1"]
    assert decision.occupancy_over_capacity == 13


# --- booking ids are never reused (issue 9, 5) ------------------------------------------


def test_a_booking_id_still_in_the_rooms_state_is_a_duplicate() -> None:
    room = club()
    book(room, "b1", start=kst(10), end=kst(11))
    rejected = only(room, booking("b1", member="m2", start=kst(15), end=kst(16)), BookingRejected)
    assert rejected.reason == "duplicate_booking_id"
    assert room.bookings["b1"].member_id == "m1"


def test_a_booking_id_the_state_forgot_is_still_a_duplicate() -> None:
    room = club()
    book(room, "b1", start=kst(10), end=kst(11))
    later = kst(11) + KEEP_HISTORY + timedelta(hours=1)
    run(room, tick(later), later)
    assert "b1" not in room.bookings
    again = booking(
        "b1", member="m2", start=later + timedelta(hours=1), end=later + timedelta(hours=2)
    )
    _, decisions = decide(room, again, later, seen_booking_ids={"b1"})
    [rejected] = decisions
    assert isinstance(rejected, BookingRejected) and rejected.reason == "duplicate_booking_id"
    assert "b1" not in room.bookings


def test_a_cancel_after_the_booking_ended_is_rejected_and_changes_nothing() -> None:
    room = club()
    book(room, "b1", member="kim", start=kst(10), end=kst(11))
    only(room, checkin(kst(10), member="kim"), CheckinAdmitted, now=kst(10))
    rejected = only(room, cancel("b1", member="kim"), BookingRejected, now=kst(11))
    assert rejected.reason == "booking_ended"
    assert room.bookings["b1"].status == "confirmed"
    # Someone else is not told the booking exists.
    other = only(room, cancel("b1", member="lee"), BookingRejected, now=kst(11))
    assert other.reason == "unknown_booking"


def test_a_cancel_while_the_booking_runs_is_still_accepted() -> None:
    room = club()
    book(room, "b1", member="kim", start=kst(10), end=kst(11))
    only(room, cancel("b1", member="kim"), BookingCancelled, now=kst(10, 59))


# --- requests answered, not dead-lettered (issue 9, 6) ----------------------------------


def test_a_booking_ending_when_it_starts_is_rejected_invalid() -> None:
    rejected = only(club(), booking("b1", start=kst(10), end=kst(10)), BookingRejected)
    assert rejected.reason == "invalid"
    backwards = only(club(), booking("b1", start=kst(11), end=kst(10)), BookingRejected)
    assert backwards.reason == "invalid"


def test_a_session_ending_when_it_starts_is_rejected_invalid() -> None:
    rejected = only(classroom(), session(start=kst(14), end=kst(14)), SessionRejected)
    assert rejected.reason == "invalid"


def test_a_room_open_overnight_takes_bookings_across_midnight() -> None:
    room = new_room("bar", opens="18:00", closes="02:00")
    book(room, "late", start=kst(23), end=kst(1, day=21))
    book(room, "later", member="m2", start=kst(1, day=21), end=kst(2, day=21))
    for n, (start, end) in enumerate(
        [(kst(1, 30, day=21), kst(2, 30, day=21)), (kst(17), kst(19))]
    ):
        rejected = only(
            room, booking(f"x{n}", room_id="bar", start=start, end=end), BookingRejected
        )
        assert rejected.reason == "outside_opening_hours"
    at = kst(1, 30, day=21)
    only(room, checkin(at, party=2, room_id="bar", member="m2"), CheckinAdmitted, now=at)
    closed = checkin(kst(2, day=21), room_id="bar")
    assert only(room, closed, CheckinDenied, now=kst(2, day=21)).reason == "closed"
    *released, out = run(room, tick(kst(2, 1, day=21), "bar"), kst(2, 1, day=21))
    assert [d.type for d in released] == ["booking.released"]  # "late": nobody came
    assert isinstance(out, CheckoutRecorded) and out.party_size == 2


def test_a_room_open_around_the_clock_takes_a_booking_across_midnight() -> None:
    room = new_room("hall", mode="shared", opens="00:00", closes="24:00")
    book(room, "night", start=kst(23), end=kst(1, day=21))
    booker = checkin(kst(23, 30), party=2, member="m1", room_id="hall")
    only(room, booker, CheckinAdmitted, now=kst(23, 30))
    # Midnight is no closing: nobody is checked out, and the room stays open.
    assert run(room, tick(kst(0, 1, day=21), "hall"), kst(0, 1, day=21)) == []
    assert room.occupancy == 2
    at = kst(0, 30, day=21)
    only(room, checkin(at, room_id="hall"), CheckinAdmitted, now=at)


def test_a_state_stored_before_parties_were_counted_reads_a_checked_in_party_as_come() -> None:
    """Rooms in databases written before ``arrived`` existed: a checked-in booking's party
    came whole (v1 kept no places for it), one not checked in is still expected."""
    room = lounge(10)
    book(room, "in", member="kim", party=4, start=kst(10), end=kst(12))
    book(room, "out", member="lee", party=3, start=kst(10), end=kst(12))
    document = room.to_json()
    for stored in document["bookings"]:
        del stored["arrived"]
    document["bookings"][0]["checked_in"] = True
    restored = Room.from_json(document)
    assert (restored.bookings["in"].arrived, restored.bookings["in"].expected) == (4, 0)
    assert (restored.bookings["out"].arrived, restored.bookings["out"].expected) == (0, 3)


def test_a_room_no_longer_open_around_the_clock_checks_out_at_its_next_closing_only() -> None:
    room = new_room("hall", mode="shared", opens="00:00", closes="24:00")
    only(room, checkin(kst(14), party=3, room_id="hall"), CheckinAdmitted, now=kst(14))
    decide(room, configured("hall", mode="shared", opens="09:00", closes="22:00"), kst(15))
    assert run(room, tick(kst(15, 1), "hall"), kst(15, 1)) == []  # not "last night's closing"
    assert room.occupancy == 3
    [out] = run(room, tick(kst(22), "hall"), kst(22))
    assert isinstance(out, CheckoutRecorded) and out.party_size == 3


# --- kiosk clocks (issue 7) ---------------------------------------------------------------


def test_a_checkin_stamped_hours_ahead_of_the_decision_time_is_denied_clock_skew() -> None:
    """Judged at its own time, it took places of a later hour; now it is answered, refused."""
    policy = Policy(kiosk_clock_tolerance=timedelta(minutes=5))
    room = club()
    event = checkin(kst(15), party=2)
    decisions = decide(room, event, kst(12), policy)[1]
    assert [(d.type, getattr(d, "reason", None)) for d in decisions] == [
        ("checkin.denied", "clock_skew")
    ]
    assert room.occupancy == 0
    # Within the tolerance (a kiosk a few seconds fast), and replayed history: admitted.
    assert decide(room, checkin(kst(12, 4), party=2), kst(12), policy)[1][0].type == (
        "checkin.admitted"
    )
    assert decide(club(), event, kst(12))[1][0].type == "checkin.admitted"
