"""Intervals that hold a room, and how to find the ones that matter without scanning them all.

A room is held by its confirmed bookings and its sessions (``Hold``). The rules ask about
those intervals: how many persons are held at the busiest instant of an interval
(``max_concurrent``), which holds overlap an interval or are under way at an instant
(``StartIndex``), and, when the capacity or the rules change, which bookings meet an
instant where the room is over capacity (``Overload``) or overlap another hold
(``Overlaps``). A room can have thousands of future bookings, so each of these works
from sorted starts or one sweep over sorted edges instead of comparing every pair.

Intervals are half-open, ``[starts_at, ends_at)``, and times are compared as instants.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import heapify, heappop, heappush
from typing import Generic, Protocol, TypeVar


@dataclass(frozen=True)
class Hold:
    """Something that holds the room for an interval: a booking or a session."""

    ident: str
    persons: int
    starts_at: datetime
    ends_at: datetime

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at


def max_concurrent(holds: Iterable[Hold], starts_at: datetime, ends_at: datetime) -> int:
    """Most persons held at any instant of ``[starts_at, ends_at)`` (a sweep over edges)."""
    edges: list[tuple[datetime, int]] = []
    for hold in holds:
        if hold.overlaps(starts_at, ends_at):
            edges.append((max(hold.starts_at, starts_at), hold.persons))
            edges.append((min(hold.ends_at, ends_at), -hold.persons))
    # At equal times ends (-) come before starts (+): intervals are half-open.
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


class Overload:
    """The instants at which holds together hold more persons than a capacity.

    One sweep over the holds' sorted edges gives the load between consecutive edge times;
    the spans where it exceeds the capacity are kept, sorted and disjoint, so whether an
    interval meets one is a bisection: O(n log n) to build, O(log n) per question.
    ``Overload(holds, c).during(s, e)`` is ``max_concurrent(holds, s, e) > c`` for holds of
    at least one person over non-empty intervals, as the contract makes them.
    """

    def __init__(self, holds: Iterable[Hold], capacity: int) -> None:
        self._capacity = capacity
        edges: list[tuple[datetime, int]] = []
        for hold in holds:
            if hold.starts_at < hold.ends_at:
                edges.append((hold.starts_at, hold.persons))
                edges.append((hold.ends_at, -hold.persons))
        edges.sort(key=lambda edge: edge[0])
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        load = 0
        for i, (at, delta) in enumerate(edges):
            load += delta
            if i + 1 < len(edges) and edges[i + 1][0] == at:
                continue  # the load from ``at`` on counts every edge at that instant
            if load > capacity and len(self._starts) == len(self._ends):
                self._starts.append(at)
            elif load <= capacity and len(self._starts) > len(self._ends):
                self._ends.append(at)

    def during(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether the load exceeds the capacity at some instant of ``[starts_at, ends_at)``."""
        if self._capacity < 0:
            return True  # even an empty room holds more than that
        if not starts_at < ends_at:
            return False
        first = bisect_right(self._ends, starts_at)  # the first span still going at starts_at
        return first < len(self._starts) and self._starts[first] < ends_at

    def clear_from(self, starts_at: datetime, ends_at: datetime) -> datetime:
        """The earliest instant of ``[starts_at, ends_at]`` from which on the load stays within
        the capacity up to ``ends_at``: after the last overloaded span before ``ends_at``."""
        if self._capacity < 0:
            return ends_at
        last = bisect_left(self._starts, ends_at) - 1  # the last span starting before ends_at
        if last < 0 or self._ends[last] <= starts_at:
            return starts_at
        return min(self._ends[last], ends_at)


