"""The ``spaces`` command: translates arguments into calls, nothing more.

Arguments and help come from typer, tables and progress bars from rich. Whatever goes
wrong that a person can act on (a bad option, a broker that is down, an unknown room) ends
as one line on stderr and a non-zero exit code: ``main`` turns exceptions into that line,
and ``spaces --debug`` shows the traceback of anything unexpected instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

# typer (0.29) vendors click: its usage errors live here and nowhere public.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from entrypoints.progress import progress_bar
from infra.observability import configure_cli_logging
from infra.settings import Settings, get_settings
from producers.ids import new_event_id
from schemas.common import Identifier
from schemas.decisions import Decision
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
from schemas.outputs import Occupancy

EXIT_OK = 0
EXIT_FAILED = 1
"""It could not be done: the broker is unreachable, the room unknown, the database broken."""
EXIT_USAGE = 2
"""The command line (or a SPACES_* setting) is wrong."""
EXIT_NO_DECISION = 3
"""The request was sent but no decision came in time: is ``spaces run`` running?"""

EXAMPLE_TIME = "2026-11-25T18:00+09:00"

GUIDE = """\
Book rooms, check people in and out, and watch occupancy at shared community spaces.

Kiosks and booking desks send requests through Kafka. The service (**spaces run**)
decides each one exactly once against the room's limits; these commands send a request and
print the decision.

**Getting started** on one machine, each command in a terminal of its own:

```
spaces infra up      # start a local Kafka broker and create the topics
spaces run           # start the service and leave it running
spaces room configure --room club-1 --center hq --name Club --capacity 15
spaces kiosk checkin --room club-1 --party 3
spaces occupancy     # a live table of every room
```

Or see it all at once: **spaces demo**.

**Settings** are environment variables prefixed SPACES_.
SPACES_KAFKA_BOOTSTRAP=host:9092 uses an existing Kafka cluster instead of the local
broker; SPACES_DATABASE_URL a PostgreSQL database. docs/deploy.md lists them all.

**Scripts**: add --json to book, kiosk, enroll, room, report, replay, infra status,
month close and occupancy for one JSON object per line.

**Exit codes**: 0 done; 1 failed (broker unreachable, unknown room, ...); 2 wrong
usage; 3 no decision in time (is spaces run running?).

Run **spaces COMMAND --help** for the options and examples of each command.
"""


def examples(*lines: str) -> str:
    """A command's epilog: its examples, as a block that keeps their lines."""
    return "**Examples**\n\n```\n" + "\n".join(lines) + "\n```"


