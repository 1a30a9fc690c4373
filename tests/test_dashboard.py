"""The dashboard's API over its in-memory read model (``infra.dashboard_model``) filled with
the demo's messages, and the database read models (``infra.read_models``, which ``spaces
report`` uses) on SQLite and PostgreSQL.

``fill_demo`` and ``demo_values`` are shared with ``test_report``, ``test_cli`` and the
Kafka-fed dashboard's integration and browser tests.
"""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from entrypoints.dashboard import FIELDS, coalesce, create_app, current_month, usage_csv
from infra.dashboard_model import DashboardModel, aggregate
from infra.db import Database, OutboxRow, RoomRow, UsageMonthlyRow
from infra.read_models import (
    RoomInfo,
    add_months,
    center_exists,
    center_history,
    center_rooms,
    list_centers,
    month_range,
    month_usage,
    normalise_aggregate,
    read_engine,
)
from infra.settings import Settings
from schemas.outputs import Occupancy, UsageMonthly, usage_key

MONTH = "2026-11"
FIRST_MONTH = "2026-01"
"""Seosan opened in January 2026: the chart's first month (2025-12) has no figures."""

ROOMS = [
    # room_id, center, name, capacity, occupancy
    ("seosan-club-1", "seosan", "동아리실 1", 15, 6),
    ("seosan-club-2", "seosan", "동아리실 2", 15, 14),
    ("seosan-office", "seosan", "공유오피스", 30, 11),
    ("seosan-cafe", "seosan", "북카페", 40, 0),
    ("haemi-hall", "haemi", "해미 다목적실", 60, 25),
]
NO_DATA_ROOM = "seosan-cafe"
"""Opened in November but nothing stored for it yet: shown with zeros."""
REVISED_MONTH = "2026-09"
AS_OF = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
SEASON = (0.7, 0.75, 1.0, 1.1, 1.2, 1.05, 1.45, 1.6, 1.1, 1.15, 1.0, 0.8)
"""Busy summer holidays, quiet winters."""


def month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7])


WALK_IN_ROOM = "seosan-club-2"
"""No booking of it reached its start (none attended, none released): no no-show rate."""


def room_figures(room_index: int, month: str) -> dict[str, Any]:
    """Deterministic, distinct figures for one room and month."""
    k = month_index(month) - month_index(FIRST_MONTH) + 1
    r = room_index + 1
    season = SEASON[int(month[5:7]) - 1]
    booked = round((10.5 * r + 3.25 * k) * season, 4)
    open_hours = 13.0 * 30
    capacity_hours = ROOMS[room_index][3] * open_hours
    person_hours = round((41.5 * r + 6.75 * k) * season, 4)
    walk_in = ROOMS[room_index][0] == WALK_IN_ROOM
    no_shows = 0 if walk_in else (r + k) % 2
    attended = 0 if walk_in else 3 * r + k % 4
    peak_day, peak_hour = 1 + (r + k) % 28, 10 + (r * k) % 10
    return {
        "bookings_confirmed": round((4 * r + k) * season),
        "bookings_rejected": r,
        "bookings_cancelled": k % 3,
        "no_shows": no_shows,
        "booked_hours": booked,
        "open_hours": open_hours,
        "utilization": round(booked / open_hours, 4),
        "visits": round((37 * r + 11 * k) * season),
        "checkins_denied": (r * k) % 4,
        "unique_members": 9 * r + k,
        "peak_occupancy": min(15, 3 + r + k % 5),
        "person_hours": person_hours,
        "capacity_hours": capacity_hours,
        "occupancy_utilization": round(person_hours / capacity_hours, 4),
        "bookings_attended": attended,
        "no_show_rate": None if walk_in else round(no_shows / (no_shows + attended), 4),
        "peak_at": f"{month}-{peak_day:02d}T{peak_hour:02d}:{5 * r:02d}:00+09:00",
        "peak_hour": peak_hour,
    }


SUMMED = (
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_hours",
    "open_hours",
    "visits",
    "checkins_denied",
    "unique_members",
    "peak_occupancy",
    "person_hours",
    "capacity_hours",
    "bookings_attended",
)


