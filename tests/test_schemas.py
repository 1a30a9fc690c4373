"""The schemas against the wire contract (contract-v1), and the exported JSON Schema/AsyncAPI.

Messages are written here by hand, as JSON, the way a kiosk or dashboard team would write
them from the contract page, and parsed with the adapters the consumers use.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from consumers.statistics import UsageStatistics
from infra.settings import Settings
from schemas.decisions import DECISION_ADAPTER
from schemas.export import TOPICS, USAGE_KEY, export_all, message_type
from schemas.inputs import BOOKING_ADAPTER, CAPACITY_ADAPTER, CHECKIN_ADAPTER, Checkin
from schemas.outputs import DeadLetter, Occupancy, UsageMonthly, usage_key
from service_layer.processing import content_digest

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "schemas"

# --- the contract's tables, copied from contract-v1 -----------------------------------

INPUT_COMMON = ["type", "event_id", "occurred_at", "room_id"]
CONTRACT_INPUTS: dict[str, dict[str, list[str]]] = {
    "capacity": {
        "room.configured": [
            "center_id",
            "name",
            "capacity",
            "booking_mode",
            "opens",
            "closes",
            "timezone",
        ],
        "room.capacity_changed": ["capacity", "reason"],
        "session.scheduled": ["session_id", "title", "starts_at", "ends_at", "capacity"],
    },
    "bookings": {
        "booking.requested": ["booking_id", "member_id", "party_size", "starts_at", "ends_at"],
        "booking.cancel_requested": ["booking_id", "member_id"],
        "enrollment.requested": ["session_id", "member_id", "party_size"],
        "enrollment.cancel_requested": ["session_id", "member_id"],
    },
    "checkins": {
        "checkin": ["kiosk_id", "party_size", "member_id", "booking_id", "session_id"],
        "checkout": ["kiosk_id", "party_size", "member_id"],
    },
}
# Our addition on `capacity`: the scheduler's clock tick.
ADDED_INPUT_TYPES = {"capacity": {"clock.tick"}}

DECISION_COMMON = ["type", "event_id", "caused_by", "room_id", "decided_at"]
CONTRACT_DECISIONS: dict[str, list[str]] = {
    "room.configured": [
        "center_id",
        "name",
        "capacity",
        "booking_mode",
        "opens",
        "closes",
        "timezone",
    ],
    "capacity.changed": ["capacity", "reason", "conflicting_booking_ids"],
    "session.scheduled": ["session_id", "title", "starts_at", "ends_at", "capacity"],
    "session.rejected": ["session_id", "reason"],
    "booking.confirmed": ["booking_id", "member_id", "party_size", "starts_at", "ends_at"],
    "booking.rejected": ["booking_id", "member_id", "reason"],
    "booking.cancelled": ["booking_id", "member_id"],
    "booking.released": ["booking_id", "member_id", "starts_at"],
    "enrollment.confirmed": ["session_id", "member_id"],
    "enrollment.waitlisted": ["session_id", "member_id"],
    "enrollment.rejected": ["session_id", "member_id", "reason"],
    "enrollment.cancelled": ["session_id", "member_id"],
    "enrollment.promoted": ["session_id", "member_id"],
    "checkin.admitted": ["kiosk_id", "party_size", "occupancy", "capacity"],
    "checkin.denied": ["kiosk_id", "party_size", "occupancy", "capacity", "reason"],
    "checkout.recorded": ["kiosk_id", "occupancy"],
}
CONTRACT_REASONS: dict[str, set[str]] = {
    "booking.rejected": {
        "unknown_room",
        "outside_opening_hours",
        "over_capacity",
        "overlap",
        "in_the_past",
        "invalid",
        "unknown_booking",
    },
    "enrollment.rejected": {
        "unknown_session",
        "already_enrolled",
        "invalid",
        "unknown_enrollment",
    },
    "checkin.denied": {"room_full", "reserved", "closed", "unknown_room"},
}
# The contract says only "with reason" for session.rejected; docs/contract.md lists these.
SESSION_REASONS = {
    "unknown_room",
    "outside_opening_hours",
    "over_capacity",
    "overlap",
    "in_the_past",
    "invalid",
}
CONTRACT_OCCUPANCY = ["room_id", "center_id", "occupancy", "capacity", "as_of"]
CONTRACT_USAGE = [
    "scope",
    "id",
    "month",
    "bookings_confirmed",
    "bookings_rejected",
    "bookings_cancelled",
    "no_shows",
    "booked_hours",
    "open_hours",
    "utilization",
    "visits",
    "checkins_denied",
    "unique_members",
    "peak_occupancy",
    "final",
    "updated_at",
]
CONTRACT_DEAD_LETTER = ["original", "topic", "partition", "offset", "reason"]

# Additions the contract allows and docs/contract.md documents (v1.1 included).
ADDED_FIELDS: dict[str, list[str]] = {
    "checkin.admitted": ["center_id", "late"],
    "checkin.denied": ["center_id", "late"],
    "capacity.changed": [
        "center_id",
        "previous_capacity",
        "conflicting_session_ids",
        "occupancy_over_capacity",
    ],
    "room.configured": [
        "conflicting_booking_ids",
        "conflicting_session_ids",
        "occupancy_over_capacity",
    ],
    "enrollment.waitlisted": ["waitlist_position"],
    "enrollment.cancelled": ["was"],
}
# Contract v1.1: reasons added to v1's (docs/contract.md, "Contract v1.1 additions").
ADDED_REASONS: dict[str, set[str]] = {
    "booking.rejected": {"duplicate_booking_id", "booking_ended"},
    "checkin.denied": {"clock_skew"},
}
# Contract v1.1 (issue 7): decision types added so every input naming a room is answered.
ADDED_DECISIONS: dict[str, list[str]] = {
    "checkout.rejected": ["kiosk_id", "party_size", "reason"],
    "capacity.rejected": ["capacity", "reason"],
}
ADDED_DECISION_REASONS: dict[str, set[str]] = {
    "checkout.rejected": {"unknown_room"},
    "capacity.rejected": {"unknown_room"},
}

ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "capacity": CAPACITY_ADAPTER,
    "bookings": BOOKING_ADAPTER,
    "checkins": CHECKIN_ADAPTER,
}

# --- hand-written examples, as a kiosk or dashboard team would write them ---------------

KST = "+09:00"


def eid() -> str:
    return str(uuid4())


def inputs() -> dict[str, dict[str, Any]]:
    """One valid example of every input type, by type."""

    def base(type_: str) -> dict[str, Any]:
        return {
            "type": type_,
            "event_id": eid(),
            "occurred_at": f"2026-11-21T09:55:00{KST}",
            "room_id": "seoul-gangnam.studio-1",
        }

    return {
        "room.configured": base("room.configured")
        | {
            "center_id": "seoul-gangnam",
            "name": "Studio 1",
            "capacity": 20,
            "booking_mode": "shared",
            "opens": "09:00",
            "closes": "22:00",
            "timezone": "Asia/Seoul",
        },
        "room.capacity_changed": base("room.capacity_changed")
        | {"capacity": 10, "reason": "distancing"},
        "session.scheduled": base("session.scheduled")
        | {
            "session_id": "yoga-2026-11-21",
            "title": "Morning yoga",
            "starts_at": f"2026-11-21T10:00:00{KST}",
            "ends_at": f"2026-11-21T11:00:00{KST}",
            "capacity": 20,
        },
        "clock.tick": base("clock.tick"),
        "booking.requested": base("booking.requested")
        | {
            "booking_id": "b-0001",
            "member_id": "m:42",
            "party_size": 3,
            "starts_at": f"2026-11-21T14:00:00{KST}",
            "ends_at": f"2026-11-21T16:00:00{KST}",
        },
        "booking.cancel_requested": base("booking.cancel_requested")
        | {"booking_id": "b-0001", "member_id": "m:42"},
        "enrollment.requested": base("enrollment.requested")
        | {"session_id": "yoga-2026-11-21", "member_id": "m:42", "party_size": 2},
        "enrollment.cancel_requested": base("enrollment.cancel_requested")
        | {"session_id": "yoga-2026-11-21", "member_id": "m:42"},
        "checkin": base("checkin")
        | {
            "kiosk_id": "door-1",
            "party_size": 2,
            "member_id": "m:42",
            "booking_id": "b-0001",
            "session_id": "yoga-2026-11-21",
        },
        "checkout": base("checkout") | {"kiosk_id": "door-1", "party_size": 2, "member_id": "m:42"},
    }


def topic_of(type_: str) -> str:
    for topic, types in CONTRACT_INPUTS.items():
        if type_ in types or type_ in ADDED_INPUT_TYPES.get(topic, set()):
            return topic
    raise KeyError(type_)


def decisions() -> dict[str, dict[str, Any]]:
    """One valid example of every decision type, by type."""
    caused_by = eid()

    def base(type_: str) -> dict[str, Any]:
        return {
            "type": type_,
            "event_id": eid(),
            "caused_by": caused_by,
            "room_id": "seoul-gangnam.studio-1",
            "decided_at": f"2026-11-21T10:00:01.250{KST}",
            "center_id": "seoul-gangnam",
        }

    booking = {"booking_id": "b-0001", "member_id": "m:42"}
    interval = {"starts_at": f"2026-11-21T14:00:00{KST}", "ends_at": f"2026-11-21T16:00:00{KST}"}
    enrollment = {"session_id": "yoga-2026-11-21", "member_id": "m:42"}
    door = {"kiosk_id": "door-1", "party_size": 2, "occupancy": 7, "capacity": 20}
    return {
        "room.configured": base("room.configured")
        | {
            "name": "Studio 1",
            "capacity": 20,
            "booking_mode": "exclusive",
            "opens": "09:00",
            "closes": "24:00",
            "timezone": "Asia/Seoul",
        },
        "capacity.changed": base("capacity.changed")
        | {
            "capacity": 10,
            "previous_capacity": 20,
            "reason": "distancing",
            "conflicting_booking_ids": ["b-0001"],
        },
        "session.scheduled": base("session.scheduled")
        | {"session_id": "yoga-2026-11-21", "title": "Morning yoga", "capacity": 20}
        | interval,
        "session.rejected": base("session.rejected")
        | {"session_id": "yoga-2026-11-21", "reason": "overlap"},
        "booking.confirmed": base("booking.confirmed") | booking | {"party_size": 3} | interval,
        "booking.rejected": base("booking.rejected") | booking | {"reason": "over_capacity"},
        "booking.cancelled": base("booking.cancelled") | booking | interval,
        "booking.released": base("booking.released") | booking | interval | {"caused_by": None},
        "enrollment.confirmed": base("enrollment.confirmed") | enrollment | {"party_size": 1},
        "enrollment.waitlisted": base("enrollment.waitlisted")
        | enrollment
        | {"party_size": 1, "waitlist_position": 1},
        "enrollment.rejected": base("enrollment.rejected")
        | enrollment
        | {"reason": "already_enrolled"},
        "enrollment.cancelled": base("enrollment.cancelled") | enrollment | {"was": "waitlisted"},
        "enrollment.promoted": base("enrollment.promoted") | enrollment | {"party_size": 1},
        "checkin.admitted": base("checkin.admitted") | door | {"member_id": "m:42", "late": False},
        "checkin.denied": base("checkin.denied") | door | {"reason": "room_full"},
        "checkout.recorded": base("checkout.recorded") | door,
    }


OCCUPANCY = {
    "room_id": "seoul-gangnam.studio-1",
    "center_id": "seoul-gangnam",
    "occupancy": 7,
    "capacity": 20,
    "as_of": f"2026-11-21T10:00:01{KST}",
}
USAGE = {
    "scope": "room",
    "id": "seoul-gangnam.studio-1",
    "month": "2026-11",
    "bookings_confirmed": 12,
    "bookings_rejected": 3,
    "bookings_cancelled": 1,
    "no_shows": 2,
    "booked_hours": 30.5,
    "open_hours": 390.0,
    "utilization": 30.5 / 390.0,
    "visits": 140,
    "checkins_denied": 4,
    "unique_members": 37,
    "peak_occupancy": 19,
    "final": False,
    "updated_at": f"2026-11-21T10:00:01{KST}",
}
DEAD_LETTER = {
    "topic": "checkins",
    "partition": 3,
    "offset": 1234,
    "key": "c2VvdWwtZ2FuZ25hbS5zdHVkaW8tMQ==",
    "original": "bm90IGpzb24=",
    "reason": "value is not JSON",
    "consumer_group": "room-authority",
    "received_at": "2026-11-21T01:00:01Z",
}
OUTPUTS: list[tuple[type[BaseModel], dict[str, Any], list[str]]] = [
    (Occupancy, OCCUPANCY, CONTRACT_OCCUPANCY),
    (UsageMonthly, USAGE, CONTRACT_USAGE),
    (DeadLetter, DEAD_LETTER, CONTRACT_DEAD_LETTER),
]


def parse_input(message: dict[str, Any]) -> Any:
    return ADAPTERS[topic_of(message["type"])].validate_json(json.dumps(message))


def rejects(adapter: TypeAdapter[Any], message: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        adapter.validate_json(json.dumps(message))


def properties(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    assert isinstance(schema["properties"], dict)
    return schema["properties"]


def topic(name: str) -> Any:
    return next(t for t in TOPICS if t.name == name)


# --- (a) the committed export is current ------------------------------------------------


def files_under(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_committed_schemas_match_a_fresh_export(tmp_path: Path) -> None:
    written = export_all(tmp_path)
    fresh = files_under(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(fresh)
    committed = files_under(COMMITTED)
    hint = "run `spaces schema export --out docs/schemas` and commit the result"
    assert sorted(committed) == sorted(fresh), hint
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} is stale: {hint}"


def test_export_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    export_all(tmp_path / "one")
    first = files_under(tmp_path / "one")
    export_all(tmp_path / "two")
    assert files_under(tmp_path / "two") == first
    export_all(tmp_path / "one")
    assert files_under(tmp_path / "one") == first
    for name, text in first.items():
        assert text.endswith("}\n"), name
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_every_message_type_has_its_schema_file() -> None:
    expected = {f"{t}.json" for t in [*CONTRACT_INPUTS, "decisions"]}
    expected |= {"occupancy.json", "usage-monthly.json", "dead-letters.json", "asyncapi.json"}
    for topic_name, types in CONTRACT_INPUTS.items():
        all_types = set(types) | ADDED_INPUT_TYPES.get(topic_name, set())
        expected |= {f"{topic_name}/{t}.json" for t in all_types}
    expected |= {f"decisions/{t}.json" for t in [*CONTRACT_DECISIONS, *ADDED_DECISIONS]}
    assert set(files_under(COMMITTED)) == expected
    room = json.loads((COMMITTED / "capacity" / "room.configured.json").read_text())
    assert room["properties"]["type"]["const"] == "room.configured"
    assert room["required"][0] == "type"
    admitted = json.loads((COMMITTED / "decisions" / "checkin.admitted.json").read_text())
    assert set(admitted["required"]) == set(admitted["properties"])


def test_asyncapi_document() -> None:
    """Generated by FastStream from the contract's declared channels (``contract_broker``),
    with the keys and compaction FastStream's generator does not know added."""
    doc = json.loads((COMMITTED / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"] == {
        "development": {
            "host": "127.0.0.1:19092",
            "pathname": "",
            "protocol": "kafka",
            "protocolVersion": "auto",
            "description": doc["servers"]["development"]["description"],
        }
    }
    topics = ["capacity", "bookings", "checkins", "decisions", "occupancy", "usage-monthly"]
    assert sorted(doc["channels"]) == sorted([*topics, "dead-letters"])
    for name, channel in doc["channels"].items():
        assert channel["address"] == name
        policy = channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if name in ("occupancy", "usage-monthly") else ["delete"])
    sends = {
        o["channel"]["$ref"].split("/")[-1]
        for o in doc["operations"].values()
        if o["action"] == "send"
    }
    assert sends == {"decisions", "occupancy", "usage-monthly", "dead-letters"}

    def resolve(ref: str) -> Any:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def message_types(topic: str) -> set[str]:
        (ref,) = doc["channels"][topic]["messages"].values()
        payload = resolve(resolve(ref["$ref"])["payload"]["$ref"])
        members = [resolve(m["$ref"]) for m in payload.get("oneOf", [payload])]
        return {m["properties"]["type"]["const"] for m in members if "type" in m["properties"]}

    assert message_types("decisions") == set(CONTRACT_DECISIONS) | set(ADDED_DECISIONS)
    assert message_types("capacity") == {*CONTRACT_INPUTS["capacity"], "clock.tick"}
    for topic_name, types in CONTRACT_INPUTS.items():
        assert message_types(topic_name) == set(types) | ADDED_INPUT_TYPES.get(topic_name, set())
    for topic_name, model in (
        ("occupancy", "Occupancy"),
        ("usage-monthly", "UsageMonthly"),
        ("dead-letters", "DeadLetter"),
    ):
        (ref,) = doc["channels"][topic_name]["messages"].values()
        payload = resolve(ref["$ref"])["payload"]["$ref"]
        assert payload == f"#/components/schemas/{model}"

    def walk(node: Any) -> int:
        count = 0
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
                count += 1
            count += sum(walk(v) for v in node.values())
        elif isinstance(node, list):
            count += sum(walk(v) for v in node)
        return count

    assert walk(doc) > 50
    (ref,) = doc["channels"]["usage-monthly"]["messages"].values()
    message = resolve(ref["$ref"])
    assert message["bindings"]["kafka"]["key"]["pattern"] == USAGE_KEY["pattern"]


