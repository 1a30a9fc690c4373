"""The ``spaces`` command: translates arguments into calls, nothing more."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from infra.settings import Settings, get_settings
from schemas.inputs import (
    AnyInput,
    BookingCancelRequested,
    BookingRequested,
    Checkin,
    Checkout,
    EnrollmentCancelRequested,
    EnrollmentRequested,
    RoomCapacityChanged,
    RoomConfigured,
    SessionScheduled,
)

Handler = Callable[[argparse.Namespace, Settings], int]


def _now() -> datetime:
    return datetime.now().astimezone()


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. 2026-11-21T10:00+09:00")
    return value


# --- infra ----------------------------------------------------------------------------


def cmd_infra(args: argparse.Namespace, settings: Settings) -> int:
    from infra import kafka_local

    try:
        if args.action == "up":
            info = kafka_local.up(settings)
            print(
                f"kafka ready at {info.bootstrap} "
                f"({'external' if settings.uses_external_kafka else 'local'}; "
                f"started in {info.start_seconds:.1f}s)"
            )
        elif args.action == "down":
            print(kafka_local.down(settings))
        else:
            print(json.dumps(kafka_local.info(settings), indent=2, default=str))
    except kafka_local.BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from infra.db import Database

    async def upgrade() -> None:
        db = Database(settings)
        await db.migrate()
        await db.dispose()

    asyncio.run(upgrade())
    print(f"database at head: {settings.database_url}")
    return 0


# --- services -------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from entrypoints.service import PARTS, serve
    from infra.observability import configure_logging

    configure_logging(args.log_level)
    parts = tuple(args.only.split(",")) if args.only else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"error: unknown part(s) {sorted(unknown)}; choose from {PARTS}", file=sys.stderr)
        return 2
    if args.only is None and settings.run_processes == "per-role":
        from entrypoints.supervisor import roles_for, supervise

        return supervise(roles_for(parts), args.log_level)
    asyncio.run(serve(settings, parts))
    return 0


# --- producers ------------------------------------------------------------------------


def _request(settings: Settings, event: AnyInput, follow: int = 0) -> int:
    from producers.client import DecisionClient, NoDecision

    async def go() -> int:
        async with DecisionClient(settings, rooms=[event.room_id]) as client:
            try:
                decision = await client.request(event)
            except NoDecision as error:
                print(f"no decision: {error}", file=sys.stderr)
                return 3
            print(describe(decision.model_dump(mode="json")))
            if follow:
                await asyncio.sleep(0.5)
                for extra in client.consequences(event.event_id)[1:]:
                    print(describe(extra.model_dump(mode="json")))
            return 0

    return asyncio.run(go())


def describe(decision: dict[str, Any]) -> str:
    kind = decision["type"]
    if kind.startswith("checkin."):
        verdict = "admitted" if kind == "checkin.admitted" else f"denied ({decision['reason']})"
        return (
            f"{verdict}: party {decision['party_size']} at {decision['room_id']}, "
            f"occupancy {decision['occupancy']}/{decision['capacity']}"
        )
    if kind == "checkout.recorded":
        return f"checked out: occupancy {decision['occupancy']}/{decision['capacity']}"
    details = {
        k: v
        for k, v in decision.items()
        if k not in {"type", "event_id", "caused_by", "decided_at", "room_id", "center_id"}
    }
    return f"{kind} {decision['room_id']} " + " ".join(f"{k}={v}" for k, v in details.items())


def cmd_kiosk(args: argparse.Namespace, settings: Settings) -> int:
    common = {"event_id": uuid4(), "occurred_at": _now(), "room_id": args.room}
    event: AnyInput
    if args.action == "checkin":
        event = Checkin(
            **common,
            kiosk_id=args.kiosk,
            party_size=args.party,
            member_id=args.member,
            booking_id=args.booking,
            session_id=args.session,
        )
    else:
        event = Checkout(
            **common, kiosk_id=args.kiosk, party_size=args.party, member_id=args.member
        )
    return _request(settings, event)


def cmd_book(args: argparse.Namespace, settings: Settings) -> int:
    common = {"event_id": uuid4(), "occurred_at": _now(), "room_id": args.room}
    event: AnyInput
    if args.cancel:
        event = BookingCancelRequested(**common, booking_id=args.booking, member_id=args.member)
    else:
        if args.start is None or args.end is None:
            print("error: --start and --end are required to book", file=sys.stderr)
            return 2
        event = BookingRequested(
            **common,
            booking_id=args.booking or f"b-{uuid4().hex[:12]}",
            member_id=args.member,
            party_size=args.party,
            starts_at=args.start,
            ends_at=args.end,
        )
    return _request(settings, event)


def cmd_enroll(args: argparse.Namespace, settings: Settings) -> int:
    common = {"event_id": uuid4(), "occurred_at": _now(), "room_id": args.room}
    event: AnyInput
    if args.cancel:
        event = EnrollmentCancelRequested(**common, session_id=args.session, member_id=args.member)
    else:
        event = EnrollmentRequested(
            **common, session_id=args.session, member_id=args.member, party_size=args.party
        )
    return _request(settings, event, follow=1)


def cmd_room(args: argparse.Namespace, settings: Settings) -> int:
    common = {"event_id": uuid4(), "occurred_at": _now(), "room_id": args.room}
    event: AnyInput
    if args.action == "configure":
        event = RoomConfigured(
            **common,
            center_id=args.center,
            name=args.name,
            capacity=args.capacity,
            booking_mode=args.mode,
            opens=args.opens,
            closes=args.closes,
            timezone=args.timezone or settings.timezone,
        )
    elif args.action == "capacity":
        event = RoomCapacityChanged(**common, capacity=args.capacity, reason=args.reason)
    else:
        event = SessionScheduled(
            **common,
            session_id=args.session,
            title=args.title,
            starts_at=args.start,
            ends_at=args.end,
            capacity=args.capacity,
        )
    return _request(settings, event)


# --- schemas, replay, demo ------------------------------------------------------------


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.export import export_all

    written = export_all(Path(args.out))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from entrypoints.replay import replay

    report = asyncio.run(replay(settings, Path(args.into) if args.into else None))
    print(report.summary())
    return 0 if report.matches else 1


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from entrypoints.demo import demo

    return asyncio.run(demo(settings, months=args.months, seed=args.seed))


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from entrypoints.report import report

    return asyncio.run(report(settings, args.month, args.center))


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from entrypoints.dashboard import serve_dashboard

    serve_dashboard(settings, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spaces", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    infra = sub.add_parser("infra", help="the local Kafka broker")
    infra.add_argument("action", choices=["up", "down", "status"])
    infra.set_defaults(func=cmd_infra)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db)

    run = sub.add_parser("run", help="room authority, outbox relay, clock and statistics")
    run.add_argument("--only", help="comma-separated parts: authority,relay,clock,statistics")
    run.add_argument("--log-level", default=os.environ.get("SPACES_LOG_LEVEL", "INFO"))
    run.set_defaults(func=cmd_run)

    kiosk = sub.add_parser("kiosk", help="a kiosk at the door")
    kiosk.add_argument("action", choices=["checkin", "checkout"])
    kiosk.add_argument("--room", required=True)
    kiosk.add_argument("--party", type=int, default=1)
    kiosk.add_argument("--member")
    kiosk.add_argument("--booking")
    kiosk.add_argument("--session")
    kiosk.add_argument("--kiosk", default="kiosk-cli")
    kiosk.set_defaults(func=cmd_kiosk)

    book = sub.add_parser("book", help="book a room, or cancel a booking (--cancel)")
    book.add_argument("--room", required=True)
    book.add_argument("--member", required=True)
    book.add_argument("--booking")
    book.add_argument("--party", type=int, default=1)
    book.add_argument("--start", type=_time)
    book.add_argument("--end", type=_time)
    book.add_argument("--cancel", action="store_true")
    book.set_defaults(func=cmd_book)

    enroll = sub.add_parser("enroll", help="enroll in a session, or cancel (--cancel)")
    enroll.add_argument("--room", required=True)
    enroll.add_argument("--session", required=True)
    enroll.add_argument("--member", required=True)
    enroll.add_argument("--party", type=int, default=1)
    enroll.add_argument("--cancel", action="store_true")
    enroll.set_defaults(func=cmd_enroll)

    room = sub.add_parser("room", help="configure rooms, capacity and sessions")
    room.add_argument("action", choices=["configure", "capacity", "session"])
    room.add_argument("--room", required=True)
    room.add_argument("--center")
    room.add_argument("--name")
    room.add_argument("--capacity", type=int, required=True)
    room.add_argument("--mode", choices=["exclusive", "shared"], default="exclusive")
    room.add_argument("--opens", default="09:00")
    room.add_argument("--closes", default="22:00")
    room.add_argument("--timezone")
    room.add_argument("--reason", default="staff")
    room.add_argument("--session")
    room.add_argument("--title")
    room.add_argument("--start", type=_time)
    room.add_argument("--end", type=_time)
    room.set_defaults(func=cmd_room)

    schema = sub.add_parser("schema", help="JSON Schema and AsyncAPI of the contract")
    schema.add_argument("action", choices=["export"])
    schema.add_argument("--out", default="docs/schemas")
    schema.set_defaults(func=cmd_schema)

    replay = sub.add_parser("replay", help="rebuild room state from the decisions log")
    replay.add_argument("--into", help="SQLite file to rebuild into (default: a temporary one)")
    replay.set_defaults(func=cmd_replay)

    demo = sub.add_parser("demo", help="configure a center, drive traffic, print the outcome")
    demo.add_argument("--months", type=int, default=3)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    report = sub.add_parser("report", help="a month's usage table")
    report.add_argument("--month", required=True)
    report.add_argument("--center")
    report.set_defaults(func=cmd_report)

    dashboard = sub.add_parser("dashboard", help="serve the staff dashboard")
    dashboard.add_argument("--host")
    dashboard.add_argument("--port", type=int)
    dashboard.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    return handler(args, get_settings())


if __name__ == "__main__":
    raise SystemExit(main())
