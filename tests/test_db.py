"""The database adapter on SQLite and PostgreSQL: migrations, unit of work, outbox, pruning."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from infra.db import (
    BookingIdRow,
    Database,
    OutboxRow,
    ProcessedInput,
    RoomRow,
    StaleState,
    utcnow,
)
from infra.db.database import _runs
from infra.settings import Settings


@pytest.fixture
async def db(database_url: str) -> Database:
    database = Database(Settings(database_url=database_url))
    await database.migrate()
    await database.migrate()  # a second upgrade is a no-op
    yield database  # type: ignore[misc]
    await database.dispose()


async def test_a_unit_of_work_commits_state_ids_and_outbox_together(db: Database) -> None:
    now = utcnow()
    async with db.unit_of_work("room-authority") as uow:
        uow.add_room(
            RoomRow(
                room_id="r1",
                center_id="c",
                state={"x": 1},
                occupancy=3,
                capacity=15,
                decisions=1,
                updated_at=now,
            )
        )
        uow.mark_processed("e1", "checkins", 0, 7)
        uow.publish("decisions", "r1", {"type": "checkin.admitted", "room": "동아리방"})
    with pytest.raises(RuntimeError):
        async with db.unit_of_work("room-authority") as uow:
            uow.mark_processed("e2", "checkins", 0, 8)
            uow.publish("decisions", "r1", {"type": "lost"})
            raise RuntimeError("crash before commit")
    async with db.unit_of_work("room-authority") as uow:
        assert await uow.already_processed(["e1", "e2"]) == {"e1"}
        rooms = await uow.load_rooms(["r1", "r2"])
        assert set(rooms) == {"r1"} and rooms["r1"].occupancy == 3
    async with db.unit_of_work("usage-statistics") as uow:
        assert await uow.already_processed(["e1"]) == set()  # ids are per consumer group
    pending = await db.unpublished(10)
    assert [row.key for row in pending] == ["r1"]
    assert "동아리방" in pending[0].value
    await db.mark_published([pending[0].id])
    assert await db.unpublished(10) == []


async def test_prune_forgets_old_ids_and_published_rows_only(db: Database) -> None:
    now = utcnow()
    old = now - timedelta(days=45)
    async with db.session() as session, session.begin():
        session.add_all(
            [
                ProcessedInput(
                    consumer="g", event_id="old", topic="t", partition=0, offset=1, processed_at=old
                ),
                ProcessedInput(
                    consumer="g", event_id="new", topic="t", partition=0, offset=2, processed_at=now
                ),
                OutboxRow(
                    topic="t", key="k", value="{}", created_at=old, published=True, published_at=old
                ),
                OutboxRow(topic="t", key="k", value="{}", created_at=old, published=False),
                OutboxRow(
                    topic="t", key="k", value="{}", created_at=now, published=True, published_at=now
                ),
            ]
        )
    assert await db.prune(now) == (1, 1)
    async with db.session() as session:
        ids = set(await session.scalars(select(ProcessedInput.event_id)))
        outbox = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert ids == {"new"}
    assert outbox == 2  # the unpublished row is never pruned


async def test_a_state_write_expecting_an_older_version_fails_and_changes_nothing(
    db: Database,
) -> None:
    """The guard that keeps a zombie consumer from overwriting the new owner's rooms."""

    def row(version: int, occupancy: int) -> dict[str, object]:
        return {
            "room_id": "r1",
            "center_id": "c",
            "state": {"occupancy": occupancy},
            "occupancy": occupancy,
            "capacity": 15,
            "decisions": 1,
            "updated_at": utcnow(),
            "version": version,
        }

    async with db.unit_of_work("room-authority") as uow:
        await uow.save_states(RoomRow, [row(1, 1)])  # new: stored version 0 -> 1
    async with db.unit_of_work("room-authority") as uow:
        await uow.save_states(RoomRow, [row(2, 2)])  # the owner's next write
    with pytest.raises(StaleState):
        async with db.unit_of_work("room-authority") as uow:
            await uow.save_states(RoomRow, [row(2, 9)])  # a zombie that read version 1
    with pytest.raises(StaleState):
        async with db.unit_of_work("room-authority") as uow:
            await uow.save_states(RoomRow, [row(1, 9)])  # a second "new" room of that id
    async with db.unit_of_work("room-authority") as uow:
        stored = await uow.load_states(RoomRow, ["r1", "r2"], lock=False)
    assert set(stored) == {"r1"}
    assert stored["r1"].version == 2 and stored["r1"].state == {"occupancy": 2}
    async with db.session() as session:
        decisions = await session.scalar(select(RoomRow.decisions))
    assert decisions == 2  # each write adds the decisions it made


