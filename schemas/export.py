"""Export the wire contract (contract-v1) as JSON Schema files and an AsyncAPI 3.0 document.

Everything is generated from the pydantic models, so the published schemas cannot drift from
what the consumers accept and the producers write. Layout under ``out``::

    asyncapi.json                      AsyncAPI 3.0: servers, the 7 topics, keys, operations
    <topic>.json                       one schema per topic (a union for multi-type topics)
    <topic>/<type>.json                one schema per message type (multi-type topics only)

Inputs are exported in validation mode (what the system accepts). Outputs are exported in
serialization mode with every property required, because every field is always written (an
optional field is written as ``null``). ``type`` is required on every message: the topic's
union is discriminated by it, so a message without it is dead-lettered.

The output is deterministic (sorted keys, stable order, a newline at the end) so the
committed copy in ``docs/schemas`` is checked for drift by the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, TypeAdapter

from infra.settings import Topics
from schemas.common import Identifier
from schemas.decisions import DECISION_ADAPTER, AnyDecision
from schemas.inputs import (
    BOOKING_ADAPTER,
    CAPACITY_ADAPTER,
    CHECKIN_ADAPTER,
    BookingEvent,
    CapacityEvent,
    CheckinEvent,
)
from schemas.outputs import DeadLetter, MonthKey, Occupancy, UsageMonthly

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
LOCAL_KAFKA = "127.0.0.1:19092"

Mode = Literal["validation", "serialization"]
Json = dict[str, Any]


def _strip_anchors(pattern: str) -> str:
    return pattern.removeprefix("^").removesuffix("$")


_IDENTIFIER: Json = TypeAdapter(Identifier).json_schema()
_MONTH_PATTERN = _strip_anchors(str(TypeAdapter(MonthKey).json_schema()["pattern"]))

ROOM_KEY: Json = {
    "type": "string",
    "pattern": _IDENTIFIER["pattern"],
    "minLength": _IDENTIFIER["minLength"],
    "maxLength": _IDENTIFIER["maxLength"],
    "description": "The room_id, UTF-8. All of a room's messages go to one partition, in order.",
}
USAGE_KEY: Json = {
    "type": "string",
    "pattern": (f"^(room|center):{_strip_anchors(str(_IDENTIFIER['pattern']))}:{_MONTH_PATTERN}$"),
    "description": (
        "room:<room_id>:<YYYY-MM> or center:<center_id>:<YYYY-MM>, UTF-8; the month is the "
        "room's local month. Compacted: the last value per key is the current aggregate."
    ),
}
DEAD_LETTER_KEY: Json = {
    "type": ["string", "null"],
    "description": (
        "The key of the record that could not be processed, decoded as UTF-8 (normally its "
        "room_id); null if it had none. The exact original key bytes are in the value's `key`."
    ),
}


@dataclass(frozen=True)
class Topic:
    """One topic of the contract: its messages, key and how the system uses it."""

    attr: str
    """Field of ``infra.settings.Topics`` holding the topic's name."""
    description: str
    key: Json
    action: Literal["send", "receive"]
    """What the system does with the topic (AsyncAPI 3: the application's point of view)."""
    mode: Mode
    union: TypeAdapter[Any] | None = None
    """The adapter the consumers parse a multi-type topic with."""
    members: tuple[type[BaseModel], ...] = ()
    """The types of a multi-type topic, in the union's order."""
    single: type[BaseModel] | None = None
    """The one model of a single-type topic."""

    @property
    def name(self) -> str:
        default = Topics.model_fields[self.attr].default
        assert isinstance(default, str)
        return default

    @property
    def compacted(self) -> bool:
        return self.attr in ("occupancy", "usage_monthly")

    def models(self) -> list[type[BaseModel]]:
        return [self.single] if self.single is not None else list(self.members)


def union_members(annotated: Any) -> tuple[type[BaseModel], ...]:
    """The models of ``Annotated[A | B | ..., Field(discriminator="type")]``, in order."""
    union = get_args(annotated)[0]
    members = tuple(m for m in get_args(union) if isinstance(m, type) and issubclass(m, BaseModel))
    assert members, f"not a union of models: {annotated!r}"
    return members


def message_type(model: type[BaseModel]) -> str:
    """The ``type`` value of a message model (its discriminator)."""
    default = model.model_fields["type"].default
    assert isinstance(default, str), model
    return default