def message(scope: str, ident: str, month: str, figures: dict[str, Any]) -> dict[str, Any]:
    final = month < MONTH
    revised = month == REVISED_MONTH
    value = UsageMonthly(
        scope=scope,
        id=ident,
        month=month,
        final=final,
        updated_at=datetime(2026, 11, 20, tzinfo=UTC),
        revision=1 if revised else 0,
        revised_after_close=revised,
        **figures,
    )
    return value.model_dump(mode="json")


def demo_values() -> dict[str, dict[str, Any]]:
    """Every ``usage-monthly`` value of the demo, by key."""
    values: dict[str, dict[str, Any]] = {}
    months = [m for m in month_range(MONTH, 12) if m >= FIRST_MONTH]
    for center in ("seosan", "haemi"):
        rooms = [(i, r) for i, r in enumerate(ROOMS) if r[1] == center]
        for month in months:
            total: dict[str, Any] = {}
            for i, room in rooms:
                if room[0] == NO_DATA_ROOM:
                    continue
                figures = room_figures(i, month)
                values[usage_key("room", room[0], month)] = message("room", room[0], month, figures)
                for name in SUMMED:
                    total[name] = total.get(name, 0) + figures[name]
                total.setdefault("peak_at", figures["peak_at"])
                total.setdefault("peak_hour", figures["peak_hour"])
            for name in ("booked_hours", "person_hours"):
                total[name] = round(total[name], 4)
            total["utilization"] = round(total["booked_hours"] / total["open_hours"], 4)
            total["occupancy_utilization"] = round(
                total["person_hours"] / total["capacity_hours"], 4
            )
            reached = total["no_shows"] + total["bookings_attended"]
            total["no_show_rate"] = round(total["no_shows"] / reached, 4) if reached else None
            total["unique_members"] -= 3  # members who used two rooms count once
            total["peak_occupancy"] += 2
            values[usage_key("center", center, month)] = message("center", center, month, total)
    return values


async def fill_demo(settings: Settings) -> dict[str, dict[str, Any]]:
    """Create the schema and store the demo's rooms, usage values and outbox rows."""
    db = Database(settings)
    await db.migrate()
    values = demo_values()
    async with db.session() as session, session.begin():
        for room_id, center, name, capacity, occupancy in ROOMS:
            state = {
                "room_id": room_id,
                "center_id": center,
                "name": name,
                "capacity": capacity,
                "booking_mode": "exclusive" if "club" in room_id else "shared",
                "opens": "09:00",
                "closes": "22:00",
                "timezone": "Asia/Seoul",
                "occupancy": occupancy,
                "bookings": [],
                "sessions": [],
                "last_closing": None,
            }
            session.add(
                RoomRow(
                    room_id=room_id,
                    center_id=center,
                    state=state,
                    occupancy=occupancy,
                    capacity=capacity,
                    decisions=10,
                    updated_at=AS_OF,
                )
            )
        for key, value in values.items():
            session.add(
                UsageMonthlyRow(
                    key=key,
                    scope=value["scope"],
                    ident=value["id"],
                    month=value["month"],
                    value=value,
                    final=value["final"],
                    updated_at=AS_OF,
                )
            )
        for published in (False, False, True):
            session.add(
                OutboxRow(
                    topic="occupancy", key="x", value="{}", created_at=AS_OF, published=published
                )
            )
    await db.dispose()
    return values


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
async def demo(tmp_path: Path) -> tuple[Settings, dict[str, dict[str, Any]]]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    return settings, await fill_demo(settings)


def demo_model(values: dict[str, dict[str, Any]]) -> DashboardModel:
    """The read model after reading the demo's ``usage-monthly`` and ``occupancy`` topics."""
    model = DashboardModel(timezone="Asia/Seoul")
    for value in values.values():
        model.apply_usage(UsageMonthly.model_validate(value))
    for room_id, center, name, capacity, occupied in ROOMS:
        model.apply_occupancy(
            Occupancy(
                room_id=room_id,
                center_id=center,
                occupancy=occupied,
                capacity=capacity,
                as_of=AS_OF,
                room_name=name,
                center_name="서산시민센터" if center == "seosan" else None,
            )
        )
    return model