app = typer.Typer(
    name="spaces",
    help=GUIDE,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
infra_app = typer.Typer(
    help="The Kafka broker: a local one for development, or check an existing cluster.",
    no_args_is_help=True,
)
db_app = typer.Typer(
    help="The database schema (SQLite by default, or PostgreSQL).", no_args_is_help=True
)
kiosk_app = typer.Typer(help="A kiosk at the door: check people in and out.", no_args_is_help=True)
room_app = typer.Typer(
    help="Staff: set up rooms, change their capacity, schedule sessions.", no_args_is_help=True
)
schema_app = typer.Typer(
    help="The wire contract as JSON Schema and AsyncAPI.", no_args_is_help=True
)
SETUP, DESK, WATCH, UPKEEP = "Set up and run", "Requests", "Watch", "Upkeep"
"""The panels of the top-level help, in the order a newcomer meets them."""
app.add_typer(infra_app, name="infra", rich_help_panel=SETUP)
app.add_typer(db_app, name="db", rich_help_panel=SETUP)
app.add_typer(kiosk_app, name="kiosk", rich_help_panel=DESK)
app.add_typer(room_app, name="room", rich_help_panel=DESK)
app.add_typer(schema_app, name="schema", rich_help_panel=UPKEEP)
month_app = typer.Typer(
    help="Monthly usage: make a month's figures final (the service does it by itself).",
    no_args_is_help=True,
)
app.add_typer(month_app, name="month", rich_help_panel=UPKEEP)


# --- errors ---------------------------------------------------------------------------


class CliError(Exception):
    """A failure the person at the terminal can act on: one line and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclasses.dataclass
class Invocation:
    """What the top-level options said, for ``main`` to honour once the command is done."""

    debug: bool = False


INVOCATION = Invocation()

OPTION_OF_FIELD = {
    "room_id": "--room",
    "center_id": "--center",
    "member_id": "--member",
    "booking_id": "--booking",
    "session_id": "--session",
    "kiosk_id": "--kiosk",
    "party_size": "--party",
    "capacity": "--capacity",
    "starts_at": "--start",
    "ends_at": "--end",
    "name": "--name",
    "title": "--title",
    "opens": "--opens",
    "closes": "--closes",
    "timezone": "--timezone",
    "reason": "--reason",
    "booking_mode": "--mode",
}
"""The option a person typed for each field of an input message."""

ID_RULE = "use 1 to 64 letters, digits, '.', '_', ':' or '-' (no spaces)"


def explain_validation(error: ValidationError) -> str:
    """A pydantic error as one line naming the option (or the field) it is about."""
    problems = error.errors(include_url=False)
    first = problems[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "string_pattern_mismatch":
        message = "use HH:MM, from 00:00 to 24:00" if field in ("opens", "closes") else ID_RULE
    where = OPTION_OF_FIELD.get(field, field)
    line = f"{where}: {message}" if where else message
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more)"
    return line


def broker_unreachable(settings: Settings) -> str:
    if settings.uses_external_kafka:
        return (
            f"cannot reach Kafka at {settings.bootstrap} (SPACES_KAFKA_BOOTSTRAP): check that "
            "the cluster is up and the address is right, or unset SPACES_KAFKA_BOOTSTRAP "
            "and run `spaces infra up` for a local broker"
        )
    return (
        f"cannot reach Kafka at {settings.bootstrap}: start the local broker with "
        "`spaces infra up`, or set SPACES_KAFKA_BOOTSTRAP=host:port to use your cluster"
    )


def explain(error: Exception) -> tuple[str, int]:
    """The line and the exit code for an exception a command let through."""
    from aiokafka.errors import KafkaConnectionError
    from sqlalchemy.exc import SQLAlchemyError

    from producers.client import NoDecision, Refused, TopicMissing

    if isinstance(error, KafkaConnectionError):
        return broker_unreachable(get_settings()), EXIT_FAILED
    if isinstance(error, NoDecision):
        return str(error), EXIT_NO_DECISION
    if isinstance(error, Refused | TopicMissing):
        return str(error), EXIT_FAILED
    if isinstance(error, ValidationError):
        return explain_validation(error), EXIT_USAGE
    # Kafka's connection errors are KafkaConnectionError (above): one that is a plain
    # ConnectionError comes from the database driver (asyncpg raises them unwrapped).
    from_driver = type(error).__module__.startswith(("asyncpg", "sqlite3"))
    if isinstance(error, SQLAlchemyError | ConnectionError) or from_driver:
        cause = first_line(str(getattr(error, "orig", None) or error))
        return f"database {shown_url(get_settings().database_url)}: {cause}", EXIT_FAILED
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}", EXIT_FAILED
    return (
        f"unexpected {type(error).__name__}: {first_line(str(error))} "
        "(run `spaces --debug ...` to see the traceback)",
        EXIT_FAILED,
    )


def shown_url(url: str) -> str:
    """A database URL fit for a terminal: the password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable SPACES_DATABASE_URL)"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def fail(message: str, exit_code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return exit_code


def load_settings() -> Settings:
    """The SPACES_* settings; a wrong one is a usage error naming the variable."""
    try:
        return get_settings()
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        name = "SPACES_" + "_".join(str(part) for part in problem["loc"]).upper()
        raise CliError(f"setting {name}: {problem['msg']}", EXIT_USAGE) from None


# --- option types ---------------------------------------------------------------------

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def identifier(value: str | None) -> str | None:
    """An id option (room, member, booking...) checked as the contract checks it."""
    if value is None:
        return None
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        raise typer.BadParameter(f"{value!r} is not a valid id: {ID_RULE}") from None


