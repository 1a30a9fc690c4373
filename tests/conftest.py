"""Shared fixtures: the real broker (once per session), isolated topics and databases.

Integration tests talk to the Kafka broker that ``infra/`` starts (or to the
cluster in ``SPACES_KAFKA_BOOTSTRAP``). Each test gets its own topic names,
consumer groups and database, so tests never see each other's messages.
Database tests run on SQLite and on PostgreSQL (``SPACES_TEST_POSTGRES_URL``,
set by ``make test`` after it starts PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (see below)
import pytest

from infra.db import Database
from infra.settings import Settings, Topics

# Imported here, at collection: otherwise hypothesis's pytest plugin imports it first at
# the end of a session that ran no property test, and CPython 3.11.7's ast.parse then
# fails in pytest's assertion rewriting ("AST constructor recursion depth mismatch").

POSTGRES_URL = os.environ.get("SPACES_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The broker, started once for the whole session (reusing cached jars)."""
    from infra import kafka_local

    home = Path(os.environ.get("SPACES_TEST_HOME", ".spaces/test-broker")).resolve()
    settings = Settings(
        home=home,
        kafka_port=int(os.environ.get("SPACES_TEST_KAFKA_PORT", "19192")),
        kafka_controller_port=int(os.environ.get("SPACES_TEST_KAFKA_CONTROLLER_PORT", "19193")),
    )
    if not settings.uses_external_kafka and kafka_local.node_pid(settings) is None:
        # Every test makes topics of its own: storage kept from earlier sessions grew by
        # thousands of partitions a run, until the broker ran out of file descriptors
        # mid-run, then could not start within its minute. A session starts empty.
        shutil.rmtree(kafka_local.broker_paths(settings).data, ignore_errors=True)
    info = kafka_local.up(settings)
    print(f"\nkafka broker ready at {settings.bootstrap} after {info.start_seconds:.1f}s")
    yield settings
    if not settings.uses_external_kafka and not os.environ.get("SPACES_TEST_KEEP_BROKER"):
        kafka_local.down(settings)


def _postgres_admin(statement: str) -> None:
    """``statement`` on the test server's maintenance database (in a thread: fixtures may
    run inside the session's event loop)."""
    import concurrent.futures

    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL
    url = make_url(POSTGRES_URL)

    async def execute() -> None:
        conn = await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.host,
            port=url.port,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, execute()).result()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh database on the test server, dropped afterwards.

    Dropped ``WITH (FORCE)``: a test that failed may leave connections open. Kept, the
    databases of every run piled up on a developer's server (3,910 of them, 30 GB).
    """
    from sqlalchemy.engine import make_url

    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("SPACES_TEST_POSTGRES_URL is not set: `make test` starts PostgreSQL")
        pytest.skip("PostgreSQL not configured (run through `make test`)")
    name = f"spaces_test_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'spaces.db'}"
        return
    with postgres_database() as url:
        yield url


def isolated_topics() -> Topics:
    suffix = uuid.uuid4().hex[:8]
    base = Topics()
    return Topics(**{name: f"{getattr(base, name)}-{suffix}" for name in Topics.model_fields})


def isolated_settings(base: Settings, database_url: str, **overrides: Any) -> Settings:
    """``base`` with its own topics, consumer groups and database: a test sees only its own
    records, whatever the others left on the broker."""
    suffix = uuid.uuid4().hex[:8]
    return base.model_copy(
        update={
            "topics": isolated_topics(),
            "database_url": database_url,
            "authority_group": f"room-authority-{suffix}",
            "statistics_group": f"usage-statistics-{suffix}",
            **overrides,
        }
    )


@pytest.fixture
async def stack_settings(kafka_settings: Settings, database_url: str) -> AsyncIterator[Settings]:
    """Settings for one integration test: its own topics, groups and database."""
    from infra.kafka_local import ensure_topics

    settings = isolated_settings(
        kafka_settings, database_url, partitions=3, relay_interval_s=0.02, batch_timeout_ms=50
    )
    await ensure_topics(settings)
    yield settings


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend (``database_url``), disposed after the test."""
    database = Database(Settings(database_url=database_url))
    await database.migrate()
    yield database
    await database.dispose()