def test_asyncapi_is_faststreams_document_of_the_contract_broker() -> None:
    """The document is FastStream's own for ``contract_broker``: only bindings are added."""
    from faststream.specification import AsyncAPI

    from schemas.export import TITLE, asyncapi, contract_broker

    generated = AsyncAPI(contract_broker(), title=TITLE).to_specification().to_jsonable()
    ours = asyncapi()
    assert ours["channels"].keys() == generated["channels"].keys()
    assert ours["components"]["schemas"] == json.loads(
        json.dumps(generated["components"]["schemas"])
    )


# --- (b) contract conformance -----------------------------------------------------------


@pytest.mark.parametrize("type_", list(inputs()))
def test_every_input_example_parses(type_: str) -> None:
    message = inputs()[type_]
    parsed = parse_input(message)
    assert parsed.type == type_
    assert str(parsed.event_id) == message["event_id"]
    assert parsed.occurred_at.utcoffset() == timedelta(hours=9)


def test_input_types_and_fields_match_the_contract() -> None:
    for topic_name, types in CONTRACT_INPUTS.items():
        models = {message_type(m): m for m in topic(topic_name).models()}
        assert set(models) == set(types) | ADDED_INPUT_TYPES.get(topic_name, set())
        for type_, fields in types.items():
            props = properties(models[type_])
            missing = [f for f in INPUT_COMMON + fields if f not in props]
            assert not missing, f"{type_} lacks contract fields {missing}"
            assert props["type"]["const"] == type_


