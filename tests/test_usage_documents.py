"""State documents: version 3 is written; version 2 (before capacities and person-hours) and
version 1 (before the O(1) fold) are still read."""

from __future__ import annotations

import json
from typing import Any

from domain.usage import STATE_VERSION, CenterUsage, RoomUsage, close_month, fold
from tests.test_usage import (
    CENTER,
    NOW,
    ROOM_A,
    ROOM_B,
    admitted,
    checkout,
    configured,
    kst,
    released,
)

# As version 1 wrote them: room-a (Seoul, 09:00-22:00 from Oct 20) has 3 people inside and
# one booking of 2 h on Nov 10; room-b (UTC, 10:00-20:00, 10:00-24:00 from Nov 21) has 4.
ROOM_A_V1: dict[str, Any] = {
    "version": 1,
    "scope": "room",
    "room_id": ROOM_A,
    "center_id": CENTER,
    "timezone": "Asia/Seoul",
    "periods": [["2026-10-20", 540, 1320]],
    "active": {
        "b1": {
            "member_id": "m1",
            "starts_at": "2026-11-10T10:00:00+09:00",
            "ends_at": "2026-11-10T12:00:00+09:00",
            "start_month": "2026-11",
            "seconds": {"2026-11": 7200},
        }
    },
    "ended": {},
    "months": {
        "2026-11": {
            "counts": {"bookings_confirmed": 1, "booked_seconds": 7200, "visits": 3},
            "peak_occupancy": 3,
            "members": ["m1"],
            "unique_members": 1,
            "open_minutes": None,
            "final": False,
            "revision": 0,
            "revised_after_close": False,
        }
    },
    "latest": "2026-11-09T10:00:00+09:00",
}
CENTER_V1: dict[str, Any] = {
    "version": 1,
    "scope": "center",
    "center_id": CENTER,
    "rooms": {
        ROOM_A: {"timezone": "Asia/Seoul", "periods": [["2026-10-20", 540, 1320]], "occupancy": 3},
        ROOM_B: {
            "timezone": "UTC",
            "periods": [["2026-10-01", 600, 1200], ["2026-11-21", 600, 1440]],
            "occupancy": 4,
        },
    },
    "months": {
        "2026-11": {
            "counts": {"bookings_confirmed": 1, "booked_seconds": 7200, "visits": 7},
            "peak_occupancy": 7,
            "members": ["m1"],
            "unique_members": 1,
            "open_minutes": None,
            "final": False,
            "revision": 0,
            "revised_after_close": False,
        }
    },
    "latest": "2026-11-09T10:00:00+09:00",
}
NOVEMBER_OPEN_HOURS_A = 30 * 13
NOVEMBER_OPEN_HOURS_B = 20 * 10 + 10 * 14


def test_version_1_documents_are_read_and_folded_on() -> None:
    room = RoomUsage.from_json(json.loads(json.dumps(ROOM_A_V1)))
    center = CenterUsage.from_json(json.loads(json.dumps(CENTER_V1)))
    assert room.aggregate("2026-11", NOW).open_hours == NOVEMBER_OPEN_HOURS_A
    november = center.aggregate("2026-11", NOW)
    assert november.open_hours == NOVEMBER_OPEN_HOURS_A + NOVEMBER_OPEN_HOURS_B
    assert november.booked_hours == 2.0

    # The center sums the occupancies it had: 5 in room-a + 4 in room-b.
    out = {m.key: m for m in fold(room, center, admitted(kst(11, 10, 10), 2, 5, "m2"), NOW)}
    assert out[f"room:{ROOM_A}:2026-11"].peak_occupancy == 5
    assert out[f"center:{CENTER}:2026-11"].peak_occupancy == 9
    assert out[f"center:{CENTER}:2026-11"].unique_members == 2
    assert out[f"center:{CENTER}:2026-11"].visits == 9
    # A reconfiguration changes the center's open hours by that room's difference only.
    out = {m.key: m for m in fold(room, center, configured(kst(11, 26, 8), closes="23:00"), NOW)}
    assert out[f"room:{ROOM_A}:2026-11"].open_hours == 25 * 13 + 5 * 14
    expected = 25 * 13 + 5 * 14 + NOVEMBER_OPEN_HOURS_B
    assert out[f"center:{CENTER}:2026-11"].open_hours == expected
    # Its booking (the version-1 ``active``) is still known: a release subtracts its hours.
    start, end = kst(11, 10, 10), kst(11, 10, 12)
    out = {m.key: m for m in fold(room, center, released("b1", "m1", start, end), NOW)}
    assert out[f"room:{ROOM_A}:2026-11"].booked_hours == 0.0
    assert out[f"center:{CENTER}:2026-11"].booked_hours == 0.0
    assert out[f"center:{CENTER}:2026-11"].no_shows == 1
    assert close_month(center, "2026-11", NOW)[0].open_hours == expected


