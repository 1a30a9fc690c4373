"""Issue 7, in the database: outbox rows are named forever, and the outbox has one identity.

On SQLite and PostgreSQL. The relay's behaviour on the broker is in
tests/test_integration_relay_fencing.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, text

from infra.db import Database, OutboxRow, utcnow
from infra.settings import Settings


async def add_rows(db: Database, count: int) -> None:
    async with db.unit_of_work("test") as uow:
        for n in range(count):
            uow.publish("decisions", f"room-{n}", {"n": n})


async def all_ids(db: Database) -> list[tuple[int, str]]:
    async with db.read_session() as session:
        return [(i, u) for i, u in await session.execute(select(OutboxRow.id, OutboxRow.uid))]


async def test_every_row_gets_a_uid_of_its_own_at_insert(db: Database) -> None:
    await add_rows(db, 300)
    rows = await db.unpublished(1000)
    uids = [row.uid for row in rows]
    assert len(set(uids)) == 300
    assert all(re.fullmatch("[0-9a-f]{32}", uid) for uid in uids)


async def test_ids_are_not_reused_after_a_prune(db: Database) -> None:
    """SQLite reused the highest rowid once its row was deleted (no ``AUTOINCREMENT``)."""
    await add_rows(db, 5)
    before = await all_ids(db)
    await db.mark_published([i for i, _ in before])
    assert await db.prune(utcnow() + timedelta(days=365)) == (0, 5)
    await add_rows(db, 5)
    after = await all_ids(db)
    assert min(i for i, _ in after) > max(i for i, _ in before)
    assert not {u for _, u in after} & {u for _, u in before}


async def test_the_outbox_has_one_transactional_id_stable_across_restarts(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url)
    first = Database(settings)
    await first.migrate()
    named = await first.outbox_transactional_id()
    await first.dispose()
    second = Database(settings)
    await second.migrate()
    try:
        assert await second.outbox_transactional_id() == named
        assert named.startswith("spaces-outbox-")
    finally:
        await second.dispose()


async def test_the_upgrade_gives_existing_rows_distinct_uids(database_url: str) -> None:
    """A database with an outbox from before revision 0005: every row gets its uid."""
    from alembic import command

    from infra.migrations import alembic_config

    database = Database(Settings(database_url=database_url))
    try:
        async with database.engine.connect() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0004"))
            await conn.commit()
        async with database.session() as session, session.begin():
            for n in range(20):
                await session.execute(
                    text(
                        "INSERT INTO outbox (topic, key, value, created_at, published)"
                        " VALUES ('decisions', :key, '{}', :now, :published)"
                    ),
                    {"key": f"room-{n}", "now": utcnow(), "published": n < 10},
                )
        await database.migrate()
        rows = await all_ids(database)
        assert len(rows) == 20
        assert len({uid for _, uid in rows}) == 20
        assert all(re.fullmatch("[0-9a-f]{32}", uid) for _, uid in rows)
        assert len(await database.unpublished(100)) == 10
        assert (await database.outbox_transactional_id()).startswith("spaces-outbox-")
    finally:
        await database.dispose()