def test_input_optionals_and_defaults() -> None:
    examples = inputs()
    optional = ("member_id", "booking_id", "session_id")
    checkin = {k: v for k, v in examples["checkin"].items() if k not in optional}
    parsed = parse_input(checkin)
    assert (parsed.member_id, parsed.booking_id, parsed.session_id) == (None, None, None)
    checkout = {k: v for k, v in examples["checkout"].items() if k != "member_id"}
    assert parse_input(checkout).member_id is None
    enrollment = {k: v for k, v in examples["enrollment.requested"].items() if k != "party_size"}
    assert parse_input(enrollment).party_size == 1
    room = {k: v for k, v in examples["room.configured"].items() if k != "timezone"}
    assert parse_input(room).timezone == "Asia/Seoul"
    utc = examples["booking.requested"] | {"starts_at": "2026-11-21T05:00:00Z"}
    utc["ends_at"] = "2026-11-21T07:00:00Z"
    assert parse_input(utc).starts_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("type_", list(decisions()))
def test_every_decision_example_parses(type_: str) -> None:
    message = decisions()[type_]
    parsed = DECISION_ADAPTER.validate_json(json.dumps(message))
    assert parsed.type == type_
    assert json.loads(parsed.model_dump_json())["type"] == type_


@pytest.mark.parametrize("type_", list(decisions()))
def test_a_published_decision_has_the_same_digest_as_bytes_and_as_content(type_: str) -> None:
    """The statistics store the digest of a decision's bytes (the relay re-sends what the
    authority serialized); before, they stored ``content_digest``. A decision redelivered
    across that upgrade must still be a re-send, not an id reused for other content."""
    published = DECISION_ADAPTER.validate_json(json.dumps(decisions()[type_])).model_dump_json()
    record = SimpleNamespace(value=published.encode())
    parsed = DECISION_ADAPTER.validate_json(record.value)
    statistics = UsageStatistics(Settings())
    assert statistics.digest(record, parsed) == content_digest(record, parsed)  # type: ignore[arg-type]