async def test_booking_ids_are_remembered_once_and_found_by_room_and_id(db: Database) -> None:
    async with db.unit_of_work("room-authority") as uow:
        assert await uow.booking_ids_seen([("r1", "b1")]) == set()
        uow.remember_booking_id("r1", "b1")
        uow.remember_booking_id("r1", "b1")  # twice in one batch: one row
        uow.remember_booking_id("r2", "b1")
    async with db.unit_of_work("room-authority") as uow:
        uow.remember_booking_id("r1", "b1")  # known already: it stays, no error
        uow.remember_booking_id("r1", "b2")
    async with db.unit_of_work("room-authority") as uow:
        wanted = [("r1", "b1"), ("r1", "b2"), ("r2", "b2"), ("r3", "b1")]
        assert await uow.booking_ids_seen(wanted) == {("r1", "b1"), ("r1", "b2")}
        many = [("r1", f"x{n}") for n in range(1200)] + [("r2", "b1")]
        assert await uow.booking_ids_seen(many) == {("r2", "b1")}
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(BookingIdRow)) == 3


async def test_booking_ids_are_not_written_when_the_batch_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.unit_of_work("room-authority") as uow:
            uow.remember_booking_id("r1", "b1")
            raise RuntimeError("crash before commit")
    async with db.unit_of_work("room-authority") as uow:
        assert await uow.booking_ids_seen([("r1", "b1")]) == set()


async def test_the_upgrade_copies_the_booking_ids_still_in_the_rooms_states(
    database_url: str,
) -> None:
    """A database with history: the ids its rooms still hold are answered already."""
    from alembic import command

    from infra.migrations import alembic_config

    database = Database(Settings(database_url=database_url))
    try:
        async with database.engine.connect() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0003"))
            await conn.commit()
        bookings = [{"booking_id": "b1"}, {"booking_id": "b2"}]
        async with database.session() as session, session.begin():
            for room_id, state in (("r1", {"bookings": bookings}), ("r2", {"bookings": []})):
                await session.execute(
                    RoomRow.__table__.insert().values(  # type: ignore[attr-defined]
                        room_id=room_id,
                        center_id="c",
                        state=state,
                        occupancy=0,
                        capacity=5,
                        decisions=0,
                        updated_at=utcnow(),
                        version=1,
                    )
                )
        await database.migrate()
        async with database.unit_of_work("room-authority") as uow:
            found = await uow.booking_ids_seen([("r1", "b1"), ("r1", "b2"), ("r2", "b1")])
        assert found == {("r1", "b1"), ("r1", "b2")}
    finally:
        await database.dispose()


async def test_marking_rows_published_marks_exactly_those_ids(db: Database) -> None:
    """The relay's ids come in runs of consecutive ids; rows between two runs stay pending."""
    async with db.unit_of_work("room-authority") as uow:
        for n in range(12):
            uow.publish("decisions", f"r{n}", {"n": n})
    ids = [row.id for row in await db.unpublished(100)]
    chosen = ids[0:3] + ids[5:6] + ids[7:11]
    await db.mark_published(list(reversed(chosen)))
    left = [row.id for row in await db.unpublished(100)]
    assert left == [i for i in ids if i not in chosen]
    assert len(left) == 4
    async with db.session() as session:
        marked_at = await session.scalars(
            select(OutboxRow.published_at).where(OutboxRow.id.in_(chosen))
        )
        assert all(at is not None for at in marked_at)


@pytest.mark.parametrize(
    ("ids", "runs"),
    [
        ([], []),
        ([5], [(5, 5)]),
        ([1, 2, 3, 7], [(1, 3), (7, 7)]),
        ([1, 3, 4, 6, 7, 8], [(1, 1), (3, 4), (6, 8)]),
    ],
)
def test_sorted_ids_collapse_into_runs(ids: list[int], runs: list[tuple[int, int]]) -> None:
    assert _runs(ids) == runs


async def test_a_write_waiting_for_sqlites_writer_is_measured(tmp_path: object) -> None:
    """``spaces_sqlite_writer_lock_wait_seconds``: where two processes' writes contend."""
    import asyncio

    from infra.observability import REGISTRY

    url = f"sqlite+aiosqlite:///{tmp_path}/spaces.db"
    first, second = Database(Settings(database_url=url)), Database(Settings(database_url=url))
    await first.migrate()

    def waited() -> float:
        return REGISTRY.get_sample_value("spaces_sqlite_writer_lock_wait_seconds_sum") or 0.0

    holding = asyncio.Event()

    async def hold() -> None:
        async with first.writing():
            holding.set()
            await asyncio.sleep(0.3)

    try:
        holder = asyncio.create_task(hold())
        await holding.wait()
        before = waited()
        async with second.writing():  # the other "process": its file lock waits
            pass
        await holder
        assert 0.2 <= waited() - before < 5
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_failed_bulk_write_is_a_database_error_the_loop_retries(db: Database) -> None:
    """The bulk writes bypass SQLAlchemy's execution (SQLite: the driver's executemany;
    PostgreSQL: COPY); a driver error must still come out as ``DBAPIError``, which the
    consumer loop rolls back and retries, and not stop the consumer."""
    from sqlalchemy.exc import DBAPIError, IntegrityError

    with pytest.raises(DBAPIError) as raised:
        async with db.unit_of_work("room-authority") as uow:
            uow.mark_processed("same-id", "checkins", 0, 1)
            uow.mark_processed("same-id", "checkins", 0, 2)
    assert isinstance(raised.value, IntegrityError)
    async with db.unit_of_work("room-authority") as uow:  # nothing of it was committed
        assert await uow.already_processed(["same-id"]) == set()


