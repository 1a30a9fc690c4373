"""``spaces``, the way a person meets it: errors, help, ``--json``, the live occupancy table.

Most tests call ``cli.main(argv)`` in this process with a fake kiosk client; the ones
whose point is what a terminal shows (no traceback, no "Unclosed AIOKafkaProducer" when
the interpreter exits, the live table in a real pseudo-terminal) start ``spaces`` as a
child process. Nothing here needs a broker except the test marked ``integration``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pexpect  # type: ignore[import-untyped]
import pytest
import typer
from rich.console import Console

from entrypoints import cli
from infra.settings import Settings, get_settings
from schemas.decisions import (
    BookingConfirmed,
    BookingRejected,
    CheckinAdmitted,
    CheckinDenied,
    Decision,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    RoomConfiguredDecision,
)
from schemas.inputs import AnyInput, BookingRequested, Checkin, EnrollmentRequested, RoomConfigured
from schemas.outputs import Occupancy

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT = "127.0.0.1:1"
"""Nothing listens on port 1: connecting fails at once, as with a broker that is down."""

START = "2026-11-25T18:00+09:00"
END = "2026-11-25T20:00+09:00"


# --- helpers --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_settings_and_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test reads its own SPACES_* and leaves the process' logging as it found it."""
    for name in list(os.environ):
        if name.startswith("SPACES_"):
            monkeypatch.delenv(name)
    from infra.observability import QUIET_FOR_A_PERSON

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = (*QUIET_FOR_A_PERSON, "kafka", "sqlalchemy.engine")
    levels = {name: logging.getLogger(name).level for name in names}
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """A non-zero exit, exactly one line on stderr, no traceback; returns the line."""
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def spaces_process(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``spaces`` as a person runs it: a new interpreter, so exit-time noise shows too."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**clean, **(env or {})},
    )


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def answer(event: AnyInput) -> Decision:
    """What the room authority would say to a room that exists."""
    base: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "caused_by": event.event_id,
        "room_id": event.room_id,
        "decided_at": NOW,
    }
    if isinstance(event, Checkin):
        return CheckinAdmitted(
            **base, kiosk_id=event.kiosk_id, party_size=event.party_size, occupancy=3, capacity=15
        )
    if isinstance(event, BookingRequested):
        return BookingConfirmed(
            **base,
            booking_id=event.booking_id,
            member_id=event.member_id,
            party_size=event.party_size,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
        )
    if isinstance(event, EnrollmentRequested):
        return EnrollmentConfirmed(
            **base, session_id=event.session_id, member_id=event.member_id, party_size=1
        )
    if isinstance(event, RoomConfigured):
        return RoomConfiguredDecision(
            **base,
            name=event.name,
            capacity=event.capacity,
            booking_mode=event.booking_mode,
            opens=event.opens,
            closes=event.closes,
            timezone=event.timezone,
        )
    raise AssertionError(f"no canned answer for {event.type}")


class FakeClient:
    """Stands in for ``producers.client.DecisionClient``: answers without a broker."""

    sent: ClassVar[list[AnyInput]] = []
    respond: ClassVar[Callable[[AnyInput], Decision]] = staticmethod(answer)
    extra: ClassVar[list[Decision]] = []

    def __init__(self, settings: Settings, rooms: list[str] | None = None) -> None:
        self.rooms = rooms

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def request(self, event: AnyInput) -> Decision:
        FakeClient.sent.append(event)
        return FakeClient.respond(event)

    def consequences(self, event_id: uuid.UUID) -> list[Decision]:
        return [FakeClient.respond(FakeClient.sent[-1]), *FakeClient.extra]


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    import producers.client

    FakeClient.sent = []
    FakeClient.respond = staticmethod(answer)
    FakeClient.extra = []
    monkeypatch.setattr(producers.client, "DecisionClient", FakeClient)
    return FakeClient


# --- the errors of issue 8: one line, non-zero, no traceback ---------------------------


