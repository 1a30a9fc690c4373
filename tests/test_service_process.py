"""What a service process sets up for itself before its parts start."""

from __future__ import annotations

import gc

import pytest

from entrypoints.service import tune_garbage_collector
from infra.settings import Settings


def test_a_service_process_collects_cycles_at_the_configured_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPACES_GC_THRESHOLDS", "[12345, 7, 3]")
    before = gc.get_threshold()
    try:
        tune_garbage_collector(Settings())
        assert gc.get_threshold() == (12345, 7, 3)
        # What existed at start is frozen: the collector no longer walks it.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