def test_decision_types_fields_and_reasons_match_the_contract() -> None:
    models = {message_type(m): m for m in topic("decisions").models()}
    assert set(models) == set(CONTRACT_DECISIONS) | set(ADDED_DECISIONS)
    for type_, fields in {**CONTRACT_DECISIONS, **ADDED_DECISIONS}.items():
        props = properties(models[type_])
        missing = [f for f in DECISION_COMMON + fields if f not in props]
        assert not missing, f"{type_} lacks contract fields {missing}"
        assert props["type"]["const"] == type_
        for added in ADDED_FIELDS.get(type_, []):
            assert added in props, f"{type_}: documented addition {added} missing"
        assert "center_id" in props
    for type_, reasons in {**CONTRACT_REASONS, **ADDED_DECISION_REASONS}.items():
        added = ADDED_REASONS.get(type_, set())
        reason_schema = properties(models[type_])["reason"]
        assert set(reason_schema.get("enum", [reason_schema.get("const")])) == reasons | added, (
            type_
        )
    assert set(properties(models["session.rejected"])["reason"]["enum"]) == SESSION_REASONS
    assert properties(models["enrollment.cancelled"])["was"]["enum"] == ["confirmed", "waitlisted"]


@pytest.mark.parametrize(
    ("model", "example", "fields"), OUTPUTS, ids=lambda v: getattr(v, "__name__", "")
)
def test_output_examples_parse_and_fields_match_the_contract(
    model: type[BaseModel], example: dict[str, Any], fields: list[str]
) -> None:
    parsed = model.model_validate_json(json.dumps(example))
    props = properties(model)
    assert [f for f in fields if f not in props] == []
    assert json.loads(parsed.model_dump_json()).keys() >= set(fields)


