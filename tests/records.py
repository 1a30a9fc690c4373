"""A consumed record, as the service layer reads it, made from an input or a decision.

For tests that drive ``process_batch`` without Kafka. A ``clock.tick`` carries the
signature the scheduler would give it.
"""

from __future__ import annotations

from infra import tick_signature
from infra.settings import Settings
from schemas.decisions import Decision
from schemas.inputs import AnyInput


class Rec:
    def __init__(self, topic: str, offset: int, event: AnyInput | Decision) -> None:
        self.topic = topic
        self.partition = 0
        self.offset = offset
        self.timestamp = 0
        self.key: bytes | None = event.room_id.encode()
        self.value: bytes | None = event.model_dump_json().encode()
        self.headers: list[tuple[str, bytes]] = (
            tick_signature.headers_for(Settings(), self.key, self.value)
            if event.type == "clock.tick"
            else []
        )
