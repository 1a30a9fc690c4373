"""The staff dashboard: a small FastAPI app that only READS the database.

The room authority keeps ``rooms`` up to date and the statistics consumer keeps
``usage_monthly`` up to date; this module turns those rows into JSON for the page in
``entrypoints/static/``, a CSV export, Prometheus metrics and a server-sent event stream
that tells the page when to refetch (``GET /api/events``).

The query helpers at the top (``month_usage``, ``list_centers``...) take an
``AsyncSession`` and are shared with ``entrypoints.report``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.responses import StreamingResponse

from infra.db import OutboxRow, RoomRow, UsageMonthlyRow, make_engine
from infra.settings import Settings
from schemas.outputs import UsageMonthly, usage_key

STATIC = Path(__file__).parent / "static"

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

FIELDS: tuple[str, ...] = tuple(UsageMonthly.model_fields)
"""The ``usage-monthly`` value's fields, in contract order (additions last)."""

COUNT_FIELDS = (
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "visits",
    "checkins_denied",
    "unique_members",
    "peak_occupancy",
    "revision",
)
FLOAT_FIELDS = ("booked_hours", "open_hours", "utilization")

CHART_MONTHS = 12


class BadRequest(Exception):
    """A request the client can fix: answered with 400 and ``{"error": message}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- pure helpers ---------------------------------------------------------------------


def check_month(month: str) -> str:
    if not MONTH_RE.match(month):
        raise BadRequest(f"month must be YYYY-MM (e.g. 2026-11), got {month!r}")
    return month


def add_months(month: str, n: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(last: str, count: int) -> list[str]:
    """``count`` months ending with ``last``, oldest first."""
    return [add_months(last, n) for n in range(-(count - 1), 1)]


def current_month(timezone: str, now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def local_iso(moment: datetime | None, timezone: str) -> str | None:
    """RFC 3339 in ``timezone``; SQLite hands back naive UTC times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).isoformat()


def empty_aggregate(scope: str, ident: str, month: str) -> dict[str, Any]:
    """What a month without any ``usage-monthly`` value looks like: zeros, not final."""
    value: dict[str, Any] = {"scope": scope, "id": ident, "month": month}
    value.update(dict.fromkeys(COUNT_FIELDS, 0))
    value.update(dict.fromkeys(FLOAT_FIELDS, 0.0))
    value.update(final=False, updated_at=None, revised_after_close=False, has_data=False)
    return value


def normalise_aggregate(
    scope: str, ident: str, month: str, value: dict[str, Any] | None, final: bool = False
) -> dict[str, Any]:
    """A stored value with every contract field present (missing ones zero) and ``has_data``."""
    result = empty_aggregate(scope, ident, month)
    if value is None:
        return result
    for name in COUNT_FIELDS:
        result[name] = int(value.get(name) or 0)
    for name in FLOAT_FIELDS:
        result[name] = float(value.get(name) or 0.0)
    result["final"] = bool(value.get("final", final)) or final
    result["updated_at"] = value.get("updated_at")
    result["revised_after_close"] = bool(value.get("revised_after_close", False))
    result["has_data"] = True
    return result


