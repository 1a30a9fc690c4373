"""The start-up check asks another node of the cluster when one is down (no broker here)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, UnknownError

from infra import retention
from infra.retention import ATTEMPTS, ask_each_node_in_turn


class Cluster:
    """Nodes ``down`` do not answer; every question and metadata refresh is recorded."""

    def __init__(self, nodes: list[int], down: set[int]) -> None:
        self.nodes = nodes
        self.down = down
        self.asked: list[int] = []
        self.refreshes = 0

    async def ask(self, node: int) -> list[Any]:
        self.asked.append(node)
        if node in self.down:
            raise NodeNotReadyError(f"node {node} is not ready")
        return [f"configs of node {node}"]

    async def refresh(self) -> list[int]:
        self.refreshes += 1
        return self.nodes


async def test_a_node_that_is_down_is_skipped_for_the_next_one() -> None:
    cluster = Cluster([1, 2, 3], down={1})
    node, answer = await ask_each_node_in_turn(cluster.ask, [1, 2, 3], cluster.refresh, 0)
    assert (node, answer) == (2, ["configs of node 2"])
    assert cluster.asked == [1, 2]
    assert cluster.refreshes == 1


async def test_the_first_node_is_asked_once_when_it_answers() -> None:
    cluster = Cluster([1, 2, 3], down=set())
    assert await ask_each_node_in_turn(cluster.ask, [1, 2, 3], cluster.refresh, 0) == (
        1,
        ["configs of node 1"],
    )
    assert cluster.asked == [1]
    assert cluster.refreshes == 0


async def test_a_cluster_that_never_answers_raises_after_the_last_try() -> None:
    cluster = Cluster([1, 2], down={1, 2})
    with pytest.raises(NodeNotReadyError):
        await ask_each_node_in_turn(cluster.ask, [1, 2], cluster.refresh, 0)
    assert cluster.asked == [1, 2, 1, 2, 1, 2][:ATTEMPTS]


async def test_a_node_gone_from_the_metadata_is_not_asked_again() -> None:
    cluster = Cluster([2, 3], down={1})  # node 1 was fenced: the refresh no longer lists it
    node, _ = await ask_each_node_in_turn(cluster.ask, [1, 2, 3], cluster.refresh, 0)
    assert node == 3  # the second try takes the second node of the refreshed list
    assert cluster.asked == [1, 3]


async def test_an_error_that_is_not_a_node_down_is_not_tried_again() -> None:
    asked: list[int] = []

    async def refuses(node: int) -> list[Any]:
        asked.append(node)
        raise UnknownError("not a connection problem")

    async def refresh() -> list[int]:
        return [1, 2]

    with pytest.raises(UnknownError):
        await ask_each_node_in_turn(refuses, [1, 2], refresh, 0)
    assert asked == [1]


def test_connection_errors_count_as_a_node_down() -> None:
    assert issubclass(KafkaConnectionError, retention.NODE_DOWN)
