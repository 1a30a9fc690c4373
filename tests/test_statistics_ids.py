"""The key the statistics remember each decision by: led by the time it was decided, so the id
memory's index grows at its end (``consumers.statistics.decision_identity``), and still
found under the bare ``event_id`` the statistics stored before.

``process_batch`` + ``UsageStatistics`` on SQLite (and PostgreSQL when configured), without
Kafka, as in ``tests/test_statistics_publishing.py``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from consumers.statistics import UsageStatistics, decision_identity
from infra.db import Database, OutboxRow, ProcessedInput
from schemas.decisions import CheckinAdmitted, Decision
from tests.pure_domain import pure
from tests.records import Rec
from tests.test_statistics_publishing import (
    aggregates,
    decisions,
    fold,
    fold_in_threes,
    latest,
    reference,
    settings_for,
)

instants = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
)


@given(instants, instants)
def test_the_keys_sort_as_the_times_the_decisions_were_decided(
    first: datetime, second: datetime
) -> None:
    a, b = decisions(rooms=1, parties=2)[1:3]
    a = a.model_copy(update={"decided_at": first})
    b = b.model_copy(update={"decided_at": second})
    ka, kb = decision_identity(a), decision_identity(b)
    assert len(ka) == len(kb) <= 64  # the column's width
    assert ka.rpartition("/")[2] == str(a.event_id)
    if first.replace(microsecond=first.microsecond // 1000 * 1000) < second.replace(
        microsecond=second.microsecond // 1000 * 1000
    ):
        assert ka < kb


def test_the_key_carries_the_exact_millisecond() -> None:
    """``timestamp() * 1000`` gives 1084665021471 for this instant (a float a hair under);
    the key must not, or keys of the same millisecond would sort by their random ids."""
    decision = decisions(rooms=1, parties=1)[0].model_copy(
        update={"decided_at": datetime(2004, 5, 15, 23, 50, 21, 472000, tzinfo=UTC)}
    )
    assert decision_identity(decision).startswith(f"{1_084_665_021_472:012x}/")


async def dead_letters(db: Database, statistics: UsageStatistics) -> list[dict[str, Any]]:
    """The dead letters the statistics put in the outbox, parsed."""
    async with db.session() as session:
        values = await session.scalars(
            select(OutboxRow.value).where(
                OutboxRow.topic == statistics.settings.topics.dead_letters
            )
        )
        return [json.loads(value) for value in values]


async def remembered(db: Database, group: str) -> list[str]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(ProcessedInput.event_id)
                .where(ProcessedInput.consumer == group)
                .order_by(ProcessedInput.offset)
            )
        )


def as_records(decided: list[Decision]) -> list[Rec]:
    return [Rec("decisions", offset, decision) for offset, decision in enumerate(decided)]


async def test_each_decision_is_remembered_under_its_time_then_its_id(
    db: Database, database_url: str
) -> None:
    decided = decisions()
    records = as_records(decided)
    statistics = UsageStatistics(settings_for(database_url, 0))
    await fold_in_threes(db, statistics, records)
    keys = await remembered(db, statistics.group)
    assert keys == [decision_identity(d) for d in decided]
    # In the order they were decided, so at the end of the index as they come.
    by_time = sorted(decided, key=lambda d: (d.decided_at, keys[decided.index(d)]))
    assert sorted(keys) == [decision_identity(d) for d in by_time]


async def test_a_decision_counted_under_its_bare_id_is_not_counted_again_after_the_upgrade(
    db: Database, database_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statistics before the key changed stored the bare ``event_id``. A process of
    that version counts some decisions and dies before committing their offsets; the new
    version reads them again and must skip them."""
    decided = decisions()
    records = as_records(decided)
    # From source: an object of a compiled class takes no attribute of its own.
    before = pure("consumers.statistics").UsageStatistics(settings_for(database_url, 60_000))
    monkeypatch.setattr(before, "identity", lambda event: str(event.event_id))
    half = len(records) // 2
    await fold_in_threes(db, before, records[:half])
    assert set(await remembered(db, before.group)) == {
        str(decision.event_id) for decision in decided[:half]
    }
    after = UsageStatistics(settings_for(database_url, 60_000))
    await fold_in_threes(db, after, records)
    await fold(db, after, [])
    assert after.settled()
    keys = await remembered(db, after.group)
    assert len(keys) == len(records)  # the counted half is not remembered a second time
    topic = after.settings.topics.usage_monthly
    assert latest(await aggregates(db, topic)) == await reference(tmp_path, records)


async def test_a_re_sent_decision_with_other_content_is_still_dead_lettered(
    db: Database, database_url: str
) -> None:
    """The same ``event_id`` and ``decided_at`` with other content is the same key with
    another digest: dead-lettered, as before the key changed."""
    decided = decisions()
    records = as_records(decided)
    statistics = UsageStatistics(settings_for(database_url, 0))
    await fold(db, statistics, records[:6])
    original = decided[5]
    assert isinstance(original, CheckinAdmitted)
    altered = original.model_copy(update={"party_size": original.party_size + 1})
    await fold(db, statistics, [Rec("decisions", len(records), altered)])
    letters = await dead_letters(db, statistics)
    assert len(letters) == 1
    assert str(original.event_id) in letters[0]["reason"]


def test_the_module_names_the_key_it_documents() -> None:
    assert UsageStatistics.identity is not None
    assert decision_identity(decisions(rooms=1, parties=1)[0]).count("/") == 1
    later = decisions(rooms=1, parties=1)[0]
    assert decision_identity(
        later.model_copy(update={"decided_at": later.decided_at + timedelta(milliseconds=1)})
    ) > decision_identity(later)
    assert uuid.UUID(decision_identity(later).rpartition("/")[2]) == later.event_id


async def test_a_decision_the_fold_refuses_is_dead_lettered_and_the_others_counted(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one path of ``UsageStatistics.handle`` that reads the clock: the dead letter's
    ``received_at`` is the statistics' time, the reason names the fold's error."""
    decided = decisions()
    refused = decided[6]
    # The consumer's module from source: a compiled one calls ``fold_changes`` directly.
    statistics_module = pure("consumers.statistics")
    fold_changes = statistics_module.fold_changes

    def refusing(room: object, center: object, decision: Decision) -> object:
        if decision.event_id == refused.event_id:
            raise ValueError("a month the fold cannot place")
        return fold_changes(room, center, decision)  # type: ignore[arg-type]

    monkeypatch.setattr(statistics_module, "fold_changes", refusing)
    at = datetime(2026, 11, 10, 1, 2, 3, tzinfo=UTC)
    statistics = statistics_module.UsageStatistics(settings_for(database_url, 0), clock=lambda: at)
    await fold(db, statistics, as_records(decided))
    letters = await dead_letters(db, statistics)
    assert len(letters) == 1
    (letter,) = letters
    assert letter["reason"] == "cannot count decision: a month the fold cannot place"
    assert letter["offset"] == 6
    assert datetime.fromisoformat(letter["received_at"]) == at
    # Every decision, the refused one too, is remembered: none is read twice.
    assert len(await remembered(db, statistics.group)) == len(decided)