def aware_time(text: str) -> datetime:
    """A time with its UTC offset: opening hours are local, so a bare time is ambiguous."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: use ISO 8601 with an offset, e.g. {EXAMPLE_TIME}"
        ) from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs an offset, e.g. {EXAMPLE_TIME}")
    return value


class BookingMode(StrEnum):
    exclusive = "exclusive"
    shared = "shared"


RoomId = Annotated[
    str,
    typer.Option(
        "--room", help="The room's id, e.g. seosan.club-1.", callback=identifier, show_default=False
    ),
]
MemberId = Annotated[
    str, typer.Option("--member", help="The member's id, e.g. m-0042.", callback=identifier)
]
Party = Annotated[
    int, typer.Option("--party", min=1, max=10_000, help="How many people (1 to 10,000).")
]
Capacity = Annotated[
    int, typer.Option("--capacity", min=1, max=100_000, help="The most people at once.")
]
StartTime = Annotated[
    datetime | None,
    typer.Option(
        "--start",
        parser=aware_time,
        metavar="TIME",
        help=f"When it starts, with its UTC offset: {EXAMPLE_TIME}.",
    ),
]
EndTime = Annotated[
    datetime | None,
    typer.Option("--end", parser=aware_time, metavar="TIME", help="When it ends (after --start)."),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON, one object per line.")
]


def _now() -> datetime:
    return datetime.now().astimezone()


def _common(room: str) -> dict[str, Any]:
    now = _now()
    return {"event_id": new_event_id(now), "occurred_at": now, "room_id": room}


def _interval(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is None or end is None:
        raise CliError("--start and --end are both needed", EXIT_USAGE)
    if end <= start:
        raise CliError(
            f"--end must be after --start (got {start.isoformat()} .. {end.isoformat()})",
            EXIT_USAGE,
        )
    return start, end


# --- the top level --------------------------------------------------------------------


@app.callback()
def spaces(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of an unexpected error (bug reports)."),
    ] = False,
) -> None:
    INVOCATION.debug = debug
    configure_cli_logging(tracebacks=debug)


# --- infra ----------------------------------------------------------------------------


@infra_app.command(
    "up",
    epilog=examples(
        "spaces infra up",
        "spaces infra up --brokers 3",
        "SPACES_KAFKA_BOOTSTRAP=kafka-1:9092 spaces infra up",
    ),
)
def infra_up(
    brokers: Annotated[
        int,
        typer.Option(
            "--brokers",
            min=1,
            max=9,
            help="Nodes of the local KRaft cluster; 3 replicates every topic 3 times "
            "(min.insync.replicas=2), so one node may fail.",
        ),
    ] = 1,
) -> int:
    """Start the local Kafka broker (or check your cluster) and create the topics.

    The local broker runs Kafka in KRaft mode without Docker; its jars are downloaded once.
    With SPACES_KAFKA_BOOTSTRAP set nothing is started: the topics are created there.
    """
    from infra import kafka_local

    current = load_settings()
    try:
        info = kafka_local.up(current, brokers)
    except kafka_local.BrokerError as error:
        raise CliError(str(error)) from None
    where = "external" if current.uses_external_kafka else "local"
    if brokers > 1 and not current.uses_external_kafka:
        where = f"local cluster of {brokers}"
    print(f"kafka ready at {info.bootstrap} ({where}; started in {info.start_seconds:.1f}s)")
    return EXIT_OK


@infra_app.command("down", epilog=examples("spaces infra down"))
def infra_down() -> int:
    """Stop the local broker (an external cluster is left alone)."""
    from infra import kafka_local

    try:
        print(kafka_local.down(load_settings()))
    except kafka_local.BrokerError as error:
        raise CliError(str(error)) from None
    return EXIT_OK


@infra_app.command("status", epilog=examples("spaces infra status", "spaces infra status --json"))
def infra_status(as_json: AsJson = False) -> int:
    """Is the broker up and reachable, and which topics does it have."""
    from infra import kafka_local

    status = kafka_local.info(load_settings())
    if as_json:
        print(json.dumps(status, default=str))
        return EXIT_OK
    print("\n".join(describe_broker(status)))
    return EXIT_OK


def describe_broker(status: dict[str, Any]) -> list[str]:
    if status.get("reachable"):
        state = "reachable"
    elif status.get("running"):
        state = "running but not reachable"
    else:
        state = "not reachable" if status.get("external") else "not running"
    pid = f", pid {status['pid']}" if status.get("pid") else ""
    lines = [f"kafka ({status.get('mode')}) at {status.get('bootstrap')}: {state}{pid}"]
    topics = status.get("topics") or {}
    if topics:
        lines.append("topics: " + ", ".join(f"{name} ({count})" for name, count in topics.items()))
    if status.get("error"):
        lines.append(f"last error: {status['error']}")
    if status.get("log"):
        lines.append(f"log: {status['log']}")
    if not status.get("running") and not status.get("external"):
        lines.append("start it with `spaces infra up`")
    return lines


@db_app.command("upgrade", epilog=examples("spaces db upgrade"))
def db_upgrade() -> int:
    """Create or migrate the database tables (spaces run does this on start too)."""
    from infra.db import Database

    current = load_settings()

    async def upgrade() -> None:
        db = Database(current)
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(upgrade())
    print(f"database at head: {shown_url(current.database_url)}")
    return EXIT_OK


@month_app.command(
    "close",
    epilog=examples("spaces month close 2026-11", "spaces month close 2026-11 --json"),
)
def month_close(
    month: Annotated[str, typer.Argument(help="The month to close, YYYY-MM.", metavar="YYYY-MM")],
    as_json: AsJson = False,
) -> int:
    """Make the month YYYY-MM (and any earlier one not closed yet) final everywhere.

    The service closes each room's month by itself soon after the month ends in the
    room's time zone, and catches up on start; this is for doing it by hand. A month
    that has not ended in some room's time zone is refused. Closing again sends nothing.
    The final figures reach usage-monthly through the outbox relay (spaces run).
    """
    from consumers.statistics import MonthNotEnded, check_month, close_due_months
    from infra.db import Database

    try:
        check_month(month)
    except ValueError as error:
        raise CliError(f"month: {error}", EXIT_USAGE) from None
    current = load_settings()

    async def close() -> Any:
        db = Database(current)
        try:
            await db.migrate()
            return await close_due_months(current, db, through=month)
        finally:
            await db.dispose()

    try:
        report = asyncio.run(close())
    except MonthNotEnded as error:
        raise CliError(str(error), EXIT_USAGE) from None
    closed = dict(sorted(report.closed.items()))
    if as_json:
        print(json.dumps({"month": month, "closed": closed, "aggregates": report.aggregates}))
    elif not closed:
        print(f"nothing to close: {month} and the months before it are final already")
    else:
        for each, scopes in closed.items():
            print(f"{each}: closed for {scopes} rooms and centers")
        print(f"{report.aggregates} final figures queued for usage-monthly")
    return EXIT_OK


# --- the service ----------------------------------------------------------------------


@app.command(
    "run",
    rich_help_panel=SETUP,
    epilog=examples(
        "spaces run",
        "spaces run --only authority,relay,clock",
        "SPACES_DATABASE_URL=postgresql+asyncpg://spaces@db/spaces \\\n"
        "    spaces run --log-level DEBUG",
    ),
)
def run_service(
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Run just these parts in this process, comma-separated: "
            "authority, relay, clock, statistics.",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="SPACES_LOG_LEVEL",
            help="DEBUG, INFO, WARNING or ERROR (logs are JSON lines on stderr).",
        ),
    ] = "INFO",
) -> int:
    """Start the service: the room authority, outbox relay, clock and statistics.

    It runs until Ctrl-C or SIGTERM, then finishes the batch in flight. Without --only it
    runs the kiosk path and the statistics as two processes (SPACES_RUN_PROCESSES=one for a
    single process).
    """
    from entrypoints.service import PARTS, serve
    from infra.observability import configure_logging

    level = log_level.upper()
    if level not in logging.getLevelNamesMapping():
        raise CliError(f"--log-level: unknown level {log_level!r}", EXIT_USAGE)
    parts = tuple(part.strip() for part in only.split(",")) if only else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise CliError(
            f"unknown part(s) {sorted(unknown)}: choose from {', '.join(PARTS)}", EXIT_USAGE
        )
    current = load_settings()
    configure_logging(level)
    if only is None and current.run_processes == "per-role":
        from entrypoints.supervisor import roles_for, supervise

        return supervise(roles_for(parts), level, niceness={"statistics": current.statistics_nice})
    from infra.retention import RetentionUnsafe

    try:
        asyncio.run(serve(current, parts))
    except RetentionUnsafe as error:
        raise CliError(str(error)) from None
    return EXIT_OK


# --- requests and their decisions -----------------------------------------------------


async def _ask(current: Settings, event: AnyInput, follow: bool) -> list[Decision]:
    from producers.client import DecisionClient

    async with DecisionClient(current, rooms=[event.room_id]) as client:
        decision = await client.request(event)
        if not follow:
            return [decision]
        await asyncio.sleep(0.5)
        return [decision, *client.consequences(event.event_id)[1:]]


def decide(event: AnyInput, as_json: bool, follow: bool = False) -> int:
    """Send ``event``, print its decision(s); an unknown room is an error, not an answer."""
    decisions = asyncio.run(_ask(load_settings(), event, follow))
    unknown_room = getattr(decisions[0], "reason", None) == "unknown_room"
    for decision in decisions:
        document = decision.model_dump(mode="json")
        if as_json:
            print(json.dumps(document, ensure_ascii=False))
        elif not unknown_room:
            print(describe(document))
    if unknown_room:
        raise CliError(
            f"unknown room {event.room_id!r}: set it up first with `spaces room configure "
            f"--room {event.room_id} --center CENTER --name NAME --capacity N`"
        )
    return EXIT_OK


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


KioskId = Annotated[
    str,
    typer.Option("--kiosk", help="Which kiosk is asking.", callback=identifier),
]
OptionalMember = Annotated[
    str | None,
    typer.Option("--member", help="The member's id, if known.", callback=identifier),
]


@kiosk_app.command(
    "checkin",
    epilog=examples(
        "spaces kiosk checkin --room seosan.club-1 --party 3",
        "spaces kiosk checkin --room seosan.club-1 --member m-0042 --booking b-123 \\\n    --json",
    ),
)
def kiosk_checkin(
    room: RoomId,
    party: Party = 1,
    member: OptionalMember = None,
    booking: Annotated[
        str | None,
        typer.Option("--booking", help="The booking they come for, if any.", callback=identifier),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="The session they attend, if any.", callback=identifier),
    ] = None,
    kiosk: KioskId = "kiosk-cli",
    as_json: AsJson = False,
) -> int:
    """People arrive: admitted, or denied (room full, reserved, closed)."""
    event = Checkin(
        **_common(room),
        kiosk_id=kiosk,
        party_size=party,
        member_id=member,
        booking_id=booking,
        session_id=session,
    )
    return decide(event, as_json)


@kiosk_app.command(
    "checkout",
    epilog=examples(
        "spaces kiosk checkout --room seosan.club-1 --party 3",
        "spaces kiosk checkout --room seosan.club-1 --json",
    ),
)
def kiosk_checkout(
    room: RoomId,
    party: Party = 1,
    member: OptionalMember = None,
    kiosk: KioskId = "kiosk-cli",
    as_json: AsJson = False,
) -> int:
    """People leave: the room's occupancy goes down."""
    event = Checkout(**_common(room), kiosk_id=kiosk, party_size=party, member_id=member)
    return decide(event, as_json)