@pytest.fixture
async def client(
    demo: tuple[Settings, dict[str, dict[str, Any]]],
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(demo_model(demo[1]), demo[0])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as c:
        yield c


# --- a free port, for the dashboard processes of the integration and browser tests -----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- pure helpers ---------------------------------------------------------------------


def test_month_arithmetic() -> None:
    assert add_months("2026-01", -1) == "2025-12"
    assert add_months("2026-11", 2) == "2027-01"
    assert month_range("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]
    assert current_month("Asia/Seoul", datetime(2026, 11, 30, 15, 30, tzinfo=UTC)) == "2026-12"
    assert current_month("UTC", datetime(2026, 11, 30, 15, 30, tzinfo=UTC)) == "2026-11"


def test_normalise_fills_missing_fields() -> None:
    value = normalise_aggregate("room", "r1", MONTH, {"visits": 3, "final": True})
    assert value["visits"] == 3 and value["booked_hours"] == 0.0 and value["final"] is True
    assert value["has_data"] is True and value["revised_after_close"] is False
    assert normalise_aggregate("room", "r1", MONTH, None)["has_data"] is False
    # a value stored before the occupancy figures existed: zeros, and no rate or peak time
    assert (value["occupancy_utilization"], value["person_hours"], value["capacity_hours"]) == (
        0.0,
        0.0,
        0.0,
    )
    assert (value["no_show_rate"], value["peak_at"], value["peak_hour"]) == (None, None, None)
    assert value["bookings_attended"] == 0


def test_normalise_keeps_the_occupancy_figures() -> None:
    stored = {
        "occupancy_utilization": 0.0421,
        "person_hours": 491.25,
        "capacity_hours": 11_700.0,
        "bookings_attended": 7,
        "no_show_rate": 0.125,
        "peak_at": "2026-11-28T14:03:00+09:00",
        "peak_hour": 14,
    }
    value = normalise_aggregate("room", "r1", MONTH, stored)
    assert {k: value[k] for k in stored} == stored  # type: ignore[literal-required]


# --- read models, on each backend -----------------------------------------------------


@pytest.fixture
async def read_session(database_url: str) -> AsyncIterator[tuple[AsyncSession, list[str]]]:
    """A read-only session on the demo, and the result columns of every query it runs."""
    settings = Settings(database_url=database_url)
    await fill_demo(settings)
    engine = read_engine(settings)
    columns: list[str] = []

    def record(_conn: Any, cursor: Any, *_args: Any) -> None:
        columns.extend(d[0] for d in cursor.description or ())

    event.listen(engine.sync_engine, "after_cursor_execute", record)
    async with AsyncSession(engine) as session:
        yield session, columns
    await engine.dispose()


async def test_read_models(read_session: tuple[AsyncSession, list[str]]) -> None:
    s, columns = read_session
    values = demo_values()
    assert await list_centers(s) == [
        {"center_id": "haemi", "rooms": 1},
        {"center_id": "seosan", "rooms": 4},
    ]
    assert await center_exists(s, "seosan") and not await center_exists(s, "nowhere")
    assert await center_rooms(s, "seosan") == [
        RoomInfo("seosan-cafe", "북카페", 40),
        RoomInfo("seosan-club-1", "동아리실 1", 15),
        RoomInfo("seosan-club-2", "동아리실 2", 15),
        RoomInfo("seosan-office", "공유오피스", 30),
    ]

    usage = await month_usage(s, "seosan", MONTH, chart_months=3)
    assert [(r["room_id"], r["name"], r["has_data"]) for r in usage["rooms"]] == [
        ("seosan-cafe", "북카페", False),
        ("seosan-club-1", "동아리실 1", True),
        ("seosan-club-2", "동아리실 2", True),
        ("seosan-office", "공유오피스", True),
    ]
    assert usage["center"]["visits"] == values[f"center:seosan:{MONTH}"]["visits"]
    assert [m["month"] for m in usage["months"]] == month_range(MONTH, 3)

    history = await center_history(s, "haemi", "2026-03")
    assert [(m["month"], m["final"]) for m in history] == [
        ("2026-01", True),
        ("2026-02", True),
        ("2026-03", True),
    ]
    assert history[1]["visits"] == values["center:haemi:2026-02"]["visits"]

    # Names come from a JSON path: no query ever fetches a room's whole state document.
    assert "name" in columns and "state" not in columns


async def test_room_without_a_name_is_shown_by_its_id(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    db = Database(settings)
    await db.migrate()
    states: list[Any] = [{"name": "강당"}, {"name": ""}, {"capacity": 9}, []]
    async with db.session() as session, session.begin():
        for n, state in enumerate(states):
            session.add(
                RoomRow(
                    room_id=f"r{n}",
                    center_id="c",
                    state=state,
                    occupancy=-1 if n == 0 else n,
                    capacity=9,
                    updated_at=AS_OF,
                )
            )
    await db.dispose()
    engine = read_engine(settings)
    async with AsyncSession(engine) as s:
        assert [r.name for r in await center_rooms(s, "c")] == ["강당", "r1", "r2", "r3"]
    await engine.dispose()


# --- API ------------------------------------------------------------------------------


async def test_centers_with_room_counts(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/centers")
    assert response.status_code == 200
    assert response.json()["centers"] == [
        {"center_id": "haemi", "name": "haemi", "rooms": 1},  # no name given: its id
        {"center_id": "seosan", "name": "서산시민센터", "rooms": 4},
    ]


async def test_usage_figures(
    client: httpx.AsyncClient, demo: tuple[Settings, dict[str, dict[str, Any]]]
) -> None:
    values = demo[1]
    response = await client.get("/api/usage", params={"center": "seosan", "month": MONTH})
    assert response.status_code == 200
    body = response.json()
    assert body["month"] == MONTH and body["center_id"] == "seosan"

    stored = values[f"center:seosan:{MONTH}"]
    center = body["center"]
    for field in FIELDS:
        assert center[field] == stored[field], field
    assert center["has_data"] is True and center["final"] is False

    rooms = {r["room_id"]: r for r in body["rooms"]}
    assert list(rooms) == sorted(r[0] for r in ROOMS if r[1] == "seosan")
    for room_id, room in rooms.items():  # every room's figures, the new ones included
        if room["has_data"]:
            stored_room = values[f"room:{room_id}:{MONTH}"]
            for field in FIELDS:
                assert room[field] == stored_room[field], (room_id, field)
    office = rooms["seosan-office"]
    assert office["occupancy_utilization"] > 0 and office["no_show_rate"] is not None
    assert office["peak_hour"] == int(office["peak_at"][11:13])
    assert rooms[WALK_IN_ROOM]["no_show_rate"] is None
    club = rooms["seosan-club-2"]
    assert club["name"] == "동아리실 2" and club["capacity"] == 15
    assert club["visits"] == values[f"room:seosan-club-2:{MONTH}"]["visits"]
    assert club["booked_hours"] == values[f"room:seosan-club-2:{MONTH}"]["booked_hours"]
    cafe = rooms[NO_DATA_ROOM]
    assert cafe["has_data"] is False and cafe["visits"] == 0 and cafe["name"] == "북카페"

    months = body["months"]
    assert [m["month"] for m in months] == month_range(MONTH, 12)
    assert months[0]["month"] == "2025-12" and months[0]["visits"] == 0
    assert months[0]["has_data"] is False
    for m in months[1:]:
        assert m["visits"] == values[f"center:seosan:{m['month']}"]["visits"]
        assert m["utilization"] == values[f"center:seosan:{m['month']}"]["utilization"]
    assert all(m["final"] for m in months[1:-1])


async def test_revised_month_is_flagged(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"/api/usage?center=seosan&month={REVISED_MONTH}")).json()
    assert body["center"]["final"] is True
    assert body["center"]["revised_after_close"] is True and body["center"]["revision"] == 1
    assert all(r["revised_after_close"] for r in body["rooms"] if r["has_data"])


async def test_month_defaults_to_the_current_local_month(
    client: httpx.AsyncClient, demo: tuple[Settings, dict[str, dict[str, Any]]]
) -> None:
    body = (await client.get("/api/usage?center=seosan")).json()
    assert body["month"] == current_month(demo[0].timezone)
    assert body["timezone"] == "Asia/Seoul"


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "november", "2026-11-01"])
async def test_bad_month_is_400(client: httpx.AsyncClient, month: str) -> None:
    for path in ("/api/usage", "/api/usage.csv"):
        response = await client.get(path, params={"center": "seosan", "month": month})
        assert response.status_code == 400
        assert "YYYY-MM" in response.json()["error"]


async def test_unknown_center_is_400(client: httpx.AsyncClient) -> None:
    for path in ("/api/usage", "/api/usage.csv", "/api/occupancy"):
        response = await client.get(path, params={"center": "nowhere", "month": MONTH})
        assert response.status_code == 400, path
        assert response.json() == {"error": "unknown center 'nowhere'"}


async def test_csv_export(
    client: httpx.AsyncClient, demo: tuple[Settings, dict[str, dict[str, Any]]]
) -> None:
    values = demo[1]
    response = await client.get("/api/usage.csv", params={"center": "seosan", "month": MONTH})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="usage-seosan-{MONTH}.csv"'
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = response.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header == [*FIELDS, "name"]
    assert [r["id"] for r in rows] == [
        "seosan-cafe",
        "seosan-club-1",
        "seosan-club-2",
        "seosan-office",
        "seosan",
    ]
    assert rows[-1]["scope"] == "center" and rows[-1]["name"] == "total"
    total = values[f"center:seosan:{MONTH}"]
    assert int(rows[-1]["visits"]) == total["visits"]
    assert float(rows[-1]["booked_hours"]) == total["booked_hours"]
    assert float(rows[-1]["occupancy_utilization"]) == total["occupancy_utilization"]
    assert float(rows[-1]["no_show_rate"]) == total["no_show_rate"]
    assert rows[-1]["final"] == "false"
    office = values[f"room:seosan-office:{MONTH}"]
    assert int(rows[3]["bookings_confirmed"]) == office["bookings_confirmed"]
    assert float(rows[3]["occupancy_utilization"]) == office["occupancy_utilization"]
    assert float(rows[3]["no_show_rate"]) == office["no_show_rate"]
    assert rows[3]["peak_at"] == office["peak_at"]
    assert int(rows[3]["peak_hour"]) == office["peak_hour"]
    assert rows[3]["name"] == "공유오피스"
    assert rows[2]["no_show_rate"] == ""  # the walk-in room: no booking reached its start
    assert rows[0]["visits"] == "0" and rows[0]["updated_at"] == ""
    assert rows[0]["no_show_rate"] == "" and rows[0]["peak_at"] == ""


def test_usage_csv_is_pure() -> None:
    room = normalise_aggregate("room", "r1", MONTH, {"visits": 2, "final": True})
    room["name"] = '방, "따옴표"'
    text = usage_csv({"rooms": [room], "center": normalise_aggregate("center", "c", MONTH, None)})
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][FIELDS.index("visits")] == "2" and rows[1][-1] == '방, "따옴표"'
    assert rows[1][FIELDS.index("final")] == "true"
    assert rows[2][:3] == ["center", "c", MONTH]