def test_output_additions() -> None:
    assert {"revision", "revised_after_close"} <= set(properties(UsageMonthly))
    assert {"key", "consumer_group", "received_at"} <= set(properties(DeadLetter))
    usage = UsageMonthly.model_validate_json(json.dumps(USAGE))
    assert (usage.revision, usage.revised_after_close) == (0, False)
    assert properties(UsageMonthly)["scope"]["enum"] == ["room", "center"]


# --- (c) strict validation rejects what breaks the contract -----------------------------


@pytest.mark.parametrize("bad", ["", "room 1", "r" * 65, "room/1", "räum", "r1\n"])
@pytest.mark.parametrize("field", ["room_id", "kiosk_id", "member_id"])
def test_bad_identifiers_are_rejected(field: str, bad: str) -> None:
    rejects(CHECKIN_ADAPTER, inputs()["checkin"] | {field: bad})


def test_identifier_limits() -> None:
    assert parse_input(inputs()["checkin"] | {"room_id": "R" * 64}).room_id == "R" * 64
    assert parse_input(inputs()["checkin"] | {"member_id": "a.B_9:-"}).member_id == "a.B_9:-"


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        ("checkin", "occurred_at"),
        ("booking.requested", "starts_at"),
        ("booking.requested", "ends_at"),
        ("session.scheduled", "starts_at"),
    ],
)
@pytest.mark.parametrize("naive", ["2026-11-21T10:00:00", "2026-11-21", "10:00", 1795000000])
def test_naive_or_non_rfc3339_times_are_rejected(type_: str, field: str, naive: Any) -> None:
    message = inputs()[type_] | {field: naive}
    rejects(ADAPTERS[topic_of(type_)], message)


