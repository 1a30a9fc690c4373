"""The cross-topic merge of co-partitioned inputs (consumers.batch.TimeAlignedBuffer)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from consumers.batch import TimeAlignedBuffer

CAP0, BOOK0, CHK0 = (TopicPartition(t, 0) for t in ("capacity", "bookings", "checkins"))
CHK1 = TopicPartition("checkins", 1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = b"r"
    value: bytes | None = b"{}"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def recs(tp: TopicPartition, *stamps: int) -> list[Rec]:
    return [Rec(tp.topic, tp.partition, i, ts) for i, ts in enumerate(stamps)]


def order(out: list[Rec]) -> list[tuple[str, int]]:
    return [(r.topic, r.timestamp) for r in out]


ASSIGNED = [CAP0, BOOK0, CHK0, CHK1]


def test_heads_of_a_group_go_out_in_timestamp_order() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0)
    buffer.add({CHK0: recs(CHK0, 5, 7), CAP0: recs(CAP0, 3, 6)})
    out = buffer.take(ASSIGNED, lagging=set(), limit=10, now=0.0)
    assert order(out) == [("capacity", 3), ("checkins", 5), ("capacity", 6), ("checkins", 7)]


def test_order_within_a_partition_is_never_changed() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0)
    buffer.add({CHK0: recs(CHK0, 9, 2, 4)})  # producer clocks can go backwards
    out = buffer.take(ASSIGNED, lagging=set(), limit=10, now=0.0)
    assert [r.offset for r in out] == [0, 1, 2]


def test_a_partition_behind_holds_its_group_back_until_read_or_idle() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0)
    # The check-ins were fetched first; the room's configuration is still unread.
    buffer.add({CHK0: recs(CHK0, 5), CHK1: recs(CHK1, 6)})
    out = buffer.take(ASSIGNED, lagging={CAP0}, limit=10, now=0.0)
    assert order(out) == [("checkins", 6)]  # partition 1's group is not held back
    assert buffer.waiting_on == {CAP0}
    assert buffer.take(ASSIGNED, lagging={CAP0}, limit=10, now=0.5) == []
    buffer.add({CAP0: recs(CAP0, 3)})
    out = buffer.take(ASSIGNED, lagging=set(), limit=10, now=0.6)
    assert order(out) == [("capacity", 3), ("checkins", 5)]
    assert buffer.waiting_on == set()


def test_an_idle_partition_stops_holding_back_after_max_idle() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0)
    buffer.add({CHK0: recs(CHK0, 5)})
    assert buffer.take(ASSIGNED, lagging={CAP0}, limit=10, now=0.0) == []
    assert buffer.take(ASSIGNED, lagging={CAP0}, limit=10, now=0.9) == []
    assert order(buffer.take(ASSIGNED, lagging={CAP0}, limit=10, now=1.0)) == [("checkins", 5)]


def test_limit_and_clear() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0)
    buffer.add({CHK0: recs(CHK0, 1, 2, 3)})
    assert len(buffer.take(ASSIGNED, lagging=set(), limit=2, now=0.0)) == 2
    assert len(buffer) == 1
    buffer.clear()
    assert len(buffer) == 0


def test_equal_timestamps_put_rooms_before_bookings_before_checkins() -> None:
    buffer = TimeAlignedBuffer(max_idle_s=1.0, topic_order=("capacity", "bookings", "checkins"))
    buffer.add({CHK0: recs(CHK0, 5), BOOK0: recs(BOOK0, 5), CAP0: recs(CAP0, 5)})
    out = buffer.take(ASSIGNED, lagging=set(), limit=10, now=0.0)
    assert [r.topic for r in out] == ["capacity", "bookings", "checkins"]
