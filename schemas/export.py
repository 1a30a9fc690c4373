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
FASTSTREAM_KAFKA_BINDING = "0.4.0"
"""The Kafka bindings version FastStream 0.7 writes: the keys added beside it match it."""
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

TITLE = "Community spaces - wire contract v1"
DESCRIPTION = (
    "Topics, keys and messages of contract-v1, generated by FastStream from the channels "
    "the contract declares (see docs/contract.md). Values are JSON objects, UTF-8; times are "
    "RFC 3339 with an offset. Fields may be added, never renamed or removed: readers must "
    "ignore fields they do not know. Producers use acks=all and the idempotent producer."
)


def specification_info() -> tuple[str, str, str]:
    """Title, version and description of the contract's AsyncAPI document."""
    return TITLE, CONTRACT_VERSION, DESCRIPTION


def contract_broker(url: str = LOCAL_KAFKA, topics: Topics | None = None) -> Any:
    """A FastStream ``KafkaBroker`` declaring every channel of the contract, for the document.

    Inputs are subscribers (the system receives them), outputs are publishers (it sends
    them), each typed with the topic's pydantic model or discriminated union. It is never
    started: FastStream's AsyncAPI generator reads the declarations.
    """
    from faststream.kafka import KafkaBroker

    names = topics or Topics()
    broker = KafkaBroker(url, description="The local single-node Kafka broker (`spaces infra up`).")
    for topic in TOPICS:
        name = getattr(names, topic.attr)
        payload: Any = topic.single if topic.single is not None else _union_of(topic)
        if topic.action == "receive":
            broker.subscriber(
                name, title=topic.name, description=topic.description, group_id=topic.name
            )(_typed_handler(payload))
        else:
            broker.publisher(name, title=topic.name, description=topic.description, schema=payload)
    return broker


def _union_of(topic: Topic) -> Any:
    """``Annotated[A | B | ..., Field(discriminator="type")]``: the topic's union."""
    unions: dict[str, Any] = {
        "capacity": CapacityEvent,
        "bookings": BookingEvent,
        "checkins": CheckinEvent,
        "decisions": AnyDecision,
    }
    return unions[topic.attr]


def _typed_handler(payload: Any) -> Any:
    """A handler whose one argument is typed ``payload``: FastStream documents that type."""

    async def handler(message: Any) -> None:
        """Never called: the document broker is not started."""

    handler.__annotations__ = {"message": payload, "return": None}
    return handler


def _add_kafka_bindings(document: Json) -> Json:
    """What FastStream's generator does not know: the contract's keys and compaction."""
    for channel in document["channels"].values():
        topic = _by_address(channel)
        if topic is None:
            continue
        channel["bindings"]["kafka"]["topicConfiguration"] = {
            "cleanup.policy": ["compact"] if topic.compacted else ["delete"]
        }
        for ref in channel["messages"].values():
            message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
            message["bindings"] = {
                "kafka": {"key": topic.key, "bindingVersion": FASTSTREAM_KAFKA_BINDING}
            }
    return document


def _by_address(channel: Json) -> Topic | None:
    for topic in TOPICS:
        if channel["address"] == topic.name:
            return topic
    return None


def asyncapi() -> Json:
    """The contract's AsyncAPI 3.0 document, generated by FastStream from ``contract_broker``."""
    from faststream.specification import AsyncAPI

    spec = AsyncAPI(
        contract_broker(), title=TITLE, version=CONTRACT_VERSION, description=DESCRIPTION
    )
    document: Json = json.loads(json.dumps(spec.to_specification().to_jsonable()))
    return _add_kafka_bindings(document)


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