@pytest.mark.parametrize("type_", ["booking.requested", "session.scheduled"])
@pytest.mark.parametrize(
    "ends_at",
    [f"2026-11-21T14:00:00{KST}", "2026-11-21T05:00:00Z", "2026-11-21T04:59:59Z"],
)
def test_an_interval_not_running_forward_is_read_for_the_rules_to_answer(
    type_: str, ends_at: str
) -> None:
    """v1.1: ``ends_at`` not after ``starts_at`` (the same instant in another offset
    included) is no contract violation: the rules answer it ``invalid``, so the sender
    gets a decision instead of a dead letter (tests/test_capacity_rules.py)."""
    message = inputs()[type_] | {"starts_at": f"2026-11-21T14:00:00{KST}", "ends_at": ends_at}
    parsed = parse_input(message)
    assert parsed.ends_at <= parsed.starts_at


@pytest.mark.parametrize(
    "type_", ["booking.requested", "enrollment.requested", "checkin", "checkout"]
)
@pytest.mark.parametrize("party_size", [0, -1, "2", 2.0, 1.5, True, None])
def test_bad_party_size_is_rejected(type_: str, party_size: Any) -> None:
    rejects(ADAPTERS[topic_of(type_)], inputs()[type_] | {"party_size": party_size})


@pytest.mark.parametrize("type_", ["room.configured", "room.capacity_changed", "session.scheduled"])
@pytest.mark.parametrize("capacity", [0, -5, "15", 15.0])
def test_bad_capacity_is_rejected(type_: str, capacity: Any) -> None:
    rejects(CAPACITY_ADAPTER, inputs()[type_] | {"capacity": capacity})