async def test_occupancy(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/occupancy")).json()["rooms"]
    assert len(everything) == len(ROOMS)
    seosan = (await client.get("/api/occupancy?center=seosan")).json()["rooms"]
    by_id = {r["room_id"]: r for r in seosan}
    assert set(by_id) == {r[0] for r in ROOMS if r[1] == "seosan"}
    assert by_id["seosan-club-2"] == {
        "room_id": "seosan-club-2",
        "center_id": "seosan",
        "name": "동아리실 2",
        "occupancy": 14,
        "capacity": 15,
        "as_of": "2026-11-21T10:30:00+09:00",
    }


def test_model_pushes_changes_to_listeners() -> None:
    model = demo_model(demo_values())
    queue = model.listen(maxsize=3)
    room = model.rooms["seosan-club-1"].model_copy(update={"occupancy": 9})
    model.apply_occupancy(room)
    name, data = queue.get_nowait()
    assert name == "occupancy" and data["occupancy"] == 9 and data["version"] == model.version
    usage = UsageMonthly.model_validate(demo_values()[f"center:seosan:{MONTH}"])
    model.apply_usage(usage)
    assert queue.get_nowait() == ("update", {"version": model.version})
    for _ in range(5):  # a page that does not read: its queue collapses to one update
        model.apply_occupancy(room)
    pending = [queue.get_nowait() for _ in range(queue.qsize())]
    assert pending[0] == ("update", {"version": model.version - 1})
    model.forget(queue)
    model.apply_usage(usage)
    assert not model.listeners


def test_a_burst_of_changes_is_coalesced() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("occupancy", {"room_id": "a", "occupancy": 1}),
        ("update", {"version": 2}),
        ("occupancy", {"room_id": "b", "occupancy": 5}),
        ("occupancy", {"room_id": "a", "occupancy": 3}),
        ("update", {"version": 5}),
    ]
    assert coalesce(events) == [
        ("occupancy", {"room_id": "a", "occupancy": 3}),
        ("occupancy", {"room_id": "b", "occupancy": 5}),
        ("update", {"version": 5}),
    ]