def test_cancel_without_booking_says_which_option_is_missing(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["book", "--cancel", "--room", "r1", "--member", "m1"], capsys)
    assert_one_line_error(code, err, "--booking", "--cancel")
    assert out == "" and fake_client.sent == []


@pytest.mark.parametrize("end", [START, "2026-11-25T17:00+09:00"], ids=["equal", "before"])
def test_end_not_after_start(
    end: str, fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["book", "--room", "r1", "--member", "m1", "--start", START, "--end", end]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, "--end", "after", "--start")
    assert code == 2 and fake_client.sent == []


@pytest.mark.parametrize("room", ["a b", "seosan club 1", "x" * 65, "room/1", ""])
def test_room_id_that_is_not_an_identifier(
    room: str, fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["kiosk", "checkin", "--room", room], capsys)
    assert_one_line_error(code, err, "--room", "not a valid id")
    assert code == 2 and fake_client.sent == []


def test_member_id_with_spaces_is_refused_too(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["book", "--room", "r1", "--member", "m 1", "--start", START, "--end", END]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, "--member", "not a valid id")


@pytest.mark.parametrize("start", ["2026-11-25T18:00", "tomorrow"])
def test_time_without_an_offset(
    start: str, fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["book", "--room", "r1", "--member", "m1", "--start", start, "--end", END]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, "--start", "+09:00")
    assert code == 2


def test_missing_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["kiosk", "checkin"], capsys)
    assert_one_line_error(code, err, "--room")
    assert code == 2


def test_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["bok"], capsys)
    assert_one_line_error(code, err, "bok")
    assert code == 2


def test_validation_error_names_the_option(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["room", "configure", "--room", "r1", "--center", "c", "--name", "Club", "--capacity"]
    code, _, err = run([*base, "15", "--opens", "9am"], capsys)
    assert_one_line_error(code, err, "--opens", "HH:MM")
    code, _, err = run([*base, "15", "--timezone", "Mars/Olympus"], capsys)
    assert_one_line_error(code, err, "--timezone", "Mars/Olympus")
    code, _, err = run([*base, "15", "--opens", "09:00", "--closes", "09:00"], capsys)
    assert_one_line_error(code, err, "closes")  # a rule of the whole message, no option
    assert code == 2
    code, _, err = run([*base, "0"], capsys)
    assert_one_line_error(code, err, "--capacity")
    assert fake_client.sent == []


def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    fake_client: type[FakeClient],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SPACES_KIOSK_TIMEOUT_S", "soon")
    code, _, err = run(["kiosk", "checkin", "--room", "r1"], capsys)
    assert_one_line_error(code, err, "SPACES_KIOSK_TIMEOUT_S")


def test_unknown_room_in_the_decision_is_an_error(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    def unknown(event: AnyInput) -> Decision:
        assert isinstance(event, Checkin)
        return CheckinDenied(
            event_id=uuid.uuid4(),
            caused_by=event.event_id,
            room_id=event.room_id,
            decided_at=NOW,
            kiosk_id=event.kiosk_id,
            party_size=event.party_size,
            occupancy=0,
            capacity=0,
            reason="unknown_room",
        )

    fake_client.respond = staticmethod(unknown)
    code, out, err = run(["kiosk", "checkin", "--room", "nowhere.1"], capsys)
    line = assert_one_line_error(code, err, "unknown room 'nowhere.1'", "spaces room configure")
    assert code == 1 and out == ""
    assert line.startswith("error: ")


def test_unknown_room_for_a_booking_is_an_error_and_json_still_prints_the_decision(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    def rejected(event: AnyInput) -> Decision:
        assert isinstance(event, BookingRequested)
        return BookingRejected(
            event_id=uuid.uuid4(),
            caused_by=event.event_id,
            room_id=event.room_id,
            decided_at=NOW,
            booking_id=event.booking_id,
            member_id=event.member_id,
            reason="unknown_room",
        )

    fake_client.respond = staticmethod(rejected)
    argv = ["book", "--room", "r9", "--member", "m1", "--start", START, "--end", END, "--json"]
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, "unknown room 'r9'")
    assert json.loads(out)["reason"] == "unknown_room"


def test_an_input_the_authority_dead_letters_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    fake_client: type[FakeClient],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from producers.client import Refused

    def refuse(event: AnyInput) -> Decision:
        raise Refused(event, "checkout for unknown room 'r9'")

    fake_client.respond = staticmethod(refuse)
    code, _, err = run(["kiosk", "checkout", "--room", "r9"], capsys)
    assert_one_line_error(code, err, "checkout", "unknown room 'r9'")
    assert code == 1


def test_no_decision_in_time_is_one_line_with_exit_3(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    from producers.client import NoDecision

    def silent(event: AnyInput) -> Decision:
        raise NoDecision(event, attempts=2, wait_s=10.0)

    fake_client.respond = staticmethod(silent)
    code, _, err = run(["kiosk", "checkin", "--room", "r1"], capsys)
    assert_one_line_error(code, err, "no decision", "spaces run")
    assert code == 3


def test_unknown_part_for_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["run", "--only", "authority,nope"], capsys)
    assert_one_line_error(code, err, "nope", "authority")
    assert code == 2


def test_an_unexpected_error_is_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import schemas.export

    def broken(out: Path) -> list[Path]:
        raise ZeroDivisionError("a bug\nwith two lines")

    monkeypatch.setattr(schemas.export, "export_all", broken)
    code, _, err = run(["schema", "export", "--out", "x"], capsys)
    assert_one_line_error(code, err, "ZeroDivisionError", "--debug")
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "schema", "export", "--out", "x"])