@pytest.mark.parametrize(
    ("topic_name", "type_"),
    [
        ("capacity", "room.deleted"),
        ("capacity", "booking.requested"),
        ("bookings", "checkin"),
        ("checkins", "Checkin"),
        ("checkins", ""),
        ("checkins", None),
    ],
)
def test_unknown_type_is_rejected(topic_name: str, type_: Any) -> None:
    rejects(ADAPTERS[topic_name], inputs()["checkin"] | {"type": type_})


def test_missing_type_is_rejected() -> None:
    message = {k: v for k, v in inputs()["checkin"].items() if k != "type"}
    rejects(CHECKIN_ADAPTER, message)


def test_unknown_decision_type_is_rejected() -> None:
    rejects(DECISION_ADAPTER, decisions()["checkin.admitted"] | {"type": "checkin.maybe"})


@pytest.mark.parametrize(
    ("opens", "closes"),
    [
        ("9:00", "22:00"),
        ("09:00", "22:0"),
        ("0900", "2200"),
        ("09:60", "22:00"),
        ("09:00", "25:00"),
        ("09:00", "24:01"),
        ("09:00:00", "22:00"),
        ("", "22:00"),
        ("09:00", "09:00"),
        ("00:00", "00:00"),
        ("24:00", "24:00"),
        ("24:00", "02:00"),
        ("18:00", "18:00"),
    ],
)
def test_bad_opening_hours_are_rejected(opens: str, closes: str) -> None:
    rejects(CAPACITY_ADAPTER, inputs()["room.configured"] | {"opens": opens, "closes": closes})


def test_opening_hours_until_midnight() -> None:
    message = inputs()["room.configured"] | {"opens": "00:00", "closes": "24:00"}
    assert parse_input(message).closes == "24:00"


@pytest.mark.parametrize(
    ("opens", "closes"), [("18:00", "02:00"), ("22:00", "09:00"), ("18:00", "00:00")]
)
def test_opening_hours_overnight(opens: str, closes: str) -> None:
    """v1.1: ``closes`` before ``opens`` is open until ``closes`` the next day."""
    message = inputs()["room.configured"] | {"opens": opens, "closes": closes}
    assert (parse_input(message).opens, parse_input(message).closes) == (opens, closes)


def test_opening_hours_with_trailing_newline_are_rejected() -> None:
    rejects(CAPACITY_ADAPTER, inputs()["room.configured"] | {"opens": "09:00\n"})


@pytest.mark.parametrize("tz", ["Asia/Busan", "asia/seoul", "KST+9", "", "../../etc/passwd", 9])
def test_unknown_time_zone_is_rejected(tz: Any) -> None:
    rejects(CAPACITY_ADAPTER, inputs()["room.configured"] | {"timezone": tz})


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", "not-a-uuid"), ("event_id", 42), ("name", ""), ("booking_mode", "private")],
)
def test_other_bad_values_are_rejected(field: str, value: Any) -> None:
    rejects(CAPACITY_ADAPTER, inputs()["room.configured"] | {field: value})


def test_bad_outputs_are_rejected() -> None:
    rejects(TypeAdapter(UsageMonthly), USAGE | {"month": "2026-13"})
    rejects(TypeAdapter(UsageMonthly), USAGE | {"scope": "building"})
    rejects(TypeAdapter(Occupancy), OCCUPANCY | {"as_of": "2026-11-21T10:00:01"})
    rejects(DECISION_ADAPTER, decisions()["booking.rejected"] | {"reason": "because"})
    rejects(DECISION_ADAPTER, decisions()["checkin.denied"] | {"reason": "full"})


# --- (d) added fields are tolerated -----------------------------------------------------


@pytest.mark.parametrize("type_", list(inputs()))
def test_unknown_fields_on_inputs_are_ignored(type_: str) -> None:
    extra = {"x_kiosk_firmware": "4.2", "device": {"battery": 0.8}, "tags": [1, 2]}
    parsed = parse_input(inputs()[type_] | extra)
    assert "x_kiosk_firmware" not in parsed.model_dump()