def room_name(row: RoomRow) -> str:
    name = row.state.get("name") if isinstance(row.state, dict) else None
    return str(name) if name else row.room_id


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def usage_csv(usage: dict[str, Any]) -> str:
    """One row per room and a total row (the center aggregate); contract columns, then name."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*FIELDS, "name"])
    for room in usage["rooms"]:
        writer.writerow([csv_cell(room.get(f)) for f in FIELDS] + [room["name"]])
    total = usage["center"]
    writer.writerow([csv_cell(total.get(f)) for f in FIELDS] + ["total"])
    return out.getvalue()


def version_of(parts: Iterable[Any]) -> str:
    text = "|".join("" if p is None else str(p) for p in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def sse(event_name: str, data: dict[str, Any]) -> str:
    return f"event: {event_name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# --- queries (shared with the report) -------------------------------------------------


async def list_centers(session: AsyncSession) -> list[dict[str, Any]]:
    """Every center the rooms or the usage figures know, with its room count."""
    counts: dict[str, int] = {}
    rows = await session.execute(
        select(RoomRow.center_id, func.count(RoomRow.room_id)).group_by(RoomRow.center_id)
    )
    for center_id, count in rows:
        counts[center_id] = int(count)
    idents = await session.scalars(
        select(UsageMonthlyRow.ident).where(UsageMonthlyRow.scope == "center").distinct()
    )
    for ident in idents:
        counts.setdefault(ident, 0)
    return [{"center_id": c, "rooms": counts[c]} for c in sorted(counts)]


async def center_exists(session: AsyncSession, center: str) -> bool:
    found = await session.scalar(select(RoomRow.room_id).where(RoomRow.center_id == center))
    if found is not None:
        return True
    found = await session.scalar(
        select(UsageMonthlyRow.key).where(
            UsageMonthlyRow.scope == "center", UsageMonthlyRow.ident == center
        )
    )
    return found is not None


async def center_rooms(session: AsyncSession, center: str) -> list[RoomRow]:
    rows = await session.scalars(
        select(RoomRow).where(RoomRow.center_id == center).order_by(RoomRow.room_id)
    )
    return list(rows)


async def usage_values(
    session: AsyncSession, keys: Sequence[str]
) -> dict[str, tuple[dict[str, Any], bool]]:
    found: dict[str, tuple[dict[str, Any], bool]] = {}
    for start in range(0, len(keys), 500):
        rows = await session.execute(
            select(UsageMonthlyRow.key, UsageMonthlyRow.value, UsageMonthlyRow.final).where(
                UsageMonthlyRow.key.in_(keys[start : start + 500])
            )
        )
        for key, value, final in rows:
            found[key] = (value, bool(final))
    return found


async def month_usage(
    session: AsyncSession, center: str, month: str, chart_months: int = CHART_MONTHS
) -> dict[str, Any]:
    """The center's aggregate, its rooms' aggregates and the last months for the chart."""
    rooms = await center_rooms(session, center)
    months = month_range(month, chart_months)
    keys = [usage_key("room", r.room_id, month) for r in rooms]
    keys += [usage_key("center", center, m) for m in months]
    values = await usage_values(session, keys)

    def aggregate(scope: str, ident: str, m: str) -> dict[str, Any]:
        stored = values.get(usage_key(scope, ident, m))
        if stored is None:
            return empty_aggregate(scope, ident, m)
        return normalise_aggregate(scope, ident, m, stored[0], stored[1])

    room_list = []
    for row in rooms:
        item = aggregate("room", row.room_id, month)
        item.update(room_id=row.room_id, name=room_name(row), capacity=row.capacity)
        room_list.append(item)
    return {
        "center_id": center,
        "month": month,
        "center": aggregate("center", center, month),
        "rooms": room_list,
        "months": [aggregate("center", center, m) for m in months],
    }


async def center_history(session: AsyncSession, center: str, upto: str) -> list[dict[str, Any]]:
    """Every stored center aggregate up to and including ``upto``, oldest first."""
    rows = await session.execute(
        select(UsageMonthlyRow.month, UsageMonthlyRow.value, UsageMonthlyRow.final)
        .where(
            UsageMonthlyRow.scope == "center",
            UsageMonthlyRow.ident == center,
            UsageMonthlyRow.month <= upto,
        )
        .order_by(UsageMonthlyRow.month)
    )
    return [normalise_aggregate("center", center, m, v, bool(f)) for m, v, f in rows]


async def occupancy(
    session: AsyncSession, center: str | None, timezone: str
) -> list[dict[str, Any]]:
    query = select(RoomRow).order_by(RoomRow.center_id, RoomRow.room_id)
    if center is not None:
        query = query.where(RoomRow.center_id == center)
    return [
        {
            "room_id": row.room_id,
            "center_id": row.center_id,
            "name": room_name(row),
            "occupancy": max(0, row.occupancy),
            "capacity": row.capacity,
            "as_of": local_iso(row.updated_at, timezone),
        }
        for row in await session.scalars(query)
    ]


async def data_version(session: AsyncSession) -> str:
    """Changes whenever a room or a usage aggregate is written (or one disappears)."""
    rooms = (
        await session.execute(select(func.max(RoomRow.updated_at), func.count(RoomRow.room_id)))
    ).one()
    usage = (
        await session.execute(
            select(func.max(UsageMonthlyRow.updated_at), func.count(UsageMonthlyRow.key))
        )
    ).one()
    return version_of([*rooms, *usage])


# --- the database, read-only ----------------------------------------------------------


def read_engine(settings: Settings) -> AsyncEngine:
    """Reads never take SQLite's write lock: a polling page must not slow the consumers."""
    return make_engine(settings, read_only=True)


