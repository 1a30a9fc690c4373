"""``/health`` and ``/metrics`` of a service process, without a broker: the health rules,
the decision counts (committed batches only), the Prometheus text and the children's ports.
The same endpoint on the real broker: ``tests/test_integration_health_metrics.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.supervisor import metrics_ports
from infra.observability import (
    DECISIONS,
    METRICS,
    DecisionCounts,
    Health,
    MetricsServer,
    observe_batch,
)
from schemas.decisions import DECISION_ADAPTER
from tests.test_schemas import decisions as decision_examples


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Decision:
    def __init__(self, kind: str, reason: str | None = None) -> None:
        self.type = kind
        if reason is not None:
            self.reason = reason


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_healthy_only_when_every_part_runs_and_the_broker_answered_recently() -> None:
    clock = FakeClock()
    parts = {"authority": "running", "relay": "running"}
    health = Health(stale_s=30, parts=lambda: dict(parts), clock=clock)
    health.expect("authority")
    assert health.report()[0]  # just started: not stale yet
    clock.now += 31
    healthy, document = health.report()
    assert not healthy and document["status"] == "unavailable"
    assert document["broker"] == {"reachable": False, "seconds_since_answer": {"authority": 31.0}}
    health.broker_answered("authority")
    assert health.report() == (
        True,
        {
            "status": "ok",
            "parts": parts,
            "broker": {"reachable": True, "seconds_since_answer": {"authority": 0.0}},
        },
    )
    parts["relay"] = "starting"
    assert not health.report()[0]
    parts["relay"] = "failed"
    assert not health.report()[0]


def test_a_process_with_no_parts_is_not_healthy() -> None:
    assert not Health(stale_s=30, parts=dict).report()[0]


def test_decisions_count_only_when_their_batch_commits() -> None:
    counts = DecisionCounts()
    authority, other = object(), object()
    counts.add(authority, [Decision("checkin.admitted"), Decision("checkin.denied", "room_full")])
    counts.discard(authority)  # rolled back: decided again
    counts.add(authority, [Decision("checkin.admitted"), Decision("checkin.denied", "room_full")])
    counts.add(other, [Decision("room.configured")])  # another consumer's batch in flight
    counts.commit(authority)
    assert counts.totals == {("checkin.admitted", ""): 1, ("checkin.denied", "room_full"): 1}
    counts.commit(authority)  # nothing pending: nothing added
    counts.commit(other)
    assert sum(counts.totals.values()) == 3


def test_real_decisions_count_by_type_and_reason() -> None:
    counts = DecisionCounts()
    handler = object()
    examples = decision_examples()
    models = [DECISION_ADAPTER.validate_json(json.dumps(examples[t])) for t in sorted(examples)]
    counts.add(handler, models)
    counts.commit(handler)
    assert counts.totals[("checkin.denied", "room_full")] == 1
    assert counts.totals[("checkin.admitted", "")] == 1
    assert counts.totals[("booking.rejected", examples["booking.rejected"]["reason"])] == 1
    assert sum(counts.totals.values()) == len(examples)


def test_children_of_the_supervisor_serve_on_consecutive_ports() -> None:
    assert metrics_ports(8331, 2) == [8331, 8332]
    assert metrics_ports(0, 2) == [0, 0]  # not served


async def test_the_endpoint_answers_health_and_prometheus_text() -> None:
    clock = FakeClock()
    parts = {"authority": "running"}
    health = Health(stale_s=5, parts=lambda: parts, clock=clock)
    health.expect("authority")
    server = MetricsServer("127.0.0.1", 0, health)
    port = await server.start()
    handler = object()
    before = samples((await get(port, "/metrics"))[1].decode())
    try:
        DECISIONS.add(handler, [Decision("booking.rejected", "room_full_test")] * 2)
        DECISIONS.commit(handler)
        METRICS.inc("h2test_records_total", 7)
        METRICS.set("h2test_last_batch_seconds", 0.25)
        observe_batch("h2test", 40, 0.02)

        status, body = await get(port, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = await get(port, "/metrics")
        assert status == 200
        after = samples(body.decode())
        key: Any = (
            "spaces_decisions_by_type_total",
            (("reason", "room_full_test"), ("type", "booking.rejected")),
        )
        assert after[key] - before.get(key, 0) == 2
        assert after[("spaces_h2test_records_total", ())] == 7
        assert after[("spaces_h2test_last_batch_seconds", ())] == 0.25
        assert after[("spaces_batch_records_count", (("consumer", "h2test"),))] == 1
        assert after[("spaces_batch_records_sum", (("consumer", "h2test"),))] == 40
        assert after[("spaces_batch_seconds_sum", (("consumer", "h2test"),))] == 0.02
        assert ("process_resident_memory_bytes", ()) in after

        clock.now += 6  # the broker has not answered for longer than stale_s
        status, body = await get(port, "/health")
        assert status == 503 and json.loads(body)["broker"]["reachable"] is False
        after = samples((await get(port, "/metrics"))[1].decode())
        assert after[("spaces_broker_reachable", ())] == 0
        assert (await get(port, "/nothing"))[0] == 404
        assert (await get(port, "/health", method="POST"))[0] == 405
    finally:
        await server.stop()
        METRICS.counters.pop("h2test_records_total", None)
        METRICS.gauges.pop("h2test_last_batch_seconds", None)


async def test_a_port_in_use_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    from entrypoints.service import Services
    from infra.settings import Settings

    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    taken = holder.sockets[0].getsockname()[1]
    try:
        services = Services(Settings(metrics_port=taken))
        health = Health(stale_s=5, parts=dict)
        assert await services._serve_health(health) is None
        assert services.metrics_port is None
        assert "cannot serve /health and /metrics" in caplog.text
    finally:
        holder.close()
        await holder.wait_closed()
