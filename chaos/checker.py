"""The checker: what landed on the output topics against what the inputs require.

It is given every record that landed on the input topics (read from the beginning,
``read_committed``: kiosk re-sends, clock ticks and unreadable records included) and every
record on ``decisions``, ``usage-monthly``, ``occupancy`` and ``dead-letters``. The reference
model (``chaos.reference``) says which decisions, with which ids and fields, the inputs
require; the checker counts:

- **lost**: a required decision (by its deterministic ``event_id``) or dead letter that
  never landed;
- **duplicated**: a decision or dead letter that landed more than once, or a second
  decision of an input under an id the reference does not know (decided twice);
- **wrong**: a decision whose fields differ from the reference's, or one nobody asked for;
- **over capacity**: a ``checkin.admitted`` whose occupancy exceeds the capacity it names
  (read from the topic alone, whatever the reference says);
- **aggregate mismatches**: a monthly figure of ``usage-monthly`` (the latest value per
  key) that differs from the one the reference's decisions imply, or a month with
  activity that has no aggregate at all; and the latest ``occupancy`` of a room that differs
  from the reference's;
- **unmodelled**: inputs the reference does not judge (the run cannot be checked then).

Any of them non-zero fails the run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.reference import (
    FLOAT_FIELDS,
    TIME_FIELDS,
    Decision,
    Expected,
    InputTopics,
    Landed,
    Policy,
    Position,
    Reference,
    parse_time,
)

FLOAT_TOLERANCE = 0.001
"""Hours are rounded to 4 decimals on both sides; a sum of roundings may differ slightly."""
EXAMPLES = 10


@dataclass
class Outputs:
    """Every record that landed on the output topics, in offset order per partition."""

    decisions: list[Landed] = field(default_factory=list)
    usage: list[Landed] = field(default_factory=list)
    occupancy: list[Landed] = field(default_factory=list)
    dead_letters: list[Landed] = field(default_factory=list)


@dataclass
class Findings:
    inputs: int = 0
    resends: int = 0
    ticks: int = 0
    unreadable: int = 0
    decisions_expected: int = 0
    decisions_read: int = 0
    aggregates_read: int = 0
    dead_letters_expected: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    over_capacity: list[str] = field(default_factory=list)
    aggregate_mismatches: list[str] = field(default_factory=list)
    unmodelled: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "wrong": self.wrong,
            "over capacity": self.over_capacity,
            "aggregate mismatches": self.aggregate_mismatches,
            "unmodelled inputs": self.unmodelled,
        }

    @property
    def ok(self) -> bool:
        return not any(self.problems().values())

    def counts(self) -> list[tuple[str, int]]:
        """What was read, then each kind of problem found (the table's rows)."""
        read = [
            ("inputs (distinct event ids)", self.inputs),
            ("re-sends (same event id again)", self.resends),
            ("clock ticks", self.ticks),
            ("unreadable records", self.unreadable),
            ("decisions expected", self.decisions_expected),
            ("decisions read", self.decisions_read),
            ("dead letters expected", self.dead_letters_expected),
            ("monthly aggregates read", self.aggregates_read),
        ]
        return read + [(name, len(found)) for name, found in self.problems().items()]

    def examples(self) -> list[str]:
        lines = []
        for name, found in self.problems().items():
            for line in found[:EXAMPLES]:
                lines.append(f"{name}: {line}")
            if len(found) > EXAMPLES:
                lines.append(f"{name}: ... and {len(found) - EXAMPLES:,} more")
        return lines


def check(
    inputs: Iterable[Landed],
    outputs: Outputs,
    topics: InputTopics,
    policy: Policy | None = None,
) -> Findings:
    expected = Reference(topics, policy).run(inputs)
    findings = Findings(
        inputs=expected.inputs,
        resends=expected.resends,
        ticks=expected.ticks,
        unreadable=expected.unreadable,
        decisions_expected=len(expected.decisions),
        decisions_read=len(outputs.decisions),
        dead_letters_expected=len(expected.dead_letters),
        unmodelled=list(expected.unmodelled),
    )
    _check_decisions(expected, outputs.decisions, findings)
    _check_over_capacity(outputs.decisions, findings)
    _check_dead_letters(expected, outputs.dead_letters, findings)
    _check_usage(expected, outputs.usage, findings)
    _check_occupancy(expected, outputs.occupancy, findings)
    return findings


def _json(record: Landed) -> dict[str, Any] | None:
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _check_decisions(expected: Expected, landed: Sequence[Landed], findings: Findings) -> None:
    read: dict[str, list[dict[str, Any]]] = {}
    for record in landed:
        value = _json(record)
        if value is None or not isinstance(value.get("event_id"), str):
            findings.wrong.append(f"unreadable decision at {record.position}")
            continue
        read.setdefault(value["event_id"], []).append(value)
    causes = {d["caused_by"] for d in expected.decisions.values() if d["caused_by"] is not None}
    for event_id, want in expected.decisions.items():
        copies = read.get(event_id)
        if not copies:
            findings.lost.append(f"{_describe(want)} (event_id {event_id})")
            continue
        for _ in copies[1:]:
            findings.duplicated.append(f"{_describe(want)} landed {len(copies)} times")
        difference = differences(want, copies[0])
        if difference:
            findings.wrong.append(f"{_describe(want)}: {difference}")
    for event_id, copies in read.items():
        if event_id in expected.decisions:
            continue
        got = copies[0]
        if got.get("caused_by") in causes:
            findings.duplicated.append(
                f"{_describe(got)} is a second decision of input {got.get('caused_by')} "
                f"(event_id {event_id} is not one the input's decisions have)"
            )
        else:
            findings.wrong.append(f"{_describe(got)} was not expected (event_id {event_id})")


def _describe(decision: dict[str, Any]) -> str:
    reason = f" {decision['reason']}" if decision.get("reason") else ""
    return (
        f"{decision.get('type')}{reason} in {decision.get('room_id')} "
        f"caused by {decision.get('caused_by')}"
    )


def differences(want: Decision, got: dict[str, Any]) -> str:
    """The fields of ``got`` that differ from the reference's decision, or ''."""
    wrong = []
    for name, value in want.items():
        if name not in got:
            wrong.append(f"{name} missing (want {value!r})")
            continue
        actual = got[name]
        if name in TIME_FIELDS and isinstance(actual, str):
            try:
                same = parse_time(actual) == value
            except ValueError:
                same = False
        else:
            same = actual == value
        if not same:
            wrong.append(f"{name} {actual!r} (want {value!r})")
    return "; ".join(wrong)


def _check_over_capacity(landed: Sequence[Landed], findings: Findings) -> None:
    for record in landed:
        value = _json(record)
        if value is None or value.get("type") != "checkin.admitted":
            continue
        occupancy, capacity = value.get("occupancy"), value.get("capacity")
        if isinstance(occupancy, int) and isinstance(capacity, int) and occupancy > capacity:
            findings.over_capacity.append(
                f"{value.get('room_id')}: admitted {value.get('party_size')} to occupancy "
                f"{occupancy} of {capacity} (caused by {value.get('caused_by')})"
            )


def _check_dead_letters(expected: Expected, landed: Sequence[Landed], findings: Findings) -> None:
    read: Counter[Position] = Counter()
    for record in landed:
        value = _json(record)
        if value is None:
            findings.wrong.append(f"unreadable dead letter at {record.position}")
            continue
        where = (str(value.get("topic")), _int(value.get("partition")), _int(value.get("offset")))
        read[where] += 1
    for where, why in expected.dead_letters.items():
        if read[where] == 0:
            findings.lost.append(f"dead letter of {where} ({why})")
        elif read[where] > 1:
            findings.duplicated.append(f"dead letter of {where} landed {read[where]} times")
    for where in read:
        if where not in expected.dead_letters:
            findings.wrong.append(f"dead letter of {where} was not expected")


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def latest_by_key(landed: Sequence[Landed]) -> dict[str, dict[str, Any]]:
    """The last value per key (a compacted topic may still hold older ones)."""
    out: dict[str, dict[str, Any]] = {}
    for record in sorted(landed, key=lambda r: (r.partition, r.offset)):
        value = _json(record)
        if record.key is not None and value is not None:
            out[record.key.decode("utf-8", "replace")] = value
    return out


def _check_usage(expected: Expected, landed: Sequence[Landed], findings: Findings) -> None:
    latest = latest_by_key(landed)
    findings.aggregates_read = len(latest)
    for key in sorted(expected.usage.keys() - latest.keys()):
        findings.aggregate_mismatches.append(f"{key}: no aggregate on usage-monthly")
    for key, got in sorted(latest.items()):
        try:
            want = expected.usage.expected(key)
        except ValueError:
            findings.aggregate_mismatches.append(f"{key}: not a usage key")
            continue
        wrong = []
        for name, value in want.items():
            actual = got.get(name)
            if name in FLOAT_FIELDS:
                same = isinstance(actual, int | float) and abs(actual - value) <= FLOAT_TOLERANCE
            else:
                same = actual == value
            if not same:
                wrong.append(f"{name} {actual!r} (want {value!r})")
        if wrong:
            findings.aggregate_mismatches.append(f"{key}: {'; '.join(wrong)}")


def _check_occupancy(expected: Expected, landed: Sequence[Landed], findings: Findings) -> None:
    latest = latest_by_key(landed)
    for room_id, (occupancy, capacity) in sorted(expected.occupancy.items()):
        got = latest.get(room_id)
        if got is None:  # configuring a room publishes its first figure
            findings.aggregate_mismatches.append(f"occupancy of {room_id}: none published")
            continue
        if (got.get("occupancy"), got.get("capacity")) != (occupancy, capacity):
            findings.aggregate_mismatches.append(
                f"occupancy of {room_id}: {got.get('occupancy')}/{got.get('capacity')} "
                f"(want {occupancy}/{capacity})"
            )