def test_a_database_error_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "SPACES_DATABASE_URL", "postgresql+asyncpg://spaces:s3cret@127.0.0.1:1/spaces"
    )
    code, _, err = run(["db", "upgrade"], capsys)
    assert_one_line_error(code, err, "database postgresql+asyncpg://spaces:***@127.0.0.1:1")
    assert "s3cret" not in err


# --- a broker that is down: a real process, as a person meets it ----------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["kiosk", "checkin", "--room", "seosan.club-1"],
        ["book", "--room", "r1", "--member", "m1", "--start", START, "--end", END],
        ["occupancy", "--once"],
        ["replay"],
    ],
    ids=["kiosk", "book", "occupancy", "replay"],
)
def test_broker_down_is_one_line_naming_the_address(argv: list[str], tmp_path: Path) -> None:
    env = {
        "SPACES_KAFKA_BOOTSTRAP": CLOSED_PORT,
        "SPACES_KIOSK_TIMEOUT_S": "1",
        "SPACES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }
    done = spaces_process(*argv, env=env)
    assert_one_line_error(done.returncode, done.stderr, CLOSED_PORT, "SPACES_KAFKA_BOOTSTRAP")
    assert "Unclosed" not in done.stderr and done.stdout == ""


def test_broker_down_on_the_local_default_suggests_infra_up(tmp_path: Path) -> None:
    done = spaces_process(
        "kiosk",
        "checkin",
        "--room",
        "r1",
        env={"SPACES_KAFKA_PORT": "1", "SPACES_HOME": str(tmp_path)},
    )
    assert_one_line_error(done.returncode, done.stderr, CLOSED_PORT, "spaces infra up")


def test_cancel_without_booking_in_a_real_process() -> None:
    done = spaces_process("book", "--cancel", "--room", "r1", "--member", "m1")
    assert_one_line_error(done.returncode, done.stderr, "--booking")


# --- help -----------------------------------------------------------------------------


def every_command() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(path: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk((*path, name), sub)

    yield from walk((), typer.main.get_command(cli.app))


def test_every_command_and_option_has_help_and_every_command_an_example() -> None:
    seen = set()
    for path, command in every_command():
        seen.add(" ".join(path))
        assert (command.help or "").strip(), f"spaces {' '.join(path)} has no help"
        if getattr(command, "commands", None):
            continue
        assert f"spaces {' '.join(path)}" in (command.epilog or ""), f"{path}: no example"
        for param in command.params:
            if param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), f"{path} {param.name}: no help"
    # Every command the old argparse CLI had is still there (scripts and docs use them).
    for old in [
        "infra up",
        "infra down",
        "infra status",
        "db upgrade",
        "run",
        "kiosk checkin",
        "kiosk checkout",
        "book",
        "enroll",
        "room configure",
        "room capacity",
        "room session",
        "schema export",
        "replay",
        "demo",
        "report",
        "dashboard",
        "occupancy",
    ]:
        assert old in seen, old


def test_top_level_help_reads_like_a_guide(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "``" not in out and "entrypoints" not in out
    for words in ["Getting started", "spaces infra up", "spaces run", "SPACES_", "Exit codes"]:
        assert words in out, words


def test_command_help_shows_options_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["book", "--help"], capsys)
    assert code == 0
    assert "--cancel" in out and "--booking" in out and "Example" in out
    assert "[A-Za-z0-9" not in out or "A-Za-z0-9._:-" in out  # markup did not eat the id rule
    code, out, _ = run(["kiosk", "checkin", "--help"], capsys)
    assert code == 0 and "spaces kiosk checkin --room" in out


def test_no_command_prints_the_guide(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([], capsys)
    assert code == 2
    assert "Getting started" in out + err and "Traceback" not in err


# --- --json ---------------------------------------------------------------------------


def test_kiosk_json_is_the_decision(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["kiosk", "checkin", "--room", "seosan.club-1", "--party", "3", "--json"], capsys
    )
    assert code == 0 and err == ""
    decision = json.loads(out)
    assert decision["type"] == "checkin.admitted" and decision["party_size"] == 3
    assert decision["caused_by"] == str(fake_client.sent[0].event_id)


def test_kiosk_text_is_a_sentence(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["kiosk", "checkin", "--room", "seosan.club-1", "--party", "3"], capsys)
    assert code == 0
    assert out.strip() == "admitted: party 3 at seosan.club-1, occupancy 3/15"


def test_book_json_and_the_event_sent(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["book", "--room", "r1", "--member", "m1", "--party", "8"]
    code, out, _ = run([*argv, "--start", START, "--end", END, "--json"], capsys)
    assert code == 0
    assert json.loads(out)["type"] == "booking.confirmed"
    sent = fake_client.sent[0]
    assert isinstance(sent, BookingRequested) and sent.party_size == 8
    assert sent.starts_at == datetime.fromisoformat(START)


def test_enroll_json_prints_every_consequence(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_client.extra = [
        EnrollmentPromoted(
            event_id=uuid.uuid4(),
            caused_by=None,
            room_id="r1",
            decided_at=NOW,
            session_id="s1",
            member_id="m2",
            party_size=1,
        )
    ]
    code, out, _ = run(
        ["enroll", "--room", "r1", "--session", "s1", "--member", "m1", "--json"], capsys
    )
    assert code == 0
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "enrollment.confirmed",
        "enrollment.promoted",
    ]


def test_room_configure_json(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["room", "configure", "--room", "seosan.club-1", "--center", "seosan"]
    code, out, _ = run([*argv, "--name", "Club room 1", "--capacity", "15", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["capacity"] == 15
    sent = fake_client.sent[0]
    assert isinstance(sent, RoomConfigured) and sent.timezone == "Asia/Seoul"


def test_infra_status_json_and_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra import kafka_local

    status = {
        "mode": "local",
        "external": False,
        "bootstrap": "127.0.0.1:19092",
        "pid": 4242,
        "running": True,
        "reachable": True,
        "topics": {"checkins": 6, "decisions": 6},
        "home": ".spaces/kafka",
        "log": ".spaces/kafka/broker.log",
    }
    monkeypatch.setattr(kafka_local, "info", lambda settings: status)
    code, out, _ = run(["infra", "status", "--json"], capsys)
    assert code == 0 and json.loads(out) == status
    code, out, _ = run(["infra", "status"], capsys)
    assert code == 0 and "127.0.0.1:19092" in out and "decisions" in out and "{" not in out


def test_report_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_dashboard import MONTH, demo_values, fill_demo

    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    asyncio.run(fill_demo(Settings(database_url=url)))
    monkeypatch.setenv("SPACES_DATABASE_URL", url)
    code, out, _ = run(["report", "--month", MONTH, "--center", "seosan", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["center_id"] == "seosan" and document["month"] == MONTH
    assert document["center"]["visits"] == demo_values()[f"center:seosan:{MONTH}"]["visits"]
    assert document["average"]["months"] >= 1
    code, _, err = run(["report", "--month", MONTH, "--center", "nowhere", "--json"], capsys)
    assert_one_line_error(code, err, "unknown center 'nowhere'")
    code, _, err = run(["report", "--month", "11/2026", "--json"], capsys)
    assert_one_line_error(code, err, "YYYY-MM")


def test_replay_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import entrypoints.replay

    async def fake_replay(settings: Settings, into: Path | None = None, **_: Any) -> Any:
        return entrypoints.replay.ReplayReport(
            decisions=7, rooms_rebuilt=2, rooms_live=2, target="/tmp/r.db"
        )

    monkeypatch.setattr(entrypoints.replay, "replay", fake_replay)
    code, out, _ = run(["replay", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {
        "decisions": 7,
        "unreadable": 0,
        "rooms_rebuilt": 2,
        "rooms_live": 2,
        "mismatches": {},
        "target": "/tmp/r.db",
        "matches": True,
    }


# --- occupancy ------------------------------------------------------------------------


def occupancy_value(room: str, center: str, occupancy: int, capacity: int = 15) -> bytes:
    return (
        Occupancy(
            room_id=room,
            center_id=center,
            occupancy=occupancy,
            capacity=capacity,
            as_of=NOW + timedelta(minutes=occupancy),
        )
        .model_dump_json()
        .encode()
    )


def test_board_keeps_the_latest_figure_per_room_and_honours_tombstones() -> None:
    board = cli.OccupancyBoard(center=None)
    assert board.apply(b"a.1", occupancy_value("a.1", "a", 3))
    assert board.apply(b"b.1", occupancy_value("b.1", "b", 1))
    assert board.apply(b"a.1", occupancy_value("a.1", "a", 5))
    assert not board.apply(b"a.2", b"{not json")
    assert [(r.room_id, r.occupancy) for r in board.rows()] == [("a.1", 5), ("b.1", 1)]
    assert board.apply(b"b.1", None)  # compaction's tombstone: the room is gone
    assert [r.room_id for r in board.rows()] == ["a.1"]


def test_board_for_one_center() -> None:
    board = cli.OccupancyBoard(center="b")
    assert not board.apply(b"a.1", occupancy_value("a.1", "a", 3))
    assert board.apply(b"b.1", occupancy_value("b.1", "b", 1))
    assert [r.room_id for r in board.rows()] == ["b.1"]


def test_occupancy_table_shows_room_center_figures_and_time() -> None:
    board = cli.OccupancyBoard(center=None)
    board.apply(b"seosan.club-1", occupancy_value("seosan.club-1", "seosan", 3))
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(cli.occupancy_table(board, timezone="Asia/Seoul"))
    text = console.export_text()
    for cell in ["Room", "Center", "seosan.club-1", "seosan", "3/15", "2026-11-25 18:03"]:
        assert cell in text, cell


def fake_feed(*items: tuple[bytes, bytes | None] | object) -> Callable[..., Any]:
    async def feed(settings: Settings, *, follow: bool) -> Any:
        for item in items:
            yield item

    return feed


def test_occupancy_once_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = fake_feed(
        (b"a.1", occupancy_value("a.1", "a", 3)),
        (b"b.1", occupancy_value("b.1", "b", 1)),
        cli.CAUGHT_UP,
        (b"a.1", occupancy_value("a.1", "a", 9)),  # after --once has finished: not shown
    )
    monkeypatch.setattr(cli, "occupancy_feed", feed)
    code, out, _ = run(["occupancy", "--once", "--json"], capsys)
    assert code == 0
    assert [(d["room_id"], d["occupancy"]) for d in map(json.loads, out.splitlines())] == [
        ("a.1", 3),
        ("b.1", 1),
    ]
    code, out, _ = run(["occupancy", "--once", "--center", "b"], capsys)
    assert code == 0 and "b.1" in out and "a.1" not in out and "1/15" in out


def test_occupancy_once_for_an_unknown_center(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        cli, "occupancy_feed", fake_feed((b"a.1", occupancy_value("a.1", "a", 3)), cli.CAUGHT_UP)
    )
    code, out, err = run(["occupancy", "--once", "--center", "nowhere"], capsys)
    assert_one_line_error(code, err, "nowhere")
    assert out == ""


def test_occupancy_follow_json_streams_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = fake_feed(
        (b"a.1", occupancy_value("a.1", "a", 3)),
        cli.CAUGHT_UP,
        (b"a.1", occupancy_value("a.1", "a", 4)),
        (b"b.1", occupancy_value("b.1", "b", 2)),
    )
    monkeypatch.setattr(cli, "occupancy_feed", feed)
    code, out, _ = run(["occupancy", "--json", "--center", "a"], capsys)
    assert code == 0
    assert [json.loads(line)["occupancy"] for line in out.splitlines()] == [3, 4]


LIVE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from entrypoints import cli
    from schemas.outputs import Occupancy

    def value(room, n):
        return Occupancy(room_id=room, center_id="seosan", occupancy=n, capacity=15,
                         as_of=datetime(2026, 11, 25, 9, n, tzinfo=UTC)).model_dump_json().encode()

    async def feed(settings, *, follow):
        yield (b"seosan.club-1", value("seosan.club-1", 3))
        yield (b"seosan.cafe", value("seosan.cafe", 7))
        yield cli.CAUGHT_UP
        await asyncio.sleep(1.0)
        yield (b"seosan.club-1", value("seosan.club-1", 4))
        await asyncio.sleep(3600)

    cli.occupancy_feed = feed
    sys.exit(cli.main(["occupancy"]))
    """
)


def test_live_table_in_a_terminal_updates_and_stops_on_ctrl_c() -> None:
    """The live table as a terminal shows it (a pseudo-terminal), fed without a broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    child = pexpect.spawn(
        sys.executable,
        ["-c", LIVE_SCRIPT],
        cwd=str(ROOT),
        env={**env, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"},
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=30,
    )
    try:
        for cell in ["seosan.cafe", "7/15", "seosan.club-1", "3/15"]:  # in table order
            child.expect_exact(cell)
        child.expect_exact("4/15")  # the update arrived and the table was redrawn
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")


@pytest.mark.integration
def test_live_table_on_the_real_broker(kafka_settings: Settings) -> None:
    """``spaces occupancy`` in a pseudo-terminal, reading a real compacted topic."""
    from infra.kafka import make_producer
    from infra.kafka_local import ensure_topics
    from tests.conftest import isolated_topics

    settings = kafka_settings.model_copy(update={"topics": isolated_topics(), "partitions": 3})
    asyncio.run(ensure_topics(settings))

    async def publish(*values: tuple[str, int]) -> None:
        producer = make_producer(settings)
        await producer.start()
        try:
            for room, occupancy in values:
                await producer.send_and_wait(
                    settings.topics.occupancy,
                    key=room.encode(),
                    value=occupancy_value(room, "seosan", occupancy),
                )
        finally:
            await producer.stop()

    asyncio.run(publish(("seosan.club-1", 3), ("seosan.cafe", 7)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "entrypoints.cli", "occupancy", "--center", "seosan"],
        cwd=str(ROOT),
        env={
            **env,
            "TERM": "xterm-256color",
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_TOPIC_OCCUPANCY": settings.topics.occupancy,
        },
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=60,
    )
    try:
        for cell in ["seosan.cafe", "7/15", "seosan.club-1", "3/15"]:  # in table order
            child.expect_exact(cell)
        asyncio.run(publish(("seosan.club-1", 4)))
        child.expect_exact("4/15")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    once = spaces_process(
        "occupancy",
        "--once",
        "--json",
        env={
            "SPACES_KAFKA_BOOTSTRAP": settings.bootstrap,
            "SPACES_TOPIC_OCCUPANCY": settings.topics.occupancy,
        },
    )
    assert once.returncode == 0, once.stderr
    figures = {d["room_id"]: d["occupancy"] for d in map(json.loads, once.stdout.splitlines())}
    assert figures == {"seosan.club-1": 4, "seosan.cafe": 7}


# --- library noise --------------------------------------------------------------------


COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"


def test_aiokafka_still_logs_the_messages_we_quiet() -> None:
    """If aiokafka rewords them, the filters below stop matching: this test says so."""
    import inspect

    import aiokafka.client
    import aiokafka.consumer.group_coordinator as coordinator

    from infra import observability

    source = inspect.getsource(coordinator)
    assert f'"{observability.COORDINATOR_LOOKUP_FAILED}"' in source
    assert f'"{observability.COORDINATOR_MARKED_DEAD}"' in source
    assert observability.BOOTSTRAP_UNREACHABLE in inspect.getsource(aiokafka.client)


def test_cli_logging_hides_coordinator_startup_noise_but_not_real_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

    from infra.observability import (
        COORDINATOR_LOOKUP_FAILED,
        COORDINATOR_MARKED_DEAD,
        configure_cli_logging,
    )

    configure_cli_logging()
    coordinator = logging.getLogger(COORDINATOR_LOGGER)
    coordinator.error(COORDINATOR_LOOKUP_FAILED, CoordinatorNotAvailableError())
    coordinator.warning(COORDINATOR_MARKED_DEAD, 1, "room-authority")
    logging.getLogger("aiokafka.consumer.fetcher").warning("Topic x is not available")
    assert capsys.readouterr().err == ""

    coordinator.error(COORDINATOR_LOOKUP_FAILED, GroupAuthorizationFailedError())
    logging.getLogger("producers.client").warning("no decision yet")
    err = capsys.readouterr().err
    assert "Group Coordinator Request failed" in err
    assert "warning: no decision yet" in err

    try:
        raise ValueError("boom")
    except ValueError as error:
        logging.getLogger("entrypoints.service").error("part failed", exc_info=error)
    err = capsys.readouterr().err
    assert err == "error: part failed (ValueError: boom)\n"  # named, no traceback


def test_service_logging_quiets_the_coordinator_only_while_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aiokafka.errors import CoordinatorNotAvailableError

    from infra.observability import (
        COORDINATOR_LOOKUP_FAILED,
        StartupNoise,
        configure_cli_logging,
        configure_logging,
    )

    configure_cli_logging()  # the callback of every command, `spaces run` included
    configure_logging("INFO")
    assert logging.getLogger("sqlalchemy").level == logging.NOTSET  # the service's as before
    assert logging.getLogger("aiokafka").level == logging.WARNING
    for chatty in ("sqlalchemy.orm.mapper.Mapper", "sqlalchemy.engine.Engine", "aiosqlite"):
        assert not logging.getLogger(chatty).isEnabledFor(logging.INFO)
    coordinator = logging.getLogger(COORDINATOR_LOGGER)
    coordinator.error(COORDINATOR_LOOKUP_FAILED, CoordinatorNotAvailableError())
    logging.getLogger("consumers.batch").info("services ready")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["services ready"]

    clock = [0.0]
    noise = StartupNoise(window_s=60.0, clock=lambda: clock[0])
    record = logging.LogRecord(
        COORDINATOR_LOGGER,
        logging.ERROR,
        "",
        0,
        COORDINATOR_LOOKUP_FAILED,
        (CoordinatorNotAvailableError(),),
        None,
    )
    assert not noise.filter(record)
    clock[0] = 61.0
    assert noise.filter(record)  # still failing a minute later: a real problem, shown


# --- the client closes what it opened -------------------------------------------------


async def test_client_that_cannot_connect_closes_its_producer() -> None:
    from aiokafka.errors import KafkaConnectionError

    from producers.client import DecisionClient

    client = DecisionClient(Settings(kafka_bootstrap=CLOSED_PORT), rooms=["r1"])
    with pytest.raises(KafkaConnectionError):
        await client.start()
    assert client._producer is not None and client._producer._closed


async def test_publish_all_that_cannot_connect_closes_its_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.errors import KafkaConnectionError

    import producers.client

    made: list[Any] = []
    original = producers.client.make_producer

    def spy(settings: Settings, **overrides: Any) -> Any:
        made.append(original(settings, **overrides))
        return made[-1]

    monkeypatch.setattr(producers.client, "make_producer", spy)
    with pytest.raises(KafkaConnectionError):
        await producers.client.publish_all(Settings(kafka_bootstrap=CLOSED_PORT), [])
    assert made and made[0]._closed


async def test_client_resolves_a_dead_lettered_input_as_refused() -> None:
    from producers.client import DecisionClient, Refused
    from schemas.inputs import Checkout
    from schemas.outputs import DeadLetter

    settings = Settings()
    client = DecisionClient(settings, rooms=["r9"])
    checkout = Checkout(
        event_id=uuid.uuid4(), occurred_at=NOW, room_id="r9", kiosk_id="k", party_size=1
    )
    waiting = client.expect(checkout)
    other = DeadLetter(
        topic="checkins",
        partition=0,
        offset=1,
        key=None,
        original=base64.b64encode(b'{"event_id": "not ours"}').decode(),
        reason="x",
        consumer_group="room-authority",
        received_at=NOW,
    )
    client.receive(settings.topics.dead_letters, other.model_dump_json().encode())
    assert not waiting.done()
    letter = other.model_copy(
        update={
            "original": base64.b64encode(checkout.model_dump_json().encode()).decode(),
            "reason": "checkout for unknown room 'r9'",
        }
    )
    client.receive(settings.topics.dead_letters, letter.model_dump_json().encode())
    assert waiting.done()
    error = waiting.exception()
    assert isinstance(error, Refused) and "unknown room 'r9'" in str(error)


@pytest.mark.integration
async def test_a_dead_lettered_request_fails_at_once_on_the_real_broker(
    stack_settings: Settings,
) -> None:
    """An event id reused for another input has no decision, only a dead letter: the
    client says so at once instead of waiting out its timeout."""
    import time

    from producers.client import DecisionClient, Refused
    from schemas.inputs import Checkout
    from tests.stack import running

    settings = stack_settings.model_copy(update={"kiosk_timeout_s": 20.0})
    checkout = Checkout(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        room_id="never.configured",
        kiosk_id="k",
        party_size=1,
    )
    reused = checkout.model_copy(update={"party_size": 2})
    async with (
        running(settings, ("authority", "relay")),
        DecisionClient(settings, rooms=[checkout.room_id]) as client,
    ):
        answered = await client.request(checkout)
        assert answered.type == "checkout.rejected"  # an unknown room gets an answer
        began = time.monotonic()
        with pytest.raises(Refused, match="event_id"):
            await client.request(reused)
    assert time.monotonic() - began < settings.kiosk_timeout_s  # not a timeout


# --- progress -------------------------------------------------------------------------


def test_progress_bar_draws_on_a_terminal_and_stays_silent_otherwise() -> None:
    quiet = io.StringIO()
    with cli.progress_bar("replaying", total=10, console=Console(file=quiet)) as advance:
        advance(5)
        advance(10)
    assert quiet.getvalue() == ""

    shown = io.StringIO()
    terminal = Console(file=shown, force_terminal=True, width=80)
    with cli.progress_bar("replaying", total=10, console=terminal) as advance:
        advance(10)
    assert "replaying" in shown.getvalue() and "10/10" in shown.getvalue()
    assert re.search(r"\d", shown.getvalue())