def test_heatmap_passes_through_and_csv_keeps_it_as_json() -> None:
    grid = [[float(h) for h in range(24)] for _ in range(7)]
    value = aggregate("room", "r1", MONTH, {"visits": 1, "occupancy_by_weekday_hour": grid})
    assert value["occupancy_by_weekday_hour"] == grid
    assert aggregate("room", "r1", MONTH, None)["occupancy_by_weekday_hour"] is None
    value["name"] = "r1"
    text = usage_csv({"rooms": [value], "center": aggregate("center", "c", MONTH, None)})
    if "occupancy_by_weekday_hour" in FIELDS:  # the contract field (H2) is a CSV column
        row = next(csv.DictReader(io.StringIO(text)))
        assert json.loads(row["occupancy_by_weekday_hour"]) == grid


async def test_page_and_static_files(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for marker in ('id="rooms-table"', 'id="occupancy"', 'id="csv-link"', 'id="chart"'):
        assert marker in page.text
    for header in ("Occupancy util.", "No-show rate", "Peak at"):
        assert header in page.text
    for name in ("app.js", "style.css"):
        assert (await client.get(f"/static/{name}")).status_code == 200
    script = (await client.get("/static/app.js")).text
    assert "EventSource" in script
    for field in ("occupancy_utilization", "no_show_rate", "peak_at"):
        assert f'"{field}"' in script, field


async def test_heatmap_report_page_and_fonts(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    for marker in ('id="heatmap"', 'id="heatmap-scope"', 'id="report-link"', "heatmap.js"):
        assert marker in page, marker
    script = (await client.get("/static/app.js")).text
    assert "center_name" in script and 'addEventListener("occupancy"' in script
    report = await client.get("/report")
    assert report.status_code == 200 and "text/html" in report.headers["content-type"]
    for marker in ('id="report-rooms"', 'id="report-heatmap"', 'id="report-months"', "report.js"):
        assert marker in report.text, marker
    for name in ("report.js", "report.css", "heatmap.js"):
        assert (await client.get(f"/static/{name}")).status_code == 200, name
    assert "@page" in (await client.get("/static/report.css")).text
    style = (await client.get("/static/style.css")).text
    for font in ("Noto Sans CJK KR", "Malgun Gothic", "Apple SD Gothic Neo", "NanumGothic"):
        assert f'"{font}"' in style, font
    # Only the static folder's own files are served.
    for bad in ("/static/..%2Fdashboard.py", "/static/missing.js"):
        assert (await client.get(bad)).status_code in (400, 404), bad
