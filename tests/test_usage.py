"""Monthly usage folded from hand-built decision logs, compared with hand-computed numbers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.usage import (
    ACTIVE_BOOKING_RETENTION,
    CenterUsage,
    RoomUsage,
    close_month,
    fold,
    local_month,
    previous_month,
)
from schemas.decisions import (
    DECISION_ADAPTER,
    AnyDecision,
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingReleased,
    CheckinAdmitted,
    CheckinDenied,
    CheckoutRecorded,
    EnrollmentConfirmed,
    RoomConfiguredDecision,
)
from schemas.outputs import UsageMonthly

SEOUL = ZoneInfo("Asia/Seoul")
CENTER = "center-1"
ROOM_A = "room-a"
ROOM_B = "room-b"
NOW = datetime(2027, 1, 5, 12, 0, tzinfo=UTC)


def kst(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


# --- decision builders -----------------------------------------------------------------


def configured(
    at: datetime,
    room: str = ROOM_A,
    opens: str = "09:00",
    closes: str = "22:00",
    tz: str = "Asia/Seoul",
) -> RoomConfiguredDecision:
    return RoomConfiguredDecision(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        name=f"Room {room}",
        capacity=20,
        booking_mode="shared",
        opens=opens,
        closes=closes,
        timezone=tz,
    )


def confirmed(
    booking: str,
    member: str,
    starts_at: datetime,
    ends_at: datetime,
    room: str = ROOM_A,
    at: datetime | None = None,
) -> BookingConfirmed:
    return BookingConfirmed(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at or starts_at - timedelta(days=1),
        booking_id=booking,
        member_id=member,
        party_size=2,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def cancelled(
    booking: str,
    member: str,
    starts_at: datetime,
    ends_at: datetime,
    at: datetime,
    room: str = ROOM_A,
) -> BookingCancelled:
    return BookingCancelled(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        booking_id=booking,
        member_id=member,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def released(
    booking: str, member: str, starts_at: datetime, ends_at: datetime, room: str = ROOM_A
) -> BookingReleased:
    return BookingReleased(
        event_id=uuid4(),
        caused_by=None,
        room_id=room,
        center_id=CENTER,
        decided_at=starts_at + timedelta(minutes=15),
        booking_id=booking,
        member_id=member,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def rejected(booking: str, member: str, at: datetime, room: str = ROOM_A) -> BookingRejected:
    return BookingRejected(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        booking_id=booking,
        member_id=member,
        reason="overlap",
    )


def admitted(
    at: datetime,
    party: int,
    occupancy: int,
    member: str | None = None,
    room: str = ROOM_A,
) -> CheckinAdmitted:
    return CheckinAdmitted(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        kiosk_id="kiosk-1",
        party_size=party,
        occupancy=occupancy,
        capacity=20,
        member_id=member,
    )


def denied(at: datetime, room: str = ROOM_A) -> CheckinDenied:
    return CheckinDenied(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        kiosk_id="kiosk-1",
        party_size=1,
        occupancy=20,
        capacity=20,
        reason="room_full",
    )


def checkout(at: datetime, party: int, occupancy: int, room: str = ROOM_A) -> CheckoutRecorded:
    return CheckoutRecorded(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=room,
        center_id=CENTER,
        decided_at=at,
        kiosk_id="kiosk-1",
        party_size=party,
        occupancy=occupancy,
        capacity=20,
    )


# --- running a log ---------------------------------------------------------------------


class Usage:
    """The room states, the center state and the newest aggregate per key."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomUsage] = {}
        self.center = CenterUsage(CENTER)
        self.latest: dict[str, UsageMonthly] = {}
        self.emitted: list[UsageMonthly] = []

    def fold(self, decisions: Iterable[AnyDecision]) -> list[UsageMonthly]:
        out: list[UsageMonthly] = []
        for decision in decisions:
            room = self.rooms.setdefault(decision.room_id, RoomUsage(decision.room_id))
            out.extend(fold(room, self.center, decision, NOW))
        self._record(out)
        return out

    def close(self, month: str) -> list[UsageMonthly]:
        out: list[UsageMonthly] = []
        for room in self.rooms.values():
            out.extend(close_month(room, month, NOW))
        out.extend(close_month(self.center, month, NOW))
        self._record(out)
        return out

    def _record(self, out: list[UsageMonthly]) -> None:
        self.emitted.extend(out)
        for message in out:
            self.latest[message.key] = message

    def room(self, month: str, room: str = ROOM_A) -> UsageMonthly:
        return self.latest[f"room:{room}:{month}"]

    def of_center(self, month: str) -> UsageMonthly:
        return self.latest[f"center:{CENTER}:{month}"]


