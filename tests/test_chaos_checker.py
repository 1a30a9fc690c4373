"""The chaos checker catches what it must: each kind of fault makes it report non-zero.

The outputs a perfect service would publish are built from the reference model itself;
each test then breaks them the way a fault would (a decision dropped, published twice,
decided twice under a new id, with the wrong outcome, an admission above capacity, a
wrong monthly figure, a dead letter lost) and checks the count and the exit code.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chaos.checker import Findings, Outputs, check
from chaos.reference import InputTopics, Landed, Reference
from chaos.report import EXIT_MISMATCH, EXIT_NOT_SETTLED, EXIT_PASSED, Faults, summary
from chaos.traffic import Outgoing, Traffic, as_landed, configurations, plan_rooms

TOPICS = InputTopics()
START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def inputs(count: int = 1500, seed: int = 5) -> list[Landed]:
    plans = plan_rooms(30, seed)
    traffic = Traffic(plans, seed, START)
    items: list[Outgoing] = []
    for i in range(count):
        item = traffic.next(START + timedelta(seconds=5 + i))
        items.append(item)
        if item.retryable and i % 25 == 0:
            items.append(item)  # a kiosk retry
    return as_landed(configurations(plans, START) + items, TOPICS, 6)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(value)


def _record(topic: str, offset: int, key: str | None, value: dict[str, Any]) -> Landed:
    encoded = json.dumps(value, default=_json).encode()
    return Landed(topic, 0, offset, 0, key.encode() if key else None, encoded)


def perfect(landed: list[Landed]) -> Outputs:
    """What a service without faults publishes: exactly the reference's outputs."""
    expected = Reference(TOPICS).run(landed)
    out = Outputs()
    for offset, decision in enumerate(expected.decisions.values()):
        out.decisions.append(_record("decisions", offset, decision["room_id"], decision))
    for offset, (topic, partition, where) in enumerate(expected.dead_letters):
        letter = {"topic": topic, "partition": partition, "offset": where, "reason": "x"}
        out.dead_letters.append(_record("dead-letters", offset, None, letter))
    for offset, key in enumerate(sorted(expected.usage.keys())):
        out.usage.append(_record("usage-monthly", offset, key, expected.usage.expected(key)))
    for offset, (room_id, (occupancy, capacity)) in enumerate(expected.occupancy.items()):
        gauge = {"room_id": room_id, "occupancy": occupancy, "capacity": capacity}
        out.occupancy.append(_record("occupancy", offset, room_id, gauge))
    return out


@pytest.fixture(scope="module")
def landed() -> list[Landed]:
    return inputs()


def value(record: Landed) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(record.value or b"")
    return parsed


def with_value(record: Landed, new: dict[str, Any]) -> Landed:
    return replace(record, value=json.dumps(new).encode())


def exit_code(findings: Findings) -> int:
    return summary("test", findings, Faults(), settled=True, seconds=1.0)[1]


def first(out: list[Landed], kind: str) -> int:
    return next(i for i, r in enumerate(out) if value(r)["type"] == kind)


def test_a_perfect_service_passes(landed: list[Landed]) -> None:
    findings = check(landed, perfect(landed), TOPICS)
    assert findings.ok, findings.examples()
    assert exit_code(findings) == EXIT_PASSED
    assert findings.resends > 0 and findings.unreadable > 0
    assert findings.decisions_read == findings.decisions_expected > 1500


