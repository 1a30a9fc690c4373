"""The bench's table: rows derived from a run's JSON (bench/run.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.child import Child, cpu_seconds
from bench.common import (
    git_revision,
    native_status,
    other_service_processes,
    postgres_cpu_seconds,
    process_age_s,
)
from bench.history import history_cost
from bench.run import _cpu, _tail, cpu_per_input, history_checks, national_checks, render
from bench.throughput import cpu_of_run


def test_the_statistics_tail_is_the_time_from_the_last_decision_to_the_last_aggregate() -> None:
    (row,) = _tail({"seconds": 18.64, "decisions_seconds": 14.82}, "tail")
    assert (row.figure, row.value, row.unit, row.passed) == ("tail", 3.82, "s", None)
    # A run that did not finish, or a ceiling (no aggregates): no row.
    assert _tail({"seconds": None, "decisions_seconds": 14.8}, "tail") == []
    assert _tail({"seconds": 5.0}, "tail") == []


def test_cpu_rows_give_microseconds_per_input_by_process_and_against_the_ceiling() -> None:
    run = {
        "status": "done",
        "inputs": 100_000,
        "cpu_s": {
            "by_process": {
                "11 --log-level INFO": 0.2,
                "12 --only statistics": 12.5,
                "13 --only authority,relay,clock": 8.0,
            },
            "consumer": 20.7,
            "broker": 3.0,
        },
    }
    ceiling = {
        "status": "done",
        "target": "ceiling",
        "inputs": 100_000,
        "cpu_s": {"by_process": {"7 --output decisions-x": 5.125}, "consumer": 5.125},
    }
    per_input, ratio = _cpu(run, ceiling)
    assert (per_input.value, per_input.unit, per_input.passed) == (207.0, "us", None)
    assert per_input.note == "supervisor 2; statistics 125; authority,relay,clock 80; broker 30"
    idle = {**run["cpu_s"], "by_process": {**run["cpu_s"]["by_process"], "11 --log-level INFO": 0}}
    # A process under 1 us per input (an idle supervisor) is left out of the breakdown.
    assert _cpu({**run, "cpu_s": idle})[0].note.startswith("statistics 125;")
    assert (ratio.value, ratio.unit) == (4.04, "x")
    assert cpu_per_input(ceiling) == 51.2
    assert _cpu(ceiling)[0].note == "ceiling 51"  # one process: named by what it is
    # Not finished, or not measured: no row (a partial run's CPU is not per input).
    assert _cpu({**run, "status": "stalled"}) == []
    assert _cpu({"status": "done", "inputs": 10}) == []


def test_cpu_of_run_counts_from_the_first_sample_and_a_process_started_since_from_zero() -> None:
    before = {"1 supervisor": 1.0, "2 authority": 2.5}
    after = {"1 supervisor": 1.25, "2 authority": 10.5, "3 statistics": 4.0}
    cpu = cpu_of_run(before, after, 100.0, 103.5)
    assert cpu == {
        "by_process": {"1 supervisor": 0.25, "2 authority": 8.0, "3 statistics": 4.0},
        "consumer": 12.25,
        "broker": 3.5,
        "database": None,
    }
    assert cpu_of_run({}, {}, None, 5.0) == {
        "by_process": {},
        "consumer": None,
        "broker": None,
        "database": None,
    }
    # A PostgreSQL run: the server's CPU between the same two samples, apart.
    assert cpu_of_run(before, after, None, None, 40.0, 47.25)["database"] == 7.25


def test_a_postgresql_runs_cpu_rows_name_the_servers_share_apart() -> None:
    run = {
        "status": "done",
        "inputs": 100_000,
        "cpu_s": {
            "by_process": {"12 --only statistics": 9.0, "13 --only authority,relay,clock": 10.0},
            "consumer": 19.0,
            "broker": 1.2,
            "database": 7.4,
        },
    }
    (per_input,) = _cpu(run)
    # The server's CPU is named, not added: "its processes" are the service's, as on SQLite.
    assert per_input.value == 190.0
    assert per_input.note == "statistics 90; authority,relay,clock 100; broker 12; PostgreSQL 74"


def test_the_postgresql_servers_cpu_counts_its_processes_and_their_reaped_children(
    tmp_path: Path,
) -> None:
    def process(pid: int, comm: str, utime: int, stime: int, cutime: int, cstime: int) -> None:
        entry = tmp_path / str(pid)
        entry.mkdir()
        (entry / "comm").write_text(comm + "\n")
        rest = ["S", "1", *["0"] * 9, str(utime), str(stime), str(cutime), str(cstime), "20"]
        (entry / "stat").write_text(f"{pid} ({comm}) " + " ".join(rest) + "\n")

    tick = os.sysconf("SC_CLK_TCK")
    assert postgres_cpu_seconds(tmp_path) is None  # no server here
    process(10, "postgres", 2 * tick, tick, 5 * tick, tick)  # the postmaster: 9 ticks-seconds
    process(11, "postgres", tick, 0, 0, 0)  # a backend
    process(12, "java", 50 * tick, 0, 0, 0)  # not a postgres process
    (tmp_path / "self").mkdir()  # not a process id
    assert postgres_cpu_seconds(tmp_path) == 10.0


def test_a_child_reports_the_cpu_its_processes_really_used(tmp_path: Path) -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = Child(
        "burner",
        [sys.executable, "-c", busy + "time.sleep(30)"],
        tmp_path,
        dict(os.environ),
        tmp_path / "burner.log",
    )
    child.start()
    try:
        deadline = time.monotonic() + 20
        used = 0.0
        while time.monotonic() < deadline and used < 0.3:
            used = sum((child.cpu_by_process() or {}).values())
            time.sleep(0.05)
        assert 0.3 <= used < 5
        rss = child.rss_by_process() or {}
        assert rss.keys() == (child.cpu_by_process() or {}).keys()  # the same processes
        assert all(1 < mib < 500 for mib in rss.values())  # an interpreter's few MiB
    finally:
        child.stop()
    assert child.cpu_by_process() is None  # stopped: nothing to read
    assert child.rss_by_process() is None
    assert cpu_seconds(child.pid) is None


def test_a_service_left_running_is_named_in_the_report_header() -> None:
    # Processes whose command lines look like a service left behind, and one that is not.
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    commands = {
        "run": [*sleep, "-m", "entrypoints.cli", "run", "--only", "statistics"],
        "demo": [*sleep, "/opt/x/.venv/bin/spaces", "demo"],
        "infra": [*sleep, "/opt/x/.venv/bin/spaces", "infra", "up"],
    }
    started = {name: subprocess.Popen(argv) for name, argv in commands.items()}
    try:
        time.sleep(0.2)
        found = {line.split(":", 1)[0] for line in other_service_processes()}
        assert str(started["run"].pid) in found
        assert str(started["demo"].pid) in found
        assert str(started["infra"].pid) not in found  # it keeps nothing running
        report = {
            "machine": {
                "nproc": 2,
                "cpu": "cpu",
                "python": "3",
                "sqlite": "3",
                "loadavg_at_start": [0, 0, 0],
                "other_service_processes": other_service_processes(),
            },
            "git": {},
            "command": "bench",
            "date": "today",
            "broker": {"bootstrap": "b", "note": "n"},
            "service_cwd": ".",
            "checks": [],
            "output": "bench.json",
            "elapsed_s": 1,
        }
        warnings = [line for line in render(report).splitlines() if "WARNING" in line]
        assert any(f"{started['run'].pid}: " in line for line in warnings)
    finally:
        for process in started.values():
            process.kill()
            process.wait()
    found = {line.split(":", 1)[0] for line in other_service_processes()}
    assert not found & {str(process.pid) for process in started.values()}


def test_the_report_says_whether_the_measured_checkout_ran_compiled(tmp_path: Path) -> None:
    from domain import _compiled

    here = native_status(Path(__file__).resolve().parents[1])
    # Whatever SPACES_PURE_DOMAIN says here: the service the bench starts does not get it.
    built = bool(_compiled.extensions()) and not _compiled.stale()
    assert here.startswith("compiled:" if built else "interpreted:"), here
    assert native_status(tmp_path) == "interpreted: no infra/native.py in this checkout"
    report = {
        "machine": {"nproc": 2, "cpu": "c", "python": "3", "sqlite": "3", "loadavg_at_start": []},
        "git": {},
        "command": "bench",
        "date": "today",
        "broker": {"bootstrap": "b", "note": "n"},
        "service_cwd": ".",
        "service_native": here,
        "checks": [],
        "output": "bench.json",
        "elapsed_s": 1,
    }
    assert f"  service code: {here}" in render(report).splitlines()


def test_a_broker_still_warming_up_in_the_ceiling_run_is_named_in_the_report_header() -> None:
    # The broker's age comes from its process's start: a process started now is seconds old.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        age = process_age_s(sleeper.pid)
        assert age is not None and 0.0 <= age < 20.0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert process_age_s(sleeper.pid) is None  # gone

    def header(broker_s: float | None, up_s: float | None = 400.0) -> list[str]:
        ceiling = {"inputs": 100_000, "cpu_s": {"broker": broker_s}}
        report = {
            "machine": {
                "nproc": 2,
                "cpu": "c",
                "python": "3",
                "sqlite": "3",
                "loadavg_at_start": [0],
            },
            "git": {},
            "command": "bench",
            "date": "today",
            "broker": {"bootstrap": "b", "note": "n", "up_s": up_s},
            "service_cwd": ".",
            "figures": {"scale": {"ceiling": ceiling}},
            "checks": [],
            "output": "bench.json",
            "elapsed_s": 1,
        }
        return [line for line in render(report).splitlines() if "WARNING" in line]

    # 4.0 s for 100,000 inputs: 40 us each, as a broker minutes old spent.
    assert any("spent 40 us" in line and "up 400 s" in line for line in header(4.0))
    assert header(1.2) == []  # 12 us: warm
    assert header(None) == []  # no ceiling run (e.g. --only latency)


def test_the_report_names_every_changed_file_whole(tmp_path: Path) -> None:
    """``git status --porcelain`` starts a file changed but not staged with a blank column
    (" M docs/x.md"); the report once cut that file's first letter ("ocs/x.md")."""

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text("one\n")
    (tmp_path / "y.py").write_text("one\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    (tmp_path / "docs" / "x.md").write_text("two\n")  # changed, not staged
    (tmp_path / "y.py").write_text("two\n")
    git("add", "y.py")  # changed and staged
    found = git_revision(tmp_path)
    assert found is not None
    assert found["dirty"] is True
    assert sorted(found["changed"]) == ["docs/x.md", "y.py"]
    assert len(found["commit"]) >= 7 and "\n" not in found["commit"]


def _history_run(history: int, authority: float, statistics: float, written: int) -> dict:
    return {
        "status": "done",
        "history": history,
        "authority_us": authority,
        "statistics_us": statistics,
        "bytes_per_input": {"authority": 1_800, "statistics": written},
    }


def test_the_id_memory_rows_give_each_consumers_cost_and_the_ratio_to_an_empty_memory() -> None:
    rows = history_checks(
        {
            "rooms": 1000,
            "mixed_inputs": 20_000,
            "runs": [
                _history_run(0, 80.0, 77.0, 1_251),
                _history_run(1_000_000, 80.0, 93.5, 9_260),
            ],
        }
    )
    by_figure = {row.figure.strip(): row for row in rows}
    ratio = by_figure["statistics: 1,000,000 ids remembered / 0"]
    assert (ratio.value, ratio.unit, ratio.passed) == (1.21, "x", None)  # informational
    assert by_figure["room authority: 1,000,000 ids remembered / 0"].value == 1.0
    written = [row.value for row in rows if row.unit == "B"]
    assert written == [1_251, 9_260]
    assert rows[0].figure.startswith("id memory: 0 ids remembered, 20,000 mixed inputs")


def test_a_failed_id_memory_run_is_named_and_gives_no_ratio() -> None:
    failed = {"status": "timeout", "history": 1_000_000, "detail": "no answer in 900s"}
    rows = history_checks(
        {"rooms": 10, "mixed_inputs": 100, "runs": [_history_run(0, 1, 1, 1), failed]}
    )
    assert not [row for row in rows if row.unit == "x"]
    assert any("timeout: no answer in 900s" in row.note for row in rows)


def test_the_id_memory_scenario_measures_the_checkout_it_is_given(tmp_path: Path) -> None:
    """A tiny run of the real tool in this checkout; a directory without the service's code
    is refused, not measured with the bench's own code."""
    repo = Path(__file__).resolve().parents[1]
    result = history_cost(repo, rooms=10, inputs=100, histories=(0, 500), timeout_s=120)
    assert [run["status"] for run in result["runs"]] == ["done", "done"]
    assert [run["history"] for run in result["runs"]] == [0, 500]
    assert all(run["statistics_us"] > 0 and run["authority_us"] > 0 for run in result["runs"])
    # Two rounds, alternating; each figure the best of its rounds.
    assert [run["history"] for run in result["every_run"]] == [0, 500, 0, 500]
    for best in result["runs"]:
        rounds = [run for run in result["every_run"] if run["history"] == best["history"]]
        assert best["statistics_us"] == min(run["statistics_us"] for run in rounds)
        assert best["authority_us"] == min(run["authority_us"] for run in rounds)
    elsewhere = history_cost(tmp_path, rooms=10, inputs=100, histories=(0,), timeout_s=120)
    assert elsewhere["runs"][0]["status"] == "crashed"


def _service_run(rooms: int, inputs: int, rate: float, consumer_cpu: float) -> dict:
    return {
        "status": "done",
        "target": "service",
        "rooms": rooms,
        "inputs": inputs,
        "rate": rate,
        "seconds": inputs / rate,
        "decisions_seconds": inputs / rate - 2.5,
        "cpu_s": {"by_process": {"1 --only statistics": consumer_cpu}, "consumer": consumer_cpu},
        "usage": {"caught_up": True, "aggregates_read": 90_000},
        "rss_mib": [
            {"decided": 28_000, "rss_mib": 300.0},
            {"decided": 128_000, "rss_mib": 520.5},
            {"decided": 128_000, "rss_mib": 530.0, "final": True},
        ],
    }


def test_the_national_rows_compare_the_run_with_the_scale_scenarios() -> None:
    national = {
        "rooms": 28_000,
        "mixed_inputs": 100_000,
        "run": _service_run(28_000, 128_000, 4_000.0, 51.2),
    }
    scale = {
        "ceiling": {"status": "done", "inputs": 101_000, "cpu_s": {"consumer": 3.333}},
        "sqlite": {**_service_run(1_000, 101_000, 8_000.0, 20.2), "rss_mib": []},
    }
    rows = {row.figure.strip(): row for row in national_checks(national, scale)}
    first = rows[
        "national scale: 28,000 rooms, 100,000 mixed inputs + 28,000 room.configured (SQLite)"
    ]
    assert (first.value, first.unit, first.passed, first.note) == (4_000.0, "inputs/s", None, "")
    assert rows["last aggregate after the last decision"].value == 2.5
    assert rows["usage-monthly aggregates sent"].value == 90_000
    assert rows["CPU per input (its processes)"].value == 400.0
    assert rows["CPU per input / ceiling's"].value == 12.12
    assert rows["rate / scale run's (1,000 rooms)"].value == 0.5
    assert rows["CPU per input / scale run's (1,000 rooms)"].value == 2.0
    assert rows["RSS of spaces run after 28,000 decided"].value == 300.0
    assert rows["RSS of spaces run after 128,000 decided"].value == 520.5
    assert all(row.passed is None for row in rows.values())  # no target: informational


def test_a_national_run_that_did_not_finish_is_named_and_compared_with_nothing() -> None:
    stalled = {**_service_run(28_000, 128_000, 1_000.0, 10.0), "status": "stalled"}
    stalled["detail"] = "no progress for 60 s"
    stalled["usage"] = {"caught_up": False, "aggregates_read": 10}
    scale = {"sqlite": _service_run(1_000, 101_000, 8_000.0, 20.2)}
    rows = national_checks({"rooms": 28_000, "mixed_inputs": 100_000, "run": stalled}, scale)
    assert rows[0].note == "stalled: no progress for 60 s"
    figures = [row.figure.strip() for row in rows]
    assert not any("scale run's" in figure or "CPU per input" in figure for figure in figures)
    assert rows[figures.index("usage-monthly aggregates sent")].note == (
        "they do not add up to the decisions"
    )
    (failed,) = national_checks({"error": "RuntimeError('broker')"}, None)
    assert (failed.passed, failed.note) == (False, "RuntimeError('broker')")
