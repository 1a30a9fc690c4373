"""The staff dashboard: a small FastAPI app that only READS the database.

The room authority keeps ``rooms`` up to date and the statistics consumer keeps
``usage_monthly`` up to date; this module turns those rows into JSON for the page in
``entrypoints/static/``, a CSV export, Prometheus metrics and a server-sent event stream
that tells the page when to refetch (``GET /api/events``).

Every query is a read model in ``infra.read_models`` (shared with ``entrypoints.report``);
this module only parses the request, calls them and renders the answer.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from infra.read_models import (
    MonthUsage,
    center_exists,
    data_version,
    list_centers,
    month_usage,
    occupancy,
    outbox_backlog,
    read_engine,
)
from infra.settings import Settings
from schemas.outputs import UsageMonthly

STATIC = Path(__file__).parent / "static"

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

FIELDS: tuple[str, ...] = tuple(UsageMonthly.model_fields)
"""The ``usage-monthly`` value's fields, in contract order (additions last)."""


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


def current_month(timezone: str, now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def usage_csv(usage: MonthUsage) -> str:
    """One row per room and a total row (the center aggregate); contract columns, then name."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*FIELDS, "name"])
    for room in usage["rooms"]:
        writer.writerow([csv_cell(room.get(f)) for f in FIELDS] + [room["name"]])
    total = usage["center"]
    writer.writerow([csv_cell(total.get(f)) for f in FIELDS] + ["total"])
    return out.getvalue()


def sse(event_name: str, data: dict[str, Any]) -> str:
    return f"event: {event_name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


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

    async def usage_for(center: str, month: str | None) -> MonthUsage:
        month = check_month(month) if month is not None else current_month(tz)
        async with session() as s:
            await checked_center(s, center)
            return await month_usage(s, center, month)

    @app.get("/api/centers")
    async def centers() -> dict[str, Any]:
        async with session() as s:
            return {"centers": await list_centers(s), "current_month": current_month(tz)}

    @app.get("/api/usage")
    async def usage(center: str = Query(...), month: str | None = None) -> dict[str, Any]:
        return {**await usage_for(center, month), "timezone": tz}

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
            backlog = await outbox_backlog(s)
            rooms = await occupancy(s, None, tz)
        lines = [METRICS.render().rstrip("\n")] if METRICS.snapshot() else []
        lines += [
            "# TYPE spaces_outbox_backlog gauge",
            f"spaces_outbox_backlog {backlog}",
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