def test_a_dropped_decision_is_lost(landed: list[Landed]) -> None:
    out = perfect(landed)
    del out.decisions[first(out.decisions, "checkin.admitted")]
    findings = check(landed, out, TOPICS)
    assert len(findings.lost) == 1
    assert "checkin.admitted" in findings.lost[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_decision_published_twice_is_duplicated(landed: list[Landed]) -> None:
    out = perfect(landed)
    out.decisions.append(out.decisions[first(out.decisions, "booking.confirmed")])
    findings = check(landed, out, TOPICS)
    assert len(findings.duplicated) == 1 and not findings.lost and not findings.wrong
    assert exit_code(findings) == EXIT_MISMATCH


def test_an_input_decided_twice_under_a_new_id_is_duplicated(landed: list[Landed]) -> None:
    out = perfect(landed)
    again = value(out.decisions[first(out.decisions, "checkout.recorded")])
    again["event_id"] = str(uuid.uuid4())
    out.decisions.append(_record("decisions", 10**6, again["room_id"], again))
    findings = check(landed, out, TOPICS)
    assert len(findings.duplicated) == 1
    assert "second decision" in findings.duplicated[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_wrong_outcome_is_wrong(landed: list[Landed]) -> None:
    out = perfect(landed)
    i = first(out.decisions, "checkin.admitted")
    denied = value(out.decisions[i]) | {"type": "checkin.denied", "reason": "room_full"}
    out.decisions[i] = with_value(out.decisions[i], denied)
    findings = check(landed, out, TOPICS)
    assert len(findings.wrong) == 1 and "type 'checkin.denied'" in findings.wrong[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_wrong_reason_or_time_is_wrong(landed: list[Landed]) -> None:
    out = perfect(landed)
    i = first(out.decisions, "booking.rejected")
    changed = value(out.decisions[i])
    changed["reason"] = "overlap" if changed["reason"] != "overlap" else "over_capacity"
    out.decisions[i] = with_value(out.decisions[i], changed)
    j = first(out.decisions, "booking.confirmed")
    moved = value(out.decisions[j])
    moved["decided_at"] = (
        datetime.fromisoformat(moved["decided_at"]) + timedelta(seconds=1)
    ).isoformat()
    out.decisions[j] = with_value(out.decisions[j], moved)
    findings = check(landed, out, TOPICS)
    assert len(findings.wrong) == 2
    assert exit_code(findings) == EXIT_MISMATCH


def test_the_same_instant_in_another_offset_is_not_wrong(landed: list[Landed]) -> None:
    out = perfect(landed)
    i = first(out.decisions, "booking.confirmed")
    same = value(out.decisions[i])
    same["decided_at"] = datetime.fromisoformat(same["decided_at"]).astimezone(UTC).isoformat()
    same["starts_at"] = same["starts_at"].replace("+00:00", "Z")
    out.decisions[i] = with_value(out.decisions[i], same)
    assert check(landed, out, TOPICS).ok


def test_an_admission_above_capacity_is_reported_from_the_topic_alone(
    landed: list[Landed],
) -> None:
    out = perfect(landed)
    i = first(out.decisions, "checkin.admitted")
    over = value(out.decisions[i])
    over["occupancy"] = over["capacity"] + 1
    out.decisions[i] = with_value(out.decisions[i], over)
    findings = check(landed, out, TOPICS)
    assert len(findings.over_capacity) == 1
    assert len(findings.wrong) == 1  # and the occupancy is not the reference's
    assert exit_code(findings) == EXIT_MISMATCH


def test_an_unexpected_decision_is_wrong(landed: list[Landed]) -> None:
    out = perfect(landed)
    spurious = value(out.decisions[first(out.decisions, "booking.confirmed")])
    spurious |= {"type": "booking.released", "event_id": str(uuid.uuid4()), "caused_by": None}
    out.decisions.append(_record("decisions", 10**6, spurious["room_id"], spurious))
    findings = check(landed, out, TOPICS)
    assert len(findings.wrong) == 1 and "not expected" in findings.wrong[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_wrong_monthly_figure_is_an_aggregate_mismatch(landed: list[Landed]) -> None:
    out = perfect(landed)
    i = next(i for i, r in enumerate(out.usage) if value(r).get("visits"))
    figures = value(out.usage[i])
    figures["visits"] += 1
    out.usage.append(replace(with_value(out.usage[i], figures), offset=10**6))  # the latest
    findings = check(landed, out, TOPICS)
    assert len(findings.aggregate_mismatches) == 1 and "visits" in findings.aggregate_mismatches[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_stale_hours_figure_and_a_missing_month_are_aggregate_mismatches(
    landed: list[Landed],
) -> None:
    out = perfect(landed)
    i = next(i for i, r in enumerate(out.usage) if value(r).get("booked_hours"))
    figures = value(out.usage[i])
    figures["booked_hours"] += 1.0
    out.usage[i] = with_value(out.usage[i], figures)
    del out.usage[-1]
    findings = check(landed, out, TOPICS)
    assert len(findings.aggregate_mismatches) == 2
    assert any("no aggregate" in line for line in findings.aggregate_mismatches)
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_wrong_final_occupancy_is_a_mismatch(landed: list[Landed]) -> None:
    out = perfect(landed)
    gauge = value(out.occupancy[0])
    gauge["occupancy"] += 1
    out.occupancy.append(replace(with_value(out.occupancy[0], gauge), offset=10**6))
    findings = check(landed, out, TOPICS)
    assert len(findings.aggregate_mismatches) == 1
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_dead_letter_lost_or_published_twice(landed: list[Landed]) -> None:
    out = perfect(landed)
    assert out.dead_letters  # the unreadable record's
    twice = perfect(landed)
    twice.dead_letters.append(twice.dead_letters[0])
    findings = check(landed, twice, TOPICS)
    assert len(findings.duplicated) == 1 and "dead letter" in findings.duplicated[0]
    assert exit_code(findings) == EXIT_MISMATCH
    out.dead_letters.clear()
    findings = check(landed, out, TOPICS)
    assert len(findings.lost) == 1 and "dead letter" in findings.lost[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_an_input_the_reference_does_not_model_fails_the_run() -> None:
    landed = inputs(count=50)
    again = next(r for r in landed if b'"room.configured"' in (r.value or b""))
    event = json.loads(again.value or b"")
    event["event_id"] = str(uuid.uuid4())
    twice = replace(again, offset=10**6, value=json.dumps(event).encode())
    findings = check([*landed, twice], perfect(landed), TOPICS)
    assert findings.unmodelled and "configured twice" in findings.unmodelled[0]
    assert exit_code(findings) == EXIT_MISMATCH


def test_a_run_that_did_not_settle_fails_even_when_what_landed_is_right(
    landed: list[Landed],
) -> None:
    findings = check(landed, perfect(landed), TOPICS)
    text, code = summary("run", findings, Faults(kills=3), settled=False, seconds=10.0)
    assert code == EXIT_NOT_SETTLED
    assert "| SIGKILLs of service processes" in text and "FAIL" in text


def test_the_table_names_every_count() -> None:
    landed = inputs(count=100)
    findings = check(landed, perfect(landed), TOPICS)
    text, code = summary("run", findings, Faults(kills=12, broker_restarts=1), True, 60.0)
    assert code == EXIT_PASSED
    for row in (
        "inputs",
        "re-sends",
        "SIGKILLs",
        "rebalances",
        "broker restarts",
        "lost",
        "duplicated",
        "wrong",
        "over capacity",
        "aggregate mismatches",
        "PASS",
    ):
        assert row in text, row