def run(*decisions: AnyDecision) -> Usage:
    usage = Usage()
    usage.fold(decisions)
    return usage


def configured_before_november(room: str = ROOM_A) -> RoomConfiguredDecision:
    return configured(kst(10, 20, 8), room=room)


# --- months ----------------------------------------------------------------------------


def test_local_month_uses_the_room_time_zone() -> None:
    late_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert local_month(late_utc, "Asia/Seoul") == "2026-12"
    assert local_month(late_utc, "UTC") == "2026-11"
    assert local_month(datetime(2026, 12, 31, 15, 0, tzinfo=UTC), "Asia/Seoul") == "2027-01"
    assert previous_month(datetime(2026, 12, 31, 15, 0, tzinfo=UTC), "Asia/Seoul") == "2026-12"
    assert previous_month(datetime(2027, 1, 1, 0, 0, tzinfo=SEOUL)) == "2026-12"
    with pytest.raises(ValueError):
        local_month(datetime(2026, 11, 1), "Asia/Seoul")


def test_events_at_23_30_utc_on_november_30_belong_to_december_in_seoul() -> None:
    late_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 2026-12-01 08:30 KST
    usage = run(
        configured_before_november(),
        confirmed("b1", "m1", late_utc, late_utc + timedelta(hours=2), at=kst(11, 20)),
        admitted(late_utc, party=3, occupancy=3, member="m2"),
        denied(late_utc),
        rejected("b2", "m3", late_utc),
    )
    december = usage.room("2026-12")
    assert december.bookings_confirmed == 1
    assert december.booked_hours == 2.0
    assert december.visits == 3
    assert december.checkins_denied == 1
    assert december.bookings_rejected == 1
    assert december.unique_members == 2
    assert december.peak_occupancy == 3
    assert "room:room-a:2026-11" not in usage.latest  # nothing happened in November


def test_a_room_in_utc_uses_utc_months() -> None:
    late_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    usage = run(
        configured(datetime(2026, 10, 1, tzinfo=UTC), room=ROOM_B, tz="UTC"),
        admitted(late_utc, party=2, occupancy=2, room=ROOM_B),
    )
    assert usage.room("2026-11", ROOM_B).visits == 2
    assert usage.of_center("2026-11").visits == 2


# --- booked hours ----------------------------------------------------------------------


def test_a_booking_across_local_midnight_at_month_end_splits_its_hours() -> None:
    start, end = kst(11, 30, 22), kst(12, 1, 2)  # 2 h in November, 2 h in December
    usage = run(configured_before_november(), confirmed("b1", "m1", start, end))
    assert usage.room("2026-11").booked_hours == 2.0
    assert usage.room("2026-12").booked_hours == 2.0
    assert usage.room("2026-11").bookings_confirmed == 1  # counted in its start month
    assert usage.room("2026-12").bookings_confirmed == 0
    assert usage.of_center("2026-11").booked_hours == 2.0
    assert usage.of_center("2026-12").booked_hours == 2.0


def test_cancellation_subtracts_the_hours_from_both_months() -> None:
    start, end = kst(11, 30, 22), kst(12, 1, 2)
    usage = run(configured_before_november(), confirmed("b1", "m1", start, end))
    out = usage.fold([cancelled("b1", "m1", start, end, at=kst(11, 29))])
    assert {m.key for m in out} == {
        "room:room-a:2026-11",
        "room:room-a:2026-12",
        "center:center-1:2026-11",
        "center:center-1:2026-12",
    }
    assert usage.room("2026-11").booked_hours == 0.0
    assert usage.room("2026-12").booked_hours == 0.0
    assert usage.room("2026-11").bookings_cancelled == 1
    assert usage.room("2026-11").bookings_confirmed == 1  # it was confirmed
    assert usage.of_center("2026-12").booked_hours == 0.0