@app.command(
    "book",
    rich_help_panel=DESK,
    epilog=examples(
        "spaces book --room seosan.club-1 --member m-1 --party 8 \\\n"
        f"    --start {EXAMPLE_TIME} --end 2026-11-25T20:00+09:00",
        "spaces book --cancel --room seosan.club-1 --member m-1 --booking b-123",
    ),
)
def book(
    room: RoomId,
    member: MemberId,
    booking: Annotated[
        str | None,
        typer.Option(
            "--booking",
            help="The booking's id (made up when booking; required with --cancel).",
            callback=identifier,
        ),
    ] = None,
    party: Party = 1,
    start: StartTime = None,
    end: EndTime = None,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel the booking named by --booking.")
    ] = False,
    as_json: AsJson = False,
) -> int:
    """Book a room for a party and a time, or cancel a booking (--cancel)."""
    event: AnyInput
    if cancel:
        if booking is None:
            raise CliError("--cancel needs --booking: the id of the booking to cancel", EXIT_USAGE)
        event = BookingCancelRequested(**_common(room), booking_id=booking, member_id=member)
    else:
        starts_at, ends_at = _interval(start, end)
        event = BookingRequested(
            **_common(room),
            booking_id=booking or f"b-{uuid4().hex[:12]}",
            member_id=member,
            party_size=party,
            starts_at=starts_at,
            ends_at=ends_at,
        )
    return decide(event, as_json)