def test_version_4_is_written_and_reads_back_the_same() -> None:
    center = CenterUsage.from_json(CENTER_V1)
    room = RoomUsage.from_json(ROOM_A_V1)
    fold(room, center, checkout(kst(11, 10, 11), 1, 2), NOW)
    fold(room, center, checkout(kst(11, 10, 12), 1, 1), NOW)
    document = center.to_json()
    assert document["version"] == STATE_VERSION == 4
    assert document["occupancy"] == {ROOM_A: 1, ROOM_B: 4}
    room_document = room.to_json()
    assert room_document["version"] == 4
    assert room_document["capacities"] == [["2026-10-20", 20]]  # learnt from the check-outs
    assert (room_document["occupancy"], room_document["occupied_since"]) == (
        1,
        kst(11, 10, 12).isoformat(),
    )
    again = CenterUsage.from_json(json.loads(json.dumps(document)))
    assert again.to_json() == document
    assert again.rooms == center.rooms
    assert again.aggregate("2026-11", NOW) == center.aggregate("2026-11", NOW)
    assert RoomUsage.from_json(room.to_json()).to_json() == room.to_json()
    assert RoomUsage.from_json(json.loads(json.dumps(room_document))).aggregate(
        "2026-11", NOW
    ) == room.aggregate("2026-11", NOW)


# As version 2 wrote them: the version-1 room layout, the center's rooms grouped.
ROOM_A_V2: dict[str, Any] = {**ROOM_A_V1, "version": 2}
CENTER_V2: dict[str, Any] = {
    "version": 2,
    "scope": "center",
    "center_id": CENTER,
    "rooms": [
        {"timezone": "Asia/Seoul", "periods": [["2026-10-20", 540, 1320]], "ids": [ROOM_A]},
        {
            "timezone": "UTC",
            "periods": [["2026-10-01", 600, 1200], ["2026-11-21", 600, 1440]],
            "ids": [ROOM_B],
        },
    ],
    "occupancy": {ROOM_A: 3, ROOM_B: 4},
    "months": CENTER_V1["months"],
    "latest": CENTER_V1["latest"],
}


def test_version_2_documents_are_read_and_learn_what_they_did_not_keep() -> None:
    """Version 2 kept no capacities and no room occupancy: the first door decision brings
    the capacity (in force from the room's first opening), the first admission or check-out
    starts the person-hours."""
    room = RoomUsage.from_json(json.loads(json.dumps(ROOM_A_V2)))
    center = CenterUsage.from_json(json.loads(json.dumps(CENTER_V2)))
    november = center.aggregate("2026-11", NOW)
    assert november.open_hours == NOVEMBER_OPEN_HOURS_A + NOVEMBER_OPEN_HOURS_B
    assert (november.capacity_hours, november.occupancy_utilization) == (0.0, 0.0)
    assert room.occupancy == 0 and room.occupied_since is None

    out = {m.key: m for m in fold(room, center, admitted(kst(11, 10, 10), 2, 5, "m2"), NOW)}
    room_november = out[f"room:{ROOM_A}:2026-11"]
    assert room_november.capacity_hours == 20 * NOVEMBER_OPEN_HOURS_A
    assert room_november.person_hours == 0.0  # nothing known of the time before
    assert out[f"center:{CENTER}:2026-11"].capacity_hours == 20 * NOVEMBER_OPEN_HOURS_A
    assert out[f"center:{CENTER}:2026-11"].peak_occupancy == 9  # 5 + room-b's 4

    out = {m.key: m for m in fold(room, center, checkout(kst(11, 10, 12), 5, 0), NOW)}
    assert out[f"room:{ROOM_A}:2026-11"].person_hours == 10.0  # 5 persons, 2 hours
    assert out[f"center:{CENTER}:2026-11"].person_hours == 10.0
    assert out[f"room:{ROOM_A}:2026-11"].occupancy_utilization == round(
        10 / (20 * NOVEMBER_OPEN_HOURS_A), 4
    )
    assert room.to_json()["version"] == center.to_json()["version"] == 4


def test_a_month_closed_under_version_2_keeps_its_figures() -> None:
    closed = json.loads(json.dumps(ROOM_A_V2))
    closed["months"]["2026-11"].update(final=True, open_minutes=NOVEMBER_OPEN_HOURS_A * 60)
    room = RoomUsage.from_json(closed)
    november = room.aggregate("2026-11", NOW)
    assert november.final and november.open_hours == NOVEMBER_OPEN_HOURS_A
    assert (november.capacity_hours, november.occupancy_utilization) == (0.0, 0.0)
    assert november.no_show_rate is None and november.peak_at is None