async def test_bulk_inserts_commit_or_roll_back_with_the_rest_of_the_batch(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumed ids are inserted (PostgreSQL: by COPY) before the outbox rows; when the
    outbox rows then fail (two with one uid), the ids must not stay committed either: a
    consumer would skip those inputs as decided, with nothing published for them."""
    from sqlalchemy.exc import IntegrityError

    import infra.db.unit_of_work

    # Where ``UnitOfWork.publish`` looks it up when called.
    monkeypatch.setattr(infra.db.unit_of_work, "new_outbox_uid", lambda: "f" * 32)
    with pytest.raises(IntegrityError):
        async with db.unit_of_work("room-authority") as uow:
            uow.mark_processed("decided-then-rolled-back", "checkins", 0, 1)
            uow.publish("decisions", "r1", {"n": 1})
            uow.publish("decisions", "r1", {"n": 2})
    monkeypatch.undo()
    async with db.unit_of_work("room-authority") as uow:
        assert await uow.already_processed(["decided-then-rolled-back"]) == set()
        uow.mark_processed("decided", "checkins", 0, 2)
        uow.publish("decisions", "r1", {"n": 3})
    async with db.unit_of_work("room-authority") as uow:
        assert await uow.already_processed(["decided"]) == {"decided"}
    assert [m.value for m in await db.unpublished(10)] == ['{"n": 3}']


async def test_the_wal_is_checkpointed_after_writes_outside_the_writer_lock(
    tmp_path: object,
) -> None:
    """SQLite's own checkpoint (at 1,000 pages by default) ran inside the COMMIT, under the
    writer lock the other process waits for. The service checkpoints in a thread after a
    write instead: the pages reach the database file, and the WAL does not grow."""
    import os

    from infra.db import WAL_AUTOCHECKPOINT_PAGES

    path = f"{tmp_path}/spaces.db"
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    await db.migrate()
    await db.checkpoint_finished()
    try:
        rows = [
            {
                "id": f"id-{i:06d}-" + "x" * 200,
                "consumer": "c",
                "topic": "t",
                "partition": 0,
                "offset": i,
            }
            for i in range(5000)
        ]  # ~1.3 MB of pages
        async with db.unit_of_work("c") as uow:
            for row in rows:
                uow.mark_processed(row["id"], row["topic"], row["partition"], row["offset"])
        # The pages are in the WAL; SQLite's own checkpoint would wait for 64 MiB of it.
        assert WAL_AUTOCHECKPOINT_PAGES * 4096 > 60 * 2**20
        await db.checkpoint_finished()
        size = os.path.getsize(path)  # noqa: ASYNC240 - one stat in a test
        assert size > 1_000_000  # the pages were copied into the database file
    finally:
        await db.dispose()


async def test_a_unit_of_works_rows_share_its_time_stored_as_the_driver_writes_it(
    tmp_path: object,
) -> None:
    """The bulk path formats each time object once (``InlineSession.execute_many``); what
    SQLite stores must be what the driver's own adapter wrote before, so pruning by time
    and the rows already stored compare the same way."""
    path = Path(str(tmp_path)) / "times.db"
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    await db.migrate()
    async with db.unit_of_work("room-authority") as uow:
        uow.mark_processed("e1", "checkins", 0, 1)
        uow.mark_processed("e2", "checkins", 0, 2)
        uow.publish("decisions", "r1", "{}")
        began = uow.now
    await db.dispose()
    with sqlite3.connect(path) as raw:
        processed = {row[0] for row in raw.execute("SELECT processed_at FROM processed_inputs")}
        created = {row[0] for row in raw.execute("SELECT created_at FROM outbox")}
    assert processed == created == {began.isoformat(" ")}


def test_a_tests_postgresql_database_is_dropped_after_it() -> None:
    """Each PostgreSQL test gets a database of its own, and leaves none behind, even with
    a connection left open (a failed test's): without ``FORCE`` the drop would fail."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_URL, postgres_database

    async def databases() -> set[str]:
        url = make_url(POSTGRES_URL or "")
        conn = await asyncpg.connect(
            user=url.username, password=url.password, host=url.host, port=url.port
        )
        try:
            return {row[0] for row in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()
    try:
        with postgres_database() as url:  # skips (fails under CI) without a server
            name = make_url(url).database
            assert name in loop.run_until_complete(databases())
            left_open = loop.run_until_complete(asyncpg.connect(url.replace("+asyncpg", "")))
        assert name not in loop.run_until_complete(databases())
        with contextlib.suppress(Exception):  # the drop terminated it
            loop.run_until_complete(left_open.close())
    finally:
        loop.close()