def test_no_show_subtracts_the_hours_and_counts() -> None:
    usage = run(
        configured_before_november(),
        confirmed("b1", "m1", kst(11, 10, 10), kst(11, 10, 13)),  # 3 h
        confirmed("b2", "m2", kst(11, 11, 10), kst(11, 11, 12)),  # 2 h, no-show
        released("b2", "m2", kst(11, 11, 10), kst(11, 11, 12)),
    )
    november = usage.room("2026-11")
    assert november.no_shows == 1
    assert november.bookings_confirmed == 2
    assert november.booked_hours == 3.0
    assert november.open_hours == 390.0
    assert november.utilization == round(3 / 390, 4) == 0.0077


def test_a_cancel_for_a_booking_never_seen_is_counted_without_going_negative() -> None:
    start, end = kst(11, 12, 10), kst(11, 12, 12)
    usage = run(
        configured_before_november(),
        cancelled("ghost", "m1", start, end, at=kst(11, 1)),
        released("ghost-2", "m2", start, end),
    )
    november = usage.room("2026-11")
    assert november.bookings_cancelled == 1
    assert november.no_shows == 1
    assert november.booked_hours == 0.0
    assert november.bookings_confirmed == 0


def test_out_of_order_oddities_never_count_hours_twice() -> None:
    start, end = kst(11, 12, 10), kst(11, 12, 12)
    usage = run(
        configured_before_november(),
        confirmed("b1", "m1", start, end),
        released("b1", "m1", start, end),
        cancelled("b1", "m1", start, end, at=kst(11, 12, 11)),  # ended already: no hours
        cancelled("b2", "m2", start, end, at=kst(11, 1)),  # cancel before its confirmation
        confirmed("b2", "m2", start, end, at=kst(11, 2)),  # confirmation after: no hours
        confirmed("b3", "m3", start, end),
        confirmed("b3", "m3", start, start + timedelta(hours=1)),  # restated: replaces
    )
    november = usage.room("2026-11")
    assert november.booked_hours == 1.0
    assert november.bookings_confirmed == 3
    assert november.bookings_cancelled == 2
    assert november.no_shows == 1


def test_rejections_and_denials_count_in_the_month_decided() -> None:
    usage = run(
        configured_before_november(),
        rejected("b1", "m1", kst(11, 30, 23, 59)),
        rejected("b2", "m1", kst(12, 1, 0, 0)),
        denied(kst(11, 5, 10)),
        denied(kst(11, 5, 11)),
    )
    assert usage.room("2026-11").bookings_rejected == 1
    assert usage.room("2026-12").bookings_rejected == 1
    assert usage.room("2026-11").checkins_denied == 2
    assert usage.of_center("2026-11").checkins_denied == 2


# --- members, visits, peaks ------------------------------------------------------------


def test_unique_members_are_those_who_booked_or_checked_in_that_month() -> None:
    usage = run(
        configured_before_november(),
        confirmed("b1", "m1", kst(11, 3, 10), kst(11, 3, 11)),
        confirmed("b2", "m1", kst(11, 4, 10), kst(11, 4, 11)),
        confirmed("b3", "m2", kst(11, 5, 10), kst(11, 5, 11)),
        admitted(kst(11, 3, 10), party=2, occupancy=2, member="m1"),
        admitted(kst(11, 6, 10), party=1, occupancy=3, member="m3"),
        admitted(kst(11, 6, 11), party=4, occupancy=7),  # anonymous
        confirmed("b4", "m1", kst(12, 2, 10), kst(12, 2, 11), at=kst(11, 20)),  # December
        confirmed("b5", "m4", kst(11, 7, 10), kst(11, 7, 11), room=ROOM_B),
        admitted(kst(11, 7, 10), party=1, occupancy=1, member="m1", room=ROOM_B),
    )
    assert usage.room("2026-11").unique_members == 3  # m1, m2, m3
    assert usage.room("2026-11").visits == 7
    assert usage.room("2026-12").unique_members == 1  # m1 again, in its own month
    assert usage.room("2026-11", ROOM_B).unique_members == 2  # m4, m1
    assert usage.of_center("2026-11").unique_members == 4  # union: m1, m2, m3, m4
    assert usage.of_center("2026-11").visits == 8


