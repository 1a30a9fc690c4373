"""``Database``: the engines, SQLite's writer lock, the units of work, and the queries of
the outbox relay, the locks and the pruning."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.engine import Result, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from infra.db.engine import (
    CHECKPOINT_INTERVAL_S,
    AnySession,
    InlineSession,
    _passive_checkpoint,
    is_sqlite,
    make_engine,
    make_inline_engine,
    migrate,
)
from infra.db.tables import OutboxIdentity, OutboxRow, ProcessedInput, _table, utcnow
from infra.db.unit_of_work import UnitOfWork
from infra.observability import observe_checkpoint, observe_writer_lock_wait
from infra.settings import Settings

log = logging.getLogger("infra.db")  # the package's name: the logs' ``logger`` as before the split


class PendingMessage(NamedTuple):
    """An outbox row not yet published."""

    id: int
    uid: str
    topic: str
    key: str | None
    value: str


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as runs of consecutive ids: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for ident in ids:
        if runs and ident == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], ident)
        else:
            runs.append((ident, ident))
    return runs


class Database:
    """Engine plus a factory of units of work.

    SQLite has one writer at a time: within a process every write transaction waits its
    turn on one lock (a queue in front of the database) instead of meeting
    ``database is locked`` after the busy timeout; across processes SQLite's own busy
    wait applies, and every transaction is short.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self._sqlite = is_sqlite(settings.database_url)
        self._writer = asyncio.Lock()
        self._lock_file: TextIO | None = None
        # SQLite writers begin IMMEDIATE (the write lock up front); reads go through an
        # engine whose transactions never take it, so the relay's polling and the clock
        # never wait for a consumer's batch, nor make it wait.
        self.reader = make_engine(settings, read_only=True) if self._sqlite else self.engine
        self._inline_writer = (
            make_inline_engine(settings, read_only=False) if self._sqlite else None
        )
        self._inline_reader = make_inline_engine(settings, read_only=True) if self._sqlite else None
        database = make_url(settings.database_url).database if self._sqlite else None
        self._wal_file = database if database and database != ":memory:" else None
        """The SQLite file whose WAL the service checkpoints (``_checkpoint_soon``)."""
        self._checkpointing: asyncio.Task[None] | None = None
        self._last_checkpoint = 0.0

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Held around every write transaction on SQLite; a no-op on PostgreSQL.

        In the process, an asyncio lock; across processes (``spaces run`` runs the
        statistics apart), a file lock taken in a thread: the kernel hands it over the
        moment it is released, where SQLite's own busy handler polls with sleeps of up
        to 100 ms.
        """
        if not self._sqlite:
            yield
            return
        asked = time.perf_counter()
        async with self._writer:
            if self._lock_file is None:
                database = make_url(self.settings.database_url).database or "spaces"
                path = Path(f"{database}.writer.lock")
                path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = path.open("a")  # noqa: ASYNC230 - once per process
            handle = self._lock_file
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no thread hop
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            observe_writer_lock_wait(time.perf_counter() - asked)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        if self._wal_file is not None:
            self._checkpoint_soon(self._wal_file)

    def _checkpoint_soon(self, path: str) -> None:
        """After a write: checkpoint the WAL in a thread, at most every
        ``CHECKPOINT_INTERVAL_S`` (a write meanwhile is in the next one).

        Outside the writer lock, so no writer waits for it (``WAL_AUTOCHECKPOINT_PAGES``).
        A checkpointer of another process at the same time finds SQLite busy and leaves
        the pages to the other one."""
        loop = asyncio.get_running_loop()
        task = self._checkpointing
        if task is None or task.done() or task.get_loop() is not loop:  # (a loop that ended)
            self._checkpointing = loop.create_task(self._checkpoint(path))

    async def _checkpoint(self, path: str) -> None:
        try:
            await asyncio.sleep(self._last_checkpoint + CHECKPOINT_INTERVAL_S - time.monotonic())
            self._last_checkpoint = started = time.monotonic()
            await asyncio.to_thread(_passive_checkpoint, path)
            observe_checkpoint(time.monotonic() - started)
        except sqlite3.Error as error:  # busy: another process's checkpoint copies them
            log.debug("checkpoint skipped", extra={"error": str(error)})
        except OSError as error:  # the next write tries again; SQLite's own is the net
            log.warning("checkpoint failed", extra={"error": str(error)})
        finally:
            if self._checkpointing is asyncio.current_task():
                self._checkpointing = None

    async def checkpoint_finished(self) -> None:
        """Wait for the checkpoint due, if any (tests)."""
        task = self._checkpointing
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)

    async def migrate(self) -> None:
        async with self.writing():
            await migrate(self.engine)

    @asynccontextmanager
    async def unit_of_work(self, consumer: str) -> AsyncIterator[UnitOfWork]:
        """Reads while inside; the writes commit, all together, on leaving normally.

        PostgreSQL: one transaction (row locks taken by reads are held to the commit).
        SQLite: the reads see a snapshot and take no lock; the writes are one short
        transaction under the writer lock.
        """
        if not self._sqlite:
            async with (
                AsyncSession(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                uow = UnitOfWork(session, consumer)
                yield uow
                await uow.flush(session)
            return
        assert self._inline_reader is not None
        with Session(self._inline_reader, expire_on_commit=False) as reading:
            uow = UnitOfWork(InlineSession(reading), consumer)
            yield uow
            reading.rollback()  # ends the read snapshot
        async with self.writing(), self._write_session() as writing:
            await uow.flush(writing)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the writer engine. On SQLite its transactions take the write lock
        (``BEGIN IMMEDIATE``), so use it inside ``writing`` only: a transaction held
        outside it would make an inline writer of the same event loop wait for a lock
        that cannot be released meanwhile. Only reading? ``read_session``."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads: on SQLite it never takes or waits for the write lock."""
        async with AsyncSession(self.reader, expire_on_commit=False) as session:
            yield session

    async def mark_published(self, ids: list[int]) -> None:
        if not ids:
            return
        now = utcnow()
        outbox = _table(OutboxRow).c
        # The relay sends rows in id order: the ids are a few runs of consecutive ids, and
        # a range per run is cheaper to bind than one parameter per id.
        runs = _runs(sorted(ids))
        async with self.writing(), self._write_session() as session:
            for start in range(0, len(runs), 200):
                await session.execute(
                    update(_table(OutboxRow))
                    .where(
                        or_(*(outbox.id.between(lo, hi) for lo, hi in runs[start : start + 200]))
                    )
                    .values(published=True, published_at=now)
                )

    @asynccontextmanager
    async def _write_session(self) -> AsyncIterator[AnySession]:
        """A write transaction (inside ``writing``): inline on SQLite, see ``InlineSession``."""
        if self._inline_writer is None:
            async with self.session() as session, session.begin():
                yield session
            return
        with Session(self._inline_writer, expire_on_commit=False) as inline, inline.begin():
            yield InlineSession(inline)

    @property
    def ids_follow_commits(self) -> bool:
        """Whether a row committed later always has a greater id.

        True on SQLite: writers take turns (``writing``) and ``AUTOINCREMENT`` gives each
        row the greatest id ever plus one. Not on PostgreSQL: a transaction that drew an
        id from the sequence may commit after one that drew a greater id.
        """
        return self._sqlite

    async def unpublished(self, limit: int, after: int = 0) -> list[PendingMessage]:
        """The oldest ``limit`` unpublished rows with an id greater than ``after``."""
        query = self._unpublished_query(limit, after)
        if self._inline_reader is not None:  # the relay's poll: inline, see ``InlineSession``
            with self._inline_reader.connect() as connection:
                return self._unpublished(connection.execute(query))
        async with self.read_session() as session:
            return self._unpublished(await session.execute(query))

    @staticmethod
    def _unpublished_query(limit: int, after: int = 0) -> Any:
        # Core columns: the ORM's row loading cost more than the query.
        outbox = _table(OutboxRow).c
        return (
            select(outbox.id, outbox.uid, outbox.topic, outbox.key, outbox.value)
            .where(outbox.published.is_(False), outbox.id > after)
            .order_by(outbox.id)
            .limit(limit)
        )

    @staticmethod
    def _unpublished(rows: Result[Any]) -> list[PendingMessage]:
        return [PendingMessage(*row) for row in rows.all()]

    async def outbox_backlog(self, cap: int = 100_000) -> int:
        """Outbox rows not published yet, counted up to ``cap`` (the ``/metrics`` gauge).

        Reads only ``ix_outbox_unpublished``; the cap keeps a sample cheap however far
        the relay is behind."""
        async with self.read_session() as session:
            pending = (
                select(OutboxRow.id).where(OutboxRow.published.is_(False)).limit(cap).subquery()
            )
            return int(await session.scalar(select(text("count(*)")).select_from(pending)) or 0)

    async def outbox_transactional_id(self) -> str:
        """The ``transactional.id`` of this outbox (see ``OutboxIdentity``)."""
        async with self.read_session() as session:
            found = await session.scalar(
                select(OutboxIdentity.transactional_id).where(OutboxIdentity.id == 1)
            )
        if found is None:
            raise RuntimeError("outbox_identity is empty: run the migrations (0005)")
        return found

    @asynccontextmanager
    async def exclusive(
        self, name: str, stop: asyncio.Event | None = None, poll_s: float = 0.5
    ) -> AsyncIterator[bool]:
        """Hold the lock ``name`` of this database, across processes, while inside.

        Waits while another process holds it: a second outbox relay is a standby that
        takes over when the first stops or dies (PostgreSQL releases an advisory lock
        with its connection; the OS releases a file lock with its process). Yields
        False, holding nothing, if ``stop`` is set while waiting.
        """
        stopped = stop or asyncio.Event()
        if is_sqlite(self.settings.database_url):
            database = make_url(self.settings.database_url).database or "spaces"
            path = Path(f"{database}.{name}.lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:  # noqa: ASYNC230 - a lock file, opened once
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if stopped.is_set():
                            yield False
                            return
                        await asyncio.sleep(poll_s)
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock = text("SELECT pg_try_advisory_lock(:key)")
            while not (await conn.execute(lock, {"key": key})).scalar():
                if stopped.is_set():
                    yield False
                    return
                await asyncio.sleep(poll_s)
            try:
                yield True
            finally:
                # The connection may be the reason we stop (it dropped, and the lock with it).
                with suppress(DBAPIError):
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    async def prune(self, now: datetime) -> tuple[int, int]:
        """Forget consumed ids and published outbox rows past their retention.

        A redelivery can only come from Kafka, which keeps inputs for days, not the
        30 days ids are remembered; a published outbox row is only needed until it is
        in the log. Returns (ids forgotten, outbox rows deleted).
        """
        id_horizon = now - timedelta(days=self.settings.processed_retention_days)
        outbox_horizon = now - timedelta(days=self.settings.outbox_retention_days)
        async with self.writing(), self.session() as session, session.begin():
            ids = await session.execute(
                delete(ProcessedInput).where(ProcessedInput.processed_at < id_horizon)
            )
            rows = await session.execute(
                delete(OutboxRow).where(
                    OutboxRow.published.is_(True), OutboxRow.published_at < outbox_horizon
                )
            )
        return int(getattr(ids, "rowcount", 0)), int(getattr(rows, "rowcount", 0))

    async def dispose(self) -> None:
        task, self._checkpointing = self._checkpointing, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()  # SQLite checkpoints as the last connection closes
            with suppress(asyncio.CancelledError):
                await task
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()
        for inline in (self._inline_reader, self._inline_writer):
            if inline is not None:
                inline.dispose()