SessionId = Annotated[
    str,
    typer.Option("--session", help="The session's id, e.g. village-edu-1.", callback=identifier),
]


@app.command(
    "enroll",
    rich_help_panel=DESK,
    epilog=examples(
        "spaces enroll --room seosan.edu --session village-edu-1 --member m-2",
        "spaces enroll --cancel --room seosan.edu --session village-edu-1 --member m-2 \\\n"
        "    --json",
    ),
)
def enroll(
    room: RoomId,
    session: SessionId,
    member: MemberId,
    party: Party = 1,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel the member's enrollment instead.")
    ] = False,
    as_json: AsJson = False,
) -> int:
    """Enroll a member in a session (confirmed or waitlisted), or cancel (--cancel).

    Prints the decision and what followed from it, e.g. someone promoted from the waitlist.
    """
    event: AnyInput
    if cancel:
        event = EnrollmentCancelRequested(**_common(room), session_id=session, member_id=member)
    else:
        event = EnrollmentRequested(
            **_common(room), session_id=session, member_id=member, party_size=party
        )
    return decide(event, as_json, follow=True)


@room_app.command(
    "configure",
    epilog=examples(
        "spaces room configure --room seosan.club-1 --center seosan \\\n"
        '    --name "Club room 1" --capacity 15',
        "spaces room configure --room seosan.lounge --center seosan --name Lounge \\\n"
        "    --capacity 40 --mode shared --opens 07:00 --closes 24:00",
    ),
)
def room_configure(
    room: RoomId,
    center: Annotated[
        str,
        typer.Option(
            "--center", help="The center it belongs to, e.g. seosan.", callback=identifier
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The name staff and members see.")],
    capacity: Capacity,
    mode: Annotated[
        BookingMode,
        typer.Option(
            "--mode",
            help="exclusive: one booking at a time has the room; shared: bookings add up.",
        ),
    ] = BookingMode.exclusive,
    opens: Annotated[str, typer.Option("--opens", help="Opening time, local HH:MM.")] = "09:00",
    closes: Annotated[
        str, typer.Option("--closes", help="Closing time, local HH:MM (24:00 is midnight).")
    ] = "22:00",
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone (default: SPACES_TIMEZONE, Asia/Seoul)."),
    ] = None,
    as_json: AsJson = False,
) -> int:
    """Set up a room, or change its rules: capacity, booking mode, opening hours."""
    event = RoomConfigured(
        **_common(room),
        center_id=center,
        name=name,
        capacity=capacity,
        booking_mode=mode.value,
        opens=opens,
        closes=closes,
        timezone=timezone or load_settings().timezone,
    )
    return decide(event, as_json)


@room_app.command(
    "capacity",
    epilog=examples("spaces room capacity --room seosan.club-1 --capacity 8 --reason distancing"),
)
def room_capacity(
    room: RoomId,
    capacity: Capacity,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, for the record, e.g. distancing.")
    ] = "staff",
    as_json: AsJson = False,
) -> int:
    """Change a room's capacity now; bookings that no longer fit are listed for staff."""
    event = RoomCapacityChanged(**_common(room), capacity=capacity, reason=reason)
    return decide(event, as_json)