class Overlaps:
    """Whether any hold but the ones named ``ident`` overlaps an interval, for many intervals.

    Holds sorted by start; for every prefix of them, the three with the latest ends. The
    holds starting before an interval ends are a prefix, and one of them overlaps the
    interval exactly when the latest end among them is after its start. Up to two holds
    share an ident (a booking ``session:x`` and the session ``x``), so among three latest
    ends there is always one not excluded. O(n log n) to build, O(log n) per question.
    """

    def __init__(self, holds: Iterable[Hold]) -> None:
        ordered = sorted(holds, key=lambda hold: hold.starts_at)
        self._starts = [hold.starts_at for hold in ordered]
        latest: list[tuple[Hold, ...]] = [()]
        for hold in ordered:
            candidates = (*latest[-1], hold)
            latest.append(tuple(sorted(candidates, key=lambda h: h.ends_at, reverse=True)[:3]))
        self._latest = latest

    def besides(self, ident: str, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether a hold whose ident is not ``ident`` overlaps ``[starts_at, ends_at)``."""
        before_end = bisect_left(self._starts, ends_at)
        for hold in self._latest[before_end]:
            if hold.ident != ident:
                return starts_at < hold.ends_at
        return False


class Timed(Protocol):
    """What ``StartIndex`` indexes: bookings and sessions."""

    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime: ...


T = TypeVar("T", bound=Timed)


class StartIndex(Generic[T]):
    """Items sorted by start, to find those overlapping an interval or under way at an instant.

    No item lasts longer than the longest one seen, so an item that is still going at
    ``instant`` started after ``instant - longest``: a question looks only at the items
    starting in a window found by bisection, not at every item. Items are also kept in a
    heap by end, so dropping those that ended looks at them alone. Answers come in the
    order the items were added (the order of the room's dicts, which decisions depend on).
    An item's times must not change while it is indexed.
    """

    def __init__(self, items: Iterable[T] = ()) -> None:
        ranked = sorted(enumerate(items), key=lambda entry: entry[1].starts_at)
        self._starts = [item.starts_at for _, item in ranked]
        self._entries = ranked
        """(rank, item), sorted by (start, rank) like ``_starts``; rank is the order added."""
        self._by_end = [(item.ends_at, rank, item) for rank, item in ranked]
        heapify(self._by_end)
        self._next_rank = len(ranked)
        self._longest = timedelta(0)
        """At least the longest duration of any item (it never shrinks, which is safe)."""
        for _, item in ranked:
            self._longest = max(self._longest, item.ends_at - item.starts_at)

    def add(self, item: T) -> None:
        """Index a new item: O(log n) to find its place (the list insert is a memmove)."""
        rank, self._next_rank = self._next_rank, self._next_rank + 1
        at = bisect_right(self._starts, item.starts_at)
        self._starts.insert(at, item.starts_at)
        self._entries.insert(at, (rank, item))
        heappush(self._by_end, (item.ends_at, rank, item))
        self._longest = max(self._longest, item.ends_at - item.starts_at)

    def overlapping(self, starts_at: datetime, ends_at: datetime) -> list[T]:
        """The items overlapping ``[starts_at, ends_at)``, in the order added."""
        low = bisect_right(self._starts, starts_at - self._longest)
        high = bisect_left(self._starts, ends_at)
        found = [entry for entry in self._entries[low:high] if starts_at < entry[1].ends_at]
        return [item for _, item in sorted(found, key=lambda entry: entry[0])]

    def started_by(self, instant: datetime, after: datetime) -> list[T]:
        """The items with ``starts_at <= instant`` and ``ends_at > after``, in the order added."""
        low = bisect_right(self._starts, after - self._longest)
        high = bisect_right(self._starts, instant)
        found = [entry for entry in self._entries[low:high] if after < entry[1].ends_at]
        return [item for _, item in sorted(found, key=lambda entry: entry[0])]

    def under_way(self, instant: datetime, early: timedelta) -> list[T]:
        """The items with ``starts_at - early <= instant < ends_at``, in the order added."""
        low = bisect_right(self._starts, instant - self._longest)
        high = bisect_right(self._starts, instant + early)
        found = [
            entry
            for entry in self._entries[low:high]
            if entry[1].starts_at - early <= instant < entry[1].ends_at
        ]
        return [item for _, item in sorted(found, key=lambda entry: entry[0])]

    def first_end(self) -> datetime | None:
        """The earliest end of an item still indexed (``pop_ended``'s next one)."""
        return self._by_end[0][0] if self._by_end else None

    def pop_ended(self, horizon: datetime) -> list[T]:
        """Remove and return the items that ended at or before ``horizon``."""
        ended: list[T] = []
        while self._by_end and self._by_end[0][0] <= horizon:
            _, rank, item = heappop(self._by_end)
            at = bisect_left(self._starts, item.starts_at)
            while self._entries[at][0] != rank:  # among the items starting at the same time
                at += 1
            del self._starts[at]
            del self._entries[at]
            ended.append(item)
        return ended