@pytest.mark.parametrize("type_", list(decisions()))
def test_unknown_fields_on_decisions_are_ignored(type_: str) -> None:
    parsed = DECISION_ADAPTER.validate_json(json.dumps(decisions()[type_] | {"shard": 3}))
    assert parsed.type == type_


@pytest.mark.parametrize(
    ("model", "example", "fields"), OUTPUTS, ids=lambda v: getattr(v, "__name__", "")
)
def test_unknown_fields_on_outputs_are_ignored(
    model: type[BaseModel], example: dict[str, Any], fields: list[str]
) -> None:
    assert model.model_validate_json(json.dumps(example | {"v2_field": None}))


# --- (e) usage-monthly keys -------------------------------------------------------------


def test_usage_monthly_key_format() -> None:
    assert usage_key("room", "seoul-gangnam.studio-1", "2026-11") == (
        "room:seoul-gangnam.studio-1:2026-11"
    )
    assert usage_key("center", "seoul-gangnam", "2027-01") == "center:seoul-gangnam:2027-01"
    usage = UsageMonthly.model_validate_json(json.dumps(USAGE))
    assert usage.key == "room:seoul-gangnam.studio-1:2026-11"
    center = UsageMonthly.model_validate_json(json.dumps(USAGE | {"scope": "center", "id": "c1"}))
    assert center.key == "center:c1:2026-11"
    pattern = re.compile(USAGE_KEY["pattern"])
    assert pattern.fullmatch(usage.key) and pattern.fullmatch(center.key)
    assert not pattern.fullmatch("room:seoul-gangnam.studio-1:2026-13")
    assert not pattern.fullmatch("seoul-gangnam.studio-1:2026-11")


# --- round trip -------------------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_times = st.datetimes(
    # The contract's range (issue 7): years 2000-2100, whatever the offset.
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2100, 12, 30),
    # Fixed offsets, as RFC 3339 carries them (a zone name would also allow times that do
    # not exist locally, which no kiosk can send).
    timezones=st.one_of(st.just(UTC), offsets),
)
checkins = st.builds(
    Checkin,
    event_id=st.uuids(),
    occurred_at=aware_times,
    room_id=identifiers,
    kiosk_id=identifiers,
    party_size=st.integers(min_value=1, max_value=10_000),
    member_id=st.none() | identifiers,
    booking_id=st.none() | identifiers,
    session_id=st.none() | identifiers,
)


@settings(max_examples=300, deadline=None)
@given(checkins)
def test_checkin_round_trips_through_json(checkin: Checkin) -> None:
    text = checkin.model_dump_json()
    again = CHECKIN_ADAPTER.validate_json(text)
    assert again == checkin
    assert isinstance(again, Checkin)
    assert again.occurred_at.utcoffset() == checkin.occurred_at.utcoffset()
    assert again.model_dump_json() == text


# --- bounds (issue 7) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "change", "field"),
    [
        ("checkin", {"occurred_at": "0001-01-01T00:00:00+09:00"}, "occurred_at"),
        ("checkin", {"occurred_at": "9999-12-31T23:00:00+09:00"}, "occurred_at"),
        ("checkin", {"occurred_at": "1999-12-31T23:59:59+00:00"}, "occurred_at"),
        ("checkin", {"party_size": 10_001}, "party_size"),
        ("checkin", {"kiosk_id": "k" * 65}, "kiosk_id"),
        ("checkin", {"kiosk_id": "kiosk 1"}, "kiosk_id"),
        ("room.configured", {"capacity": 100_001}, "capacity"),
        ("booking.requested", {"starts_at": "9999-12-31T10:00:00+09:00"}, "starts_at"),
        ("booking.requested", {"ends_at": "2026-12-23T10:00:00+09:00"}, "ends_at"),
        ("session.scheduled", {"ends_at": "2027-01-01T10:00:00+09:00"}, "ends_at"),
    ],
)
def test_absurd_times_and_sizes_are_contract_violations(
    type_: str, change: dict[str, Any], field: str
) -> None:
    """A year-9999 booking or year-1 check-in overflowed inside the rules; now the edge
    refuses them, and the reason names the field."""
    message = inputs()[type_] | change
    adapter = next(a for t, a in ADAPTERS.items() if type_ in CONTRACT_INPUTS[t])
    with pytest.raises(ValidationError) as caught:
        adapter.validate_json(json.dumps(message))
    assert field in str(caught.value)
    adapter.validate_json(json.dumps(inputs()[type_]))  # the same message, sane: accepted