@room_app.command(
    "session",
    epilog=examples(
        "spaces room session --room seosan.edu --session village-edu-1 \\\n"
        f'    --title "Village education" --start {EXAMPLE_TIME} \\\n'
        "    --end 2026-11-25T20:00+09:00 --capacity 20"
    ),
)
def room_session(
    room: RoomId,
    session: SessionId,
    title: Annotated[
        str, typer.Option("--title", help="What members see, e.g. Village education.")
    ],
    capacity: Capacity,
    start: StartTime = None,
    end: EndTime = None,
    as_json: AsJson = False,
) -> int:
    """Schedule a session with seats that members enroll in (spaces enroll)."""
    starts_at, ends_at = _interval(start, end)
    event = SessionScheduled(
        **_common(room),
        session_id=session,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
    )
    return decide(event, as_json)


# --- occupancy ------------------------------------------------------------------------


class CaughtUp:
    """Marks the moment the feed has read what the topic held when it started."""


CAUGHT_UP = CaughtUp()
FeedItem = tuple[bytes | None, bytes | None] | CaughtUp


async def occupancy_feed(settings: Settings, *, follow: bool) -> AsyncGenerator[FeedItem, None]:
    """The ``occupancy`` topic from its beginning: ``(key, value)`` per record, ``CAUGHT_UP``
    once the records there at the start are read, then (``follow``) each new record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from producers.client import TopicMissing

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",  # the relay writes in transactions
    )
    try:
        await consumer.start()
        topic = settings.topics.occupancy
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            raise TopicMissing(
                f"topic {topic!r} does not exist at {settings.bootstrap}: "
                "run `spaces infra up` first"
            )
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        behind = set(partitions)
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    yield (record.key, record.value)
            if behind:
                behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
                if not behind:
                    yield CAUGHT_UP
                    if not follow:
                        return
    finally:
        await consumer.stop()


class OccupancyBoard:
    """The latest ``occupancy`` figure per room, as the compacted topic keeps it."""

    def __init__(self, center: str | None) -> None:
        self.center = center
        self.last: Occupancy | None = None
        """The figure of the record applied last (``None`` after a tombstone)."""
        self._rooms: dict[str, Occupancy] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Take one record; True when what the board shows changed."""
        self.last = None
        if value is None:  # a tombstone: compaction forgets the room
            gone = self._rooms.pop(key.decode("utf-8", "replace"), None) if key else None
            return gone is not None and self.shows(gone)
        try:
            figure = Occupancy.model_validate_json(value)
        except ValidationError:
            return False
        before = self._rooms.get(figure.room_id)
        self._rooms[figure.room_id] = figure
        self.last = figure
        return self.shows(figure) or (before is not None and self.shows(before))

    def shows(self, figure: Occupancy) -> bool:
        return self.center is None or figure.center_id == self.center

    def rows(self) -> list[Occupancy]:
        shown = (f for f in self._rooms.values() if self.shows(f))
        return sorted(shown, key=lambda f: (f.center_id, f.room_id))