# --- the app --------------------------------------------------------------------------


def create_app(settings: Settings, *, poll_interval: float = 1.0) -> FastAPI:
    """The dashboard app; ``poll_interval`` is how often ``/api/events`` looks for changes."""
    engine = read_engine(settings)
    tz = settings.timezone

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="community-spaces dashboard", lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings

    @asynccontextmanager
    async def session() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(engine, expire_on_commit=False) as s:
            yield s

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=400)

    async def checked_center(s: AsyncSession, center: str) -> str:
        if not await center_exists(s, center):
            raise BadRequest(f"unknown center {center!r}")
        return center

    async def usage_for(center: str, month: str | None) -> dict[str, Any]:
        month = check_month(month) if month is not None else current_month(tz)
        async with session() as s:
            await checked_center(s, center)
            result = await month_usage(s, center, month)
        result["timezone"] = tz
        return result

    @app.get("/api/centers")
    async def centers() -> dict[str, Any]:
        async with session() as s:
            return {"centers": await list_centers(s), "current_month": current_month(tz)}

    @app.get("/api/usage")
    async def usage(center: str = Query(...), month: str | None = None) -> dict[str, Any]:
        return await usage_for(center, month)

    @app.get("/api/usage.csv")
    async def usage_export(center: str = Query(...), month: str | None = None) -> Response:
        result = await usage_for(center, month)
        # The BOM lets spreadsheet programs on Korean Windows read UTF-8 room names.
        body = "\ufeff" + usage_csv(result)
        filename = f"usage-{center}-{result['month']}.csv"
        return Response(
            body.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/api/occupancy")
    async def occupancy_now(center: str | None = None) -> dict[str, Any]:
        async with session() as s:
            if center is not None:
                await checked_center(s, center)
            rooms = await occupancy(s, center, tz)
        return {"center_id": center, "rooms": rooms}

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            last: str | None = None
            idle = 0.0
            while not await request.is_disconnected():
                async with session() as s:
                    version = await data_version(s)
                if version != last:
                    last = version
                    idle = 0.0
                    yield sse("update", {"version": version})
                elif idle >= 15.0:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(poll_interval)
                idle += poll_interval

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        from infra.observability import METRICS

        async with session() as s:
            backlog = await s.scalar(
                select(func.count(OutboxRow.id)).where(OutboxRow.published.is_(False))
            )
            rooms = await occupancy(s, None, tz)
        lines = [METRICS.render().rstrip("\n")] if METRICS.snapshot() else []
        lines += [
            "# TYPE spaces_outbox_backlog gauge",
            f"spaces_outbox_backlog {int(backlog or 0)}",
            "# TYPE spaces_rooms gauge",
            f"spaces_rooms {len(rooms)}",
            "# TYPE spaces_room_occupancy gauge",
        ]
        lines += [
            f'spaces_room_occupancy{{room="{r["room_id"]}",center="{r["center_id"]}"}} '
            f"{r['occupancy']}"
            for r in rooms
        ]
        lines.append("# TYPE spaces_room_capacity gauge")
        lines += [
            f'spaces_room_capacity{{room="{r["room_id"]}",center="{r["center_id"]}"}} '
            f"{r['capacity']}"
            for r in rooms
        ]
        return PlainTextResponse(
            "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve_dashboard(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    bind_host = settings.dashboard_host if host is None else host
    bind_port = settings.dashboard_port if port is None else port
    shown = "localhost" if bind_host in ("0.0.0.0", "::") else bind_host
    print(f"dashboard at http://{shown}:{bind_port}/  (database {settings.database_url})")
    # Open event streams never end on their own: give them 2 s to go on shutdown.
    uvicorn.run(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
