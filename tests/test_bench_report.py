"""The bench's table: rows derived from a run's JSON (bench/run.py)."""

from __future__ import annotations

from bench.run import _tail


def test_the_statistics_tail_is_the_time_from_the_last_decision_to_the_last_aggregate() -> None:
    (row,) = _tail({"seconds": 18.64, "decisions_seconds": 14.82}, "tail")
    assert (row.figure, row.value, row.unit, row.passed) == ("tail", 3.82, "s", None)
    # A run that did not finish, or a ceiling (no aggregates): no row.
    assert _tail({"seconds": None, "decisions_seconds": 14.8}, "tail") == []
    assert _tail({"seconds": 5.0}, "tail") == []