def occupancy_table(board: OccupancyBoard, timezone: str, *, live: bool = False) -> Table:
    where = f" at {board.center}" if board.center else ""
    table = Table(
        title=f"Occupancy{where}",
        caption="updates as people come and go; Ctrl-C to stop" if live else None,
    )
    table.add_column("Room")
    table.add_column("Center")
    table.add_column("Occupancy", justify="right")
    table.add_column(f"As of ({timezone})")
    zone = ZoneInfo(timezone)
    for figure in board.rows():
        full = figure.occupancy >= figure.capacity
        table.add_row(
            figure.room_id,
            figure.center_id,
            f"{figure.occupancy}/{figure.capacity}",
            figure.as_of.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            style="bold red" if full else None,
        )
    if not board.rows():
        table.add_row("(no room yet)", "", "", "")
    return table


def _json_line(figure: Occupancy) -> None:
    print(figure.model_dump_json(), flush=True)


async def _show_occupancy(
    current: Settings, board: OccupancyBoard, once: bool, as_json: bool
) -> None:
    live: Live | None = None
    caught_up = False
    try:
        async with contextlib.aclosing(occupancy_feed(current, follow=not once)) as feed:
            async for item in feed:
                if isinstance(item, CaughtUp):
                    caught_up = True
                    if once:
                        break
                    if as_json:
                        for figure in board.rows():
                            _json_line(figure)
                    else:
                        live = Live(
                            occupancy_table(board, current.timezone, live=True),
                            console=Console(),
                            auto_refresh=False,
                        )
                        live.start(refresh=True)
                    continue
                changed = board.apply(*item)
                if not (caught_up and changed):
                    continue
                if as_json and board.last is not None:
                    _json_line(board.last)
                elif live is not None:
                    live.update(occupancy_table(board, current.timezone, live=True), refresh=True)
    finally:
        if live is not None:
            live.stop()


@app.command(
    "occupancy",
    rich_help_panel=WATCH,
    epilog=examples(
        "spaces occupancy",
        "spaces occupancy --center seosan --once",
        "spaces occupancy --json | jq .occupancy",
    ),
)
def occupancy(
    center: Annotated[
        str | None,
        typer.Option("--center", help="Only this center's rooms.", callback=identifier),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print the table as it is now and exit.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON lines instead of a table: every room now, then each change as it comes.",
        ),
    ] = False,
) -> int:
    """A live table of every room's occupancy, read from the occupancy topic.

    It shows what the topic holds (the latest figure per room) and redraws as rooms change,
    until Ctrl-C.
    """
    current = load_settings()
    board = OccupancyBoard(center)
    try:
        asyncio.run(_show_occupancy(current, board, once, as_json))
    except KeyboardInterrupt:
        return EXIT_OK  # the way to leave the live table
    if not once:
        return EXIT_OK
    rows = board.rows()
    if not rows and center is not None:
        raise CliError(f"no room of center {center!r} on the occupancy topic (unknown center?)")
    if as_json:
        for figure in rows:
            _json_line(figure)
    elif not rows:
        print("no room has reported its occupancy yet", file=sys.stderr)
    else:
        Console().print(occupancy_table(board, current.timezone))
    return EXIT_OK


# --- progress: entrypoints/progress.py (the demo and the bench draw the same bars) ---


# --- schemas, replay, demo, report, dashboard -----------------------------------------


@schema_app.command("export", epilog=examples("spaces schema export --out docs/schemas"))
def schema_export(
    out: Annotated[
        Path, typer.Option("--out", help="The folder to write the schemas into.")
    ] = Path("docs/schemas"),
) -> int:
    """Write the JSON Schema of every topic and the AsyncAPI document."""
    from schemas.export import export_all

    written = export_all(out)
    print(f"wrote {len(written)} files to {out}")
    return EXIT_OK


@app.command(
    "replay",
    rich_help_panel=UPKEEP,
    epilog=examples("spaces replay", "spaces replay --into /tmp/rebuilt.db --json"),
)
def replay_log(
    into: Annotated[
        Path | None,
        typer.Option("--into", help="An SQLite file to rebuild into (default: a temporary one)."),
    ] = None,
    as_json: AsJson = False,
) -> int:
    """Rebuild every room from the decisions log and compare with the live database.

    Exits 1 when a room differs.
    """
    from entrypoints.replay import replay

    current = load_settings()
    with progress_bar("reading decisions") as update:
        report = asyncio.run(replay(current, into, on_progress=update))
    if as_json:
        print(json.dumps({**dataclasses.asdict(report), "matches": report.matches}))
    else:
        print(report.summary())
    return EXIT_OK if report.matches else EXIT_FAILED


