"""`make demo`, the quick start's first command, end to end on the real broker and SQLite.

The demo runs the whole service in its process while it polls the database: a bug there
(a reader holding SQLite's write lock against the service's inline writer) once made it
fail and then hang, and nothing but `make demo` showed it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrypoints.demo import demo
from infra.settings import Settings
from tests.conftest import isolated_settings

pytestmark = pytest.mark.integration


async def test_the_demo_runs_to_the_end_and_reports_what_it_decided(
    kafka_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = isolated_settings(kafka_settings, f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")

    assert await demo(settings, months=2) == 0

    out = capsys.readouterr().out
    assert "done in" in out
    kiosk = re.search(r"kiosk round trip \(publish -> decision\): median (\d+) ms", out)
    assert kiosk is not None, out[-2000:]
    admitted = re.search(r"checkin\.admitted\s+(\d+)", out)
    assert admitted is not None and int(admitted.group(1)) > 0, out[-2000:]
    assert "Traceback" not in out and "error:" not in out