def test_peak_occupancy_per_room_and_for_the_center() -> None:
    usage = run(
        configured_before_november(ROOM_A),
        configured_before_november(ROOM_B),
        admitted(kst(11, 2, 10), party=3, occupancy=3, room=ROOM_A),  # center 3
        admitted(kst(11, 2, 10, 5), party=4, occupancy=4, room=ROOM_B),  # center 7
        checkout(kst(11, 2, 11), party=3, occupancy=0, room=ROOM_A),  # center 4
        admitted(kst(11, 2, 12), party=2, occupancy=6, room=ROOM_B),  # center 6
        admitted(kst(11, 3, 10), party=5, occupancy=5, room=ROOM_A),  # center 11
        checkout(kst(11, 3, 12), party=6, occupancy=0, room=ROOM_B),  # center 5
        admitted(kst(12, 1, 10), party=2, occupancy=7, room=ROOM_A),  # December: center 7
    )
    assert usage.room("2026-11", ROOM_A).peak_occupancy == 5
    assert usage.room("2026-11", ROOM_B).peak_occupancy == 6
    assert usage.of_center("2026-11").peak_occupancy == 11
    assert usage.room("2026-12", ROOM_A).peak_occupancy == 7
    assert usage.of_center("2026-12").peak_occupancy == 7


def test_a_checkout_that_changes_no_figure_emits_nothing() -> None:
    usage = run(
        configured_before_november(),
        admitted(kst(11, 2, 10), party=3, occupancy=3),
    )
    # at the same moment: no person-hours yet, and the peak stays 3
    assert usage.fold([checkout(kst(11, 2, 10), party=1, occupancy=2)]) == []
    # an hour later, the 2 still inside add 2 person-hours
    out = usage.fold([checkout(kst(11, 2, 11), party=1, occupancy=1)])
    assert [(m.key, m.person_hours) for m in out] == [
        ("room:room-a:2026-11", 2.0),
        ("center:center-1:2026-11", 2.0),
    ]
    enrolled = EnrollmentConfirmed(
        event_id=uuid4(),
        caused_by=uuid4(),
        room_id=ROOM_A,
        center_id=CENTER,
        decided_at=kst(11, 2, 12),
        session_id="s1",
        member_id="m1",
        party_size=1,
    )
    assert usage.fold([enrolled]) == []


# --- open hours and utilization --------------------------------------------------------


def test_open_hours_of_a_09_to_22_room_over_november() -> None:
    usage = run(
        configured_before_november(),
        confirmed("b1", "m1", kst(11, 2, 9), kst(11, 2, 22)),  # 13 h
        confirmed("b2", "m2", kst(11, 3, 9), kst(11, 4, 11)),  # 26 h
    )
    november = usage.room("2026-11")
    assert november.open_hours == 30 * 13 == 390
    assert november.booked_hours == 39.0
    assert november.utilization == 0.1


def test_open_hours_count_from_the_day_of_configuration_and_follow_changes() -> None:
    usage = run(configured(kst(11, 16, 15)))  # open from Nov 16: 15 days
    assert usage.room("2026-11").open_hours == 15 * 13
    usage.fold([configured(kst(11, 21, 8), opens="10:00", closes="24:00")])  # 14 h from Nov 21
    assert usage.room("2026-11").open_hours == 5 * 13 + 10 * 14
    assert usage.of_center("2026-11").open_hours == 5 * 13 + 10 * 14
    assert usage.room("2026-11").utilization == 0.0  # nothing booked


def test_a_room_with_no_configuration_has_no_open_hours_and_zero_utilization() -> None:
    usage = run(confirmed("b1", "m1", kst(11, 2, 9), kst(11, 2, 10)))
    assert usage.room("2026-11").open_hours == 0.0
    assert usage.room("2026-11").utilization == 0.0
    assert usage.room("2026-11").booked_hours == 1.0


def test_center_sums_its_rooms_and_recomputes_utilization() -> None:
    usage = run(
        configured_before_november(ROOM_A),  # 13 h a day
        configured(kst(10, 1), room=ROOM_B, opens="10:00", closes="20:00"),  # 10 h a day
        confirmed("a1", "m1", kst(11, 2, 9), kst(11, 2, 22), room=ROOM_A),  # 13 h
        confirmed("b1", "m2", kst(11, 2, 10), kst(11, 2, 20), room=ROOM_B),  # 10 h
        confirmed("b2", "m3", kst(11, 3, 10), kst(11, 3, 14), room=ROOM_B),  # 4 h
        cancelled("b2", "m3", kst(11, 3, 10), kst(11, 3, 14), at=kst(11, 2), room=ROOM_B),
        rejected("a2", "m4", kst(11, 4), room=ROOM_A),
    )
    center = usage.of_center("2026-11")
    assert center.bookings_confirmed == 3
    assert center.bookings_cancelled == 1
    assert center.bookings_rejected == 1
    assert center.booked_hours == 23.0
    assert center.open_hours == 390 + 300
    assert center.utilization == round(23 / 690, 4) == 0.0333
    assert center.unique_members == 3
    assert usage.room("2026-11", ROOM_B).utilization == round(10 / 300, 4)


