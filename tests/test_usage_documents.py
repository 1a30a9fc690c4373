"""State documents: version 2 is written, version 1 (before the O(1) fold) is still read."""

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


def test_version_2_is_written_and_reads_back_the_same() -> None:
    center = CenterUsage.from_json(CENTER_V1)
    room = RoomUsage.from_json(ROOM_A_V1)
    fold(room, center, checkout(kst(11, 10, 11), 1, 2), NOW)
    document = center.to_json()
    assert document["version"] == STATE_VERSION == 2
    assert document["occupancy"] == {ROOM_A: 2, ROOM_B: 4}
    assert room.to_json()["version"] == 2
    again = CenterUsage.from_json(json.loads(json.dumps(document)))
    assert again.to_json() == document
    assert again.rooms == center.rooms
    assert again.aggregate("2026-11", NOW) == center.aggregate("2026-11", NOW)
    assert RoomUsage.from_json(room.to_json()).to_json() == room.to_json()


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
