"""What every rule uses to decide: the decisions' ids and common fields, and the refusal.

Decision ids are derived from the input's ``event_id`` (uuid5) and the decision's position
among those the input caused, so deciding the same input on the same state gives the very
same ids; the consumer's idempotency check makes sure it never publishes them twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.capacity.room import Room
from schemas.decisions import Decision

_DECISION_NAMESPACE = UUID("9b6f3c1e-6a51-4d1f-8a4e-5c0c2d7b9a10")


class Unprocessable(Exception):
    """An input the contract has no decision for (it goes to ``dead-letters``)."""


class Decider:
    """Numbers the decisions one input causes, so their ids are stable."""

    def __init__(self, source: UUID, caused_by: UUID | None, room: Room | None, now: datetime):
        self.source = source
        self.caused_by = caused_by
        self.room = room
        self.now = now
        self.out: list[Decision] = []
        self._named: bytes | None = None

    def decision_id(self) -> UUID:
        """``uuid5(_DECISION_NAMESPACE, "<source>:<n>")`` for the next decision, ``n`` its
        position: the same SHA-1 of the namespace and the name, with the name's fixed part
        encoded once (``uuid.uuid5`` cost more than half of ``common``)."""
        if self._named is None:
            self._named = _DECISION_NAMESPACE.bytes + f"{self.source}:".encode()
        digest = hashlib.sha1(
            self._named + str(len(self.out)).encode(), usedforsecurity=False
        ).digest()
        return UUID(bytes=digest[:16], version=5)

    def common(self, room_id: str) -> dict[str, Any]:
        return {
            "event_id": self.decision_id(),
            "caused_by": self.caused_by,
            "room_id": room_id,
            "decided_at": self.now,
            "center_id": self.room.center_id if self.room else None,
        }

    def add(self, decision: Decision) -> None:
        self.out.append(decision)