# --- closing months --------------------------------------------------------------------


def test_close_month_then_a_revision_after_close() -> None:
    start, end = kst(11, 20, 10), kst(11, 20, 12)
    usage = run(configured_before_november(), confirmed("b1", "m1", start, end))
    closed = {m.key: m for m in usage.close("2026-11")}
    assert closed["room:room-a:2026-11"].final is True
    assert closed["room:room-a:2026-11"].revision == 0
    assert closed["room:room-a:2026-11"].revised_after_close is False
    assert closed["room:room-a:2026-11"].booked_hours == 2.0
    assert closed["center:center-1:2026-11"].final is True

    out = usage.fold([cancelled("b1", "m1", start, end, at=kst(12, 1, 9))])
    assert {m.key for m in out} == {"room:room-a:2026-11", "center:center-1:2026-11"}
    for message in out:
        assert message.final is True
        assert message.revision == 1
        assert message.revised_after_close is True
        assert message.booked_hours == 0.0
        assert message.bookings_cancelled == 1

    out = usage.fold([denied(kst(11, 30, 23))])  # a second late change
    assert [m.revision for m in out] == [2, 2]


def test_closing_is_idempotent_and_works_for_an_empty_month() -> None:
    usage = run(configured_before_november())
    first = usage.close("2026-11")
    second = usage.close("2026-11")
    assert [m.model_dump(exclude={"updated_at"}) for m in first] == [
        m.model_dump(exclude={"updated_at"}) for m in second
    ]
    room = usage.room("2026-11")
    assert (room.final, room.revision, room.open_hours, room.bookings_confirmed) == (
        True,
        0,
        390.0,
        0,
    )
    with pytest.raises(ValueError):
        close_month(usage.rooms[ROOM_A], "2026-13", NOW)


def test_opening_hours_of_a_closed_month_are_frozen() -> None:
    usage = run(configured_before_november())
    usage.close("2026-11")
    # A configuration decided (late) inside the closed month does not reopen its hours.
    out = usage.fold([configured(kst(11, 25), opens="10:00", closes="11:00")])
    assert all(m.month != "2026-11" for m in out)
    assert usage.rooms[ROOM_A].aggregate("2026-11", NOW).open_hours == 390.0
    assert usage.rooms[ROOM_A].aggregate("2026-12", NOW).open_hours == 31.0


# --- state -----------------------------------------------------------------------------