TOPICS: tuple[Topic, ...] = (
    Topic(
        "capacity",
        "Rooms, sessions and capacity, from admin tools; plus `clock.tick`, appended by the "
        "system's own scheduler.",
        ROOM_KEY,
        "receive",
        "validation",
        union=CAPACITY_ADAPTER,
        members=union_members(CapacityEvent),
    ),
    Topic(
        "bookings",
        "Bookings and session enrollments (web, phone, counter).",
        ROOM_KEY,
        "receive",
        "validation",
        union=BOOKING_ADAPTER,
        members=union_members(BookingEvent),
    ),
    Topic(
        "checkins",
        "Check-ins and check-outs from the kiosks at the door.",
        ROOM_KEY,
        "receive",
        "validation",
        union=CHECKIN_ADAPTER,
        members=union_members(CheckinEvent),
    ),
    Topic(
        "decisions",
        "The authoritative log of what the system decided; per room in the order decided.",
        ROOM_KEY,
        "send",
        "serialization",
        union=DECISION_ADAPTER,
        members=union_members(AnyDecision),
    ),
    Topic(
        "occupancy",
        "Live occupancy per room, compacted.",
        ROOM_KEY,
        "send",
        "serialization",
        single=Occupancy,
    ),
    Topic(
        "usage_monthly",
        "Monthly usage per room and per center for dashboards, compacted.",
        USAGE_KEY,
        "send",
        "serialization",
        single=UsageMonthly,
    ),
    Topic(
        "dead_letters",
        "Inputs that could not be read or broke the contract, with the original bytes "
        "(base64), where they came from and a reason a person can act on.",
        DEAD_LETTER_KEY,
        "send",
        "serialization",
        single=DeadLetter,
    ),
)

# --- JSON Schema ----------------------------------------------------------------------


def _finish_object(schema: Json, mode: Mode) -> None:
    properties: Json = schema.get("properties", {})
    required: list[str] = list(schema.get("required", []))
    if mode == "serialization":
        required = list(properties)
    elif "type" in properties and "type" not in required:
        required.insert(0, "type")
    if required:
        schema["required"] = required


def _finish(schema: Json, mode: Mode, title: str | None = None) -> Json:
    for definition in schema.get("$defs", {}).values():
        _finish_object(definition, mode)
    _finish_object(schema, mode)
    if title is not None:
        schema["title"] = title
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def model_schema(model: type[BaseModel], mode: Mode) -> Json:
    return _finish(model.model_json_schema(mode=mode), mode)


def topic_schema(topic: Topic) -> Json:
    if topic.single is not None:
        schema = _finish(topic.single.model_json_schema(mode=topic.mode), topic.mode)
    else:
        assert topic.union is not None
        schema = _finish(topic.union.json_schema(mode=topic.mode), topic.mode, title=topic.name)
    schema["description"] = topic.description
    return schema


def schema_path(topic: Topic, model: type[BaseModel] | None = None) -> str:
    """Path of a schema file relative to the export root."""
    if model is None or topic.single is not None:
        return f"{topic.name}.json"
    return f"{topic.name}/{message_type(model)}.json"


# --- AsyncAPI -------------------------------------------------------------------------


def _message_id(topic: Topic, model: type[BaseModel]) -> str:
    if topic.single is not None:
        return topic.name
    return f"{topic.name}.{message_type(model)}"


def _message_name(topic: Topic, model: type[BaseModel]) -> str:
    return topic.name if topic.single is not None else message_type(model)


def asyncapi() -> Json:
    channels: Json = {}
    operations: Json = {}
    messages: Json = {}
    for topic in TOPICS:
        channel_messages: Json = {}
        for model in topic.models():
            mid = _message_id(topic, model)
            name = _message_name(topic, model)
            message: Json = {
                "name": name,
                "title": name,
                "contentType": "application/json",
                "payload": {"$ref": f"./{schema_path(topic, model)}"},
                "bindings": {"kafka": {"key": topic.key, "bindingVersion": KAFKA_BINDING_VERSION}},
            }
            messages[mid] = message
            channel_messages[name] = {"$ref": f"#/components/messages/{mid}"}
        channels[topic.name] = {
            "address": topic.name,
            "title": topic.name,
            "description": topic.description,
            "servers": [{"$ref": "#/servers/local"}],
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "topicConfiguration": {
                        "cleanup.policy": ["compact"] if topic.compacted else ["delete"]
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"{topic.action}.{topic.name}"] = {
            "action": topic.action,
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "messages": [
                {"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in channel_messages
            ],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Community spaces - wire contract v1",
            "version": CONTRACT_VERSION,
            "description": (
                "Topics, keys and messages of contract-v1, generated from the pydantic models "
                "(see docs/contract.md). Values are JSON objects, UTF-8; times are RFC 3339 "
                "with an offset. Fields may be added, never renamed or removed: readers must "
                "ignore fields they do not know. Producers use acks=all and the idempotent "
                "producer."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": LOCAL_KAFKA,
                "protocol": "kafka",
                "description": "The local single-node Kafka broker (`spaces infra up`).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# --- files ----------------------------------------------------------------------------


def render(document: Json) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, Json]:
    """Every exported document by its path relative to the export root, in a stable order."""
    out: dict[str, Json] = {}
    for topic in TOPICS:
        out[schema_path(topic)] = topic_schema(topic)
        if topic.single is None:
            for model in topic.models():
                out[schema_path(topic, model)] = model_schema(model, topic.mode)
    out["asyncapi.json"] = asyncapi()
    return out


def export_all(out: Path) -> list[Path]:
    """Write the JSON Schemas and the AsyncAPI document under ``out``; returns the files.

    Files are rewritten only when their content changed. Files no longer produced are not
    deleted (the drift test reports them).
    """
    written: list[Path] = []
    for relative, document in documents().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = render(document)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written