def test_a_month_from_version_2_has_no_no_show_rate_its_attendance_was_not_counted() -> None:
    room = RoomUsage.from_json(json.loads(json.dumps(ROOM_A_V2)))
    out = {
        m.key: m
        for m in fold(room, None, released("b1", "m1", kst(11, 10, 10), kst(11, 10, 12)), NOW)
    }
    november = out[f"room:{ROOM_A}:2026-11"]
    assert november.no_shows == 1 and november.no_show_rate is None  # not 100 %
    again = RoomUsage.from_json(json.loads(json.dumps(room.to_json())))  # written as version 3
    assert again.aggregate("2026-11", NOW).no_show_rate is None
    december = {
        m.key: m
        for m in fold(room, None, released("b9", "m9", kst(12, 3, 10), kst(12, 3, 12)), NOW)
    }
    assert december[f"room:{ROOM_A}:2026-12"].no_show_rate == 1.0  # a month counted from the start


def test_rooms_with_the_same_hours_share_one_entry_of_the_center_document() -> None:
    center = CenterUsage(CENTER)
    for index in range(300):
        room_id = f"room-{index:03d}"
        closes = "22:00" if index % 3 else "18:00"  # two kinds of rooms
        fold(RoomUsage(room_id), center, configured(kst(10, 1), room=room_id, closes=closes), NOW)
    document = center.to_json()
    assert len(document["rooms"]) == 2
    assert sorted(len(group["ids"]) for group in document["rooms"]) == [100, 200]
    assert document["occupancy"] == {}
    assert CenterUsage.from_json(document).aggregate("2026-11", NOW).open_hours == (
        100 * 30 * 9 + 200 * 30 * 13
    )


def test_a_center_document_follows_its_rooms_after_each_save() -> None:
    """The center keeps its rooms' grouping between saves: a room added or changed after
    a save is in the next document, as a center read from scratch writes it."""
    from tests.test_usage_occupancy import capacity_changed

    center = CenterUsage(CENTER)
    rooms = {room_id: RoomUsage(room_id) for room_id in (ROOM_A, ROOM_B)}
    fold(rooms[ROOM_A], center, configured(kst(10, 1), room=ROOM_A), NOW)
    saved = center.to_json()
    # A room the center learns from a check-in (its configuration was folded without it).
    fold(rooms[ROOM_B], None, configured(kst(10, 1), room=ROOM_B), NOW)
    fold(rooms[ROOM_B], center, admitted(kst(10, 2, 10), 1, 1, "m2", room=ROOM_B), NOW)
    document = center.to_json()
    assert [group["ids"] for group in document["rooms"]] == [[ROOM_A, ROOM_B]]
    assert document != saved
    fold(rooms[ROOM_B], center, capacity_changed(kst(10, 5, 12), 7, room=ROOM_B), NOW)
    document = center.to_json()  # a room's rules changed: two groups now
    assert [(group["ids"], group["capacities"]) for group in document["rooms"]] == [
        ([ROOM_A], [["2026-10-01", 20]]),
        ([ROOM_B], [["2026-10-01", 20], ["2026-10-05", 7]]),
    ]
    fold(rooms[ROOM_A], center, admitted(kst(10, 6, 10), 2, 2, "m1", room=ROOM_A), NOW)
    document = center.to_json()
    assert document["occupancy"] == {ROOM_A: 2, ROOM_B: 1}
    assert document == CenterUsage.from_json(json.loads(json.dumps(document))).to_json()


def test_a_months_members_are_written_sorted_however_they_came() -> None:
    """The sorted members a save wrote are kept and added to: the next save lists the new
    ones in order too, and a set changed directly is sorted again."""
    room = RoomUsage.from_json(json.loads(json.dumps(ROOM_A_V1)))
    members = ["m9", "m3", "m1", "m7", "m3", "m0"]
    for hour, member in enumerate(members):
        fold(room, None, admitted(kst(11, 10, 10 + hour), 1, 1, member), NOW)
        written = room.to_json()["months"]["2026-11"]["members"]
        assert written == sorted({"m1", *members[: hour + 1]})
    november = room.months["2026-11"]
    assert november.members is not None
    november.members.add("m5")
    assert room.to_json()["months"]["2026-11"]["members"] == ["m0", "m1", "m3", "m5", "m7", "m9"]
    assert november.unique_members == 5  # ``add_member`` counts; a direct change does not
