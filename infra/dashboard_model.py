"""The dashboard's read model: what the Kafka-fed dashboard knows, in memory.

Everything comes from two compacted topics (``usage-monthly`` and ``occupancy``), so the
dashboard runs where only Kafka is reachable and rebuilds this model from the topics on every
start. It answers the same shapes as ``infra.read_models`` (which reads the service's
database for ``spaces report``), so the page and its JSON API did not change shape.

No Kafka and no HTTP here: ``entrypoints.dashboard`` feeds ``apply_*`` from its FastStream
subscribers and serves the queries. Listeners (the server-sent event streams) get every change
pushed to their queue.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from infra.read_models import CHART_MONTHS, month_range, normalise_aggregate
from schemas.outputs import Occupancy, UsageMonthly, usage_key

HEATMAP_FIELD = "occupancy_by_weekday_hour"
"""7 rows (Monday first) x 24 local hours of average persons present (``null``: unknown)."""

Event = tuple[str, dict[str, Any]]
"""A change pushed to listeners: ``("occupancy", room)`` or ``("update", {"version": n})``."""


def aggregate(scope: str, ident: str, month: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """A value with every contract field present, ``has_data``, and the heatmap if it has one."""
    result: dict[str, Any] = dict(normalise_aggregate(scope, ident, month, value))
    result[HEATMAP_FIELD] = None if value is None else value.get(HEATMAP_FIELD)
    return result


@dataclass
class DashboardModel:
    """The last value per key of each compacted topic, and who wants to hear of changes."""

    timezone: str = "Asia/Seoul"
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``usage-monthly`` values (JSON) by their key."""
    rooms: dict[str, Occupancy] = field(default_factory=dict)
    """The last ``occupancy`` value of each room."""
    version: int = 0
    """Counts the changes applied: a page that saw version n has seen everything before."""
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)

    # --- writes (from the subscribers) ---------------------------------------------------

    def apply_usage(self, value: UsageMonthly) -> None:
        """The topic is compacted and keyed by scope/id/month: the last value wins."""
        self.usage[value.key] = value.model_dump(mode="json")
        self.version += 1
        self._push(("update", {"version": self.version}))

    def apply_occupancy(self, value: Occupancy) -> None:
        self.rooms[value.room_id] = value
        self.version += 1
        self._push(("occupancy", {**self._room(value), "version": self.version}))

    def listen(self, maxsize: int = 1000) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[Event]) -> None:
        self.listeners.discard(queue)

    def _push(self, event: Event) -> None:
        for queue in list(self.listeners):
            if queue.full():  # a slow page: it will refetch everything on the next update
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(("update", {"version": self.version}))
            else:
                queue.put_nowait(event)

    # --- reads ---------------------------------------------------------------------------

    def center_name(self, center: str) -> str:
        """The name some room's ``occupancy`` gave for the center, else its id."""
        names = sorted(
            r.center_name for r in self.rooms.values() if r.center_id == center and r.center_name
        )
        return names[0] if names else center

    def list_centers(self) -> list[dict[str, Any]]:
        """Every center the rooms or the center aggregates know, with its room count."""
        counts: dict[str, int] = {}
        for room in self.rooms.values():
            counts[room.center_id] = counts.get(room.center_id, 0) + 1
        for value in self.usage.values():
            if value["scope"] == "center":
                counts.setdefault(value["id"], 0)
        return [
            {"center_id": c, "name": self.center_name(c), "rooms": counts[c]}
            for c in sorted(counts)
        ]

    def center_exists(self, center: str) -> bool:
        return any(c["center_id"] == center for c in self.list_centers())

    def center_rooms(self, center: str) -> list[Occupancy]:
        return sorted(
            (r for r in self.rooms.values() if r.center_id == center), key=lambda r: r.room_id
        )

    def month_usage(
        self, center: str, month: str, chart_months: int = CHART_MONTHS
    ) -> dict[str, Any]:
        """The center's aggregate, its rooms' and the last months for the chart."""

        def value(scope: str, ident: str, m: str) -> dict[str, Any]:
            return aggregate(scope, ident, m, self.usage.get(usage_key(scope, ident, m)))

        return {
            "center_id": center,
            "center_name": self.center_name(center),
            "month": month,
            "center": value("center", center, month),
            "rooms": [
                {
                    **value("room", room.room_id, month),
                    "room_id": room.room_id,
                    "name": room.room_name or room.room_id,
                    "capacity": room.capacity,
                }
                for room in self.center_rooms(center)
            ],
            "months": [value("center", center, m) for m in month_range(month, chart_months)],
        }

    def occupancy(self, center: str | None) -> list[dict[str, Any]]:
        rooms = sorted(self.rooms.values(), key=lambda r: (r.center_id, r.room_id))
        return [self._room(r) for r in rooms if center is None or r.center_id == center]

    def _room(self, value: Occupancy) -> dict[str, Any]:
        return {
            "room_id": value.room_id,
            "center_id": value.center_id,
            "name": value.room_name or value.room_id,
            "occupancy": max(0, value.occupancy),
            "capacity": value.capacity,
            "as_of": value.as_of.astimezone(ZoneInfo(self.timezone)).isoformat(),
        }