@app.command(
    "demo",
    rich_help_panel=SETUP,
    epilog=examples("spaces demo", "spaces demo --months 6 --seed 11"),
)
def demo(
    months: Annotated[
        int, typer.Option("--months", min=1, help="Months of history to replay.")
    ] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated traffic.")] = 7,
) -> int:
    """Start a broker, replay months of a Seosan-like center, then a busy hour at the door.

    Uses the local broker and resets its topics and the SQLite file.
    """
    from entrypoints.demo import demo as run_demo

    return asyncio.run(run_demo(load_settings(), months=months, seed=seed))


async def report_documents(current: Settings, month: str, center: str | None) -> list[Any]:
    """The report as JSON: per center with figures, its month, its rooms and the average."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from entrypoints.dashboard import BadRequest, check_month
    from entrypoints.report import has_data, monthly_average
    from infra.read_models import (
        center_exists,
        center_history,
        list_centers,
        month_usage,
        read_engine,
    )

    try:
        check_month(month)
    except BadRequest as error:
        raise CliError(f"--month: {error.message}", EXIT_USAGE) from None
    documents: list[Any] = []
    engine = read_engine(current)
    try:
        async with AsyncSession(engine) as session:
            if center is not None and not await center_exists(session, center):
                raise CliError(f"unknown center {center!r}")
            centers = [center] if center else [c["center_id"] for c in await list_centers(session)]
            for ident in centers:
                usage = await month_usage(session, ident, month, chart_months=1)
                if not has_data(usage):
                    continue
                history = await center_history(session, ident, month)
                documents.append(
                    {
                        "center_id": ident,
                        "month": month,
                        "center": usage["center"],
                        "rooms": usage["rooms"],
                        "average": monthly_average(history),
                    }
                )
    finally:
        await engine.dispose()
    if not documents:
        where = f"center {center!r}" if center else "any center"
        raise CliError(f"no usage figures for {month} in {where}")
    return documents


@app.command(
    "report",
    rich_help_panel=WATCH,
    epilog=examples(
        "spaces report --month 2026-11 --center seosan", "spaces report --month 2026-11 --json"
    ),
)
def report(
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")],
    center: Annotated[
        str | None,
        typer.Option(
            "--center", help="Only this center (default: every center).", callback=identifier
        ),
    ] = None,
    as_json: AsJson = False,
) -> int:
    """A month's usage per room and center: visits, bookings, no-shows, utilization."""
    current = load_settings()
    if as_json:
        for document in asyncio.run(report_documents(current, month, center)):
            print(json.dumps(document, ensure_ascii=False))
        return EXIT_OK
    from entrypoints.report import report as print_report

    return asyncio.run(print_report(current, month, center))


@app.command(
    "dashboard",
    rich_help_panel=WATCH,
    epilog=examples("spaces dashboard", "spaces dashboard --host 0.0.0.0 --port 8321"),
)
def dashboard(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: SPACES_DASHBOARD_HOST)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port to listen on (default: SPACES_DASHBOARD_PORT)."),
    ] = None,
) -> int:
    """Serve the staff dashboard: the last 12 months, live occupancy, the monthly report.

    A FastStream Kafka consumer: it reads usage-monthly and occupancy from the beginning
    and needs only SPACES_KAFKA_BOOTSTRAP (no database). /health, /metrics, /docs/asyncapi.
    """
    from entrypoints.dashboard import serve_dashboard

    serve_dashboard(load_settings(), host=host, port=port)
    return EXIT_OK


# --- main -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spaces`` with ``argv`` (default: the process' arguments); return the exit code."""
    INVOCATION.debug = False
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else sys.argv[1:],
            prog_name="spaces",
            standalone_mode=False,
        )
    except NoArgsIsHelpError:
        return EXIT_USAGE  # the guide was printed
    except UsageError as error:
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        return fail(error.format_message() + hint, EXIT_USAGE)
    except typer.TyperException as error:
        return fail(error.format_message(), error.exit_code)
    except typer.Abort:
        return fail("aborted", 130)
    except CliError as error:
        return fail(error.message, error.exit_code)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            return fail(exit_.code, EXIT_FAILED)
        return exit_.code or EXIT_OK
    except Exception as error:
        if INVOCATION.debug:
            raise
        message, code = explain(error)
        return fail(message, code)
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