def full_log() -> list[AnyDecision]:
    return [
        configured_before_november(ROOM_A),
        configured_before_november(ROOM_B),
        confirmed("a1", "m1", kst(11, 30, 22), kst(12, 1, 2)),
        confirmed("a2", "m2", kst(11, 10, 9), kst(11, 10, 12)),
        admitted(kst(11, 10, 9), party=2, occupancy=2, member="m2"),
        admitted(kst(11, 10, 9, 30), party=3, occupancy=3, room=ROOM_B),
        released("a3", "m3", kst(11, 11, 9), kst(11, 11, 10)),
        checkout(kst(11, 10, 12), party=2, occupancy=0),
        cancelled("a1", "m1", kst(11, 30, 22), kst(12, 1, 2), at=kst(11, 29)),
        denied(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
        confirmed("b1", "m4", kst(12, 3, 10), kst(12, 3, 13), room=ROOM_B),
    ]


def test_json_round_trip_preserves_state_and_results() -> None:
    log = full_log()
    straight = run(*log)

    resumed = Usage()
    for index, decision in enumerate(log):
        if index % 3 == 0:  # reload the documents as the adapter would between batches
            resumed.rooms = {
                k: RoomUsage.from_json(json.loads(json.dumps(r.to_json())))
                for k, r in resumed.rooms.items()
            }
            resumed.center = CenterUsage.from_json(json.loads(json.dumps(resumed.center.to_json())))
        resumed.fold([decision])

    assert resumed.latest == straight.latest
    for room_id, room in straight.rooms.items():
        assert RoomUsage.from_json(room.to_json()).to_json() == room.to_json()
        assert resumed.rooms[room_id].to_json() == room.to_json()
    assert resumed.center.to_json() == straight.center.to_json()


def test_decisions_read_from_the_wire_fold_the_same() -> None:
    log = full_log()
    wire = [DECISION_ADAPTER.validate_json(DECISION_ADAPTER.dump_json(d)) for d in log]
    assert run(*wire).latest == run(*log).latest


def test_from_json_refuses_a_foreign_document() -> None:
    with pytest.raises(ValueError):
        RoomUsage.from_json({"version": 99, "scope": "room", "room_id": "x"})
    with pytest.raises(ValueError):
        CenterUsage.from_json(RoomUsage("x").to_json())


def test_a_decision_for_another_room_or_center_is_refused() -> None:
    room = RoomUsage(ROOM_A)
    with pytest.raises(ValueError):
        fold(room, None, configured(kst(11, 1), room=ROOM_B), NOW)
    with pytest.raises(ValueError):
        fold(room, CenterUsage("center-2"), configured(kst(11, 1)), NOW)


def test_state_is_bounded() -> None:
    usage = run(
        configured_before_november(),
        configured(kst(10, 25), opens="08:00", closes="20:00"),
        confirmed("old", "m1", kst(11, 2, 9), kst(11, 2, 10)),
        confirmed("gone", "m2", kst(11, 3, 9), kst(11, 3, 10)),
        cancelled("gone", "m2", kst(11, 3, 9), kst(11, 3, 10), at=kst(11, 2)),
    )
    usage.close("2026-10")
    usage.close("2026-11")
    room = usage.rooms[ROOM_A]
    assert set(room.active) == {"old"}
    assert set(room.ended) == {"gone"}
    assert room.months["2026-11"].members == {"m1", "m2"}

    later = kst(2, 1, 10, year=2027)
    assert later - ACTIVE_BOOKING_RETENTION > kst(11, 3, 10)  # both intervals are old enough
    usage.close("2026-12")
    usage.fold([admitted(later, party=1, occupancy=1, member="m9")])
    assert room.active == {}
    assert room.ended == {}
    assert room.months["2026-11"].members is None  # final and older than 2 months
    assert room.months["2026-11"].unique_members == 2  # count kept
    assert room.months["2026-12"].members == set()  # not older than 2 months: kept
    assert len(room.periods) == 1  # only the hours in force are still needed
    assert usage.center.months["2026-11"].members is None
    assert usage.room("2027-02").open_hours == 28 * 12

    # A very late cancel of a forgotten booking still counts, subtracts nothing.
    usage.fold([cancelled("old", "m1", kst(11, 2, 9), kst(11, 2, 10), at=later)])
    november = usage.room("2026-11")
    assert (november.bookings_cancelled, november.booked_hours, november.revision) == (2, 1.0, 1)


# --- properties ------------------------------------------------------------------------

_BASE = datetime(2026, 10, 25, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    bookings=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=60 * 24 * 90),  # start, minutes after _BASE
            st.integers(min_value=1, max_value=60 * 24 * 3),  # duration in minutes
            st.booleans(),  # cancelled later?
        ),
        max_size=12,
    ),
    tz=st.sampled_from(["Asia/Seoul", "UTC", "America/New_York"]),
)
def test_booked_hours_over_all_months_equal_the_kept_bookings(
    bookings: list[tuple[int, int, bool]], tz: str
) -> None:
    usage = Usage()
    usage.fold([configured(_BASE - timedelta(days=30), tz=tz)])
    log: list[AnyDecision] = []
    kept_minutes = 0
    for index, (offset, minutes, cancel) in enumerate(bookings):
        start = _BASE + timedelta(minutes=offset)
        end = start + timedelta(minutes=minutes)
        log.append(confirmed(f"b{index}", "m1", start, end, at=_BASE))
        if cancel:
            log.append(cancelled(f"b{index}", "m1", start, end, at=_BASE + timedelta(hours=1)))
        else:
            kept_minutes += minutes
    usage.fold(log)
    room = usage.rooms[ROOM_A]
    total = sum(room.aggregate(m, NOW).booked_hours for m in room.months)
    assert total == pytest.approx(kept_minutes / 60, abs=1e-3)
    assert sum(room.aggregate(m, NOW).bookings_confirmed for m in room.months) == len(bookings)
    assert all(m.booked_hours >= 0 for m in usage.emitted)
