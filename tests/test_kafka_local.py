"""Tests for infra/kafka_local.py.

The fast tests cover the pure parts (rendering, port probing, jar cache, no-op paths) without
Java or Maven; the integration test really boots Kafka twice on throw-away ports.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import kafka_local as kl
from infra.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def two_free_ports() -> tuple[int, int]:
    a = free_port()
    b = free_port()
    while b == a:
        b = free_port()
    return a, b


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    port, cport = two_free_ports()
    return Settings(
        home=tmp_path / "home",
        jar_cache=tmp_path / "jar-cache",
        kafka_port=port,
        kafka_controller_port=cport,
    )


def parse_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- rendering


def test_server_properties_use_settings_ports_and_home(settings: Settings) -> None:
    props = parse_properties(kl.render_server_properties(settings))
    p, c = settings.kafka_port, settings.kafka_controller_port
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == f"127.0.0.1:{c}"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{p}"
    assert props["controller.listener.names"] == "CONTROLLER"
    log_dirs = Path(props["log.dirs"])
    assert log_dirs.is_absolute()
    assert log_dirs == (settings.home / "kafka" / "data").resolve()
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(home=Path(".spaces"))
    props = parse_properties(kl.render_server_properties(s))
    assert props["log.dirs"] == (tmp_path / ".spaces" / "kafka" / "data").as_posix()


def test_log4j2_properties_write_to_broker_log(settings: Settings) -> None:
    text = kl.render_log4j2_properties(settings)
    props = parse_properties(text)
    broker_log = (settings.home / "kafka" / "broker.log").resolve().as_posix()
    assert props["appender.file.type"] == "File"
    assert props["appender.file.fileName"] == f"${{sys:spaces.kafka.log:-{broker_log}}}"
    assert props["rootLogger.appenderRef.file.ref"] == props["appender.file.name"]


def test_write_configs_creates_both_files(settings: Settings) -> None:
    paths = kl.write_configs(settings)
    assert paths.server_properties.read_text() == kl.render_server_properties(settings)
    assert paths.log4j_properties.read_text() == kl.render_log4j2_properties(settings)


def test_cluster_id_format() -> None:
    ids = {kl.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")


# --------------------------------------------------------------------------- ports


def test_port_taken_by_a_bound_socket_is_detected(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert not kl.port_is_free(port)
        taken = settings.model_copy(update={"kafka_port": port})
        with pytest.raises(kl.BrokerError, match=f"port {port} is taken by another process"):
            kl.check_ports_free(taken)
    assert kl.port_is_free(port)
    kl.check_ports_free(settings)  # both fixture ports are free


async def test_start_refuses_when_port_is_taken(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        taken = settings.model_copy(update={"kafka_port": port})
        with pytest.raises(kl.BrokerError, match=f"port {port} is taken by another process"):
            await kl.start(taken)
    assert not kl.broker_paths(taken).pid_file.exists()


# --------------------------------------------------------------------------- jars


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Record (and refuse) any subprocess call: mvn/java must not run in the fast tests."""
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        raise AssertionError(f"unexpected subprocess: {cmd}")

    monkeypatch.setattr("infra.kafka_local.subprocess.run", fake_run)
    monkeypatch.setattr(kl, "_java", lambda: "/usr/bin/java")
    yield calls


def jar_dir_of(settings: Settings) -> Path:
    return settings.jar_cache / f"kafka-{settings.kafka_version}" / "jars"


def test_jar_cache_hit_does_not_call_maven(settings: Settings, no_subprocess: list[Any]) -> None:
    jars = jar_dir_of(settings)
    jars.mkdir(parents=True)
    (jars / "kafka_2.13-4.1.1.jar").write_bytes(b"fake")
    assert kl.ensure_jars(settings) == jars
    assert no_subprocess == []


def test_missing_mvn_is_a_clear_error(
    settings: Settings, no_subprocess: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infra.kafka_local.shutil.which", lambda name: None)
    with pytest.raises(kl.BrokerError, match="`mvn`"):
        kl.ensure_jars(settings)


def test_missing_java_is_a_clear_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr("infra.kafka_local.shutil.which", lambda name: None)
    with pytest.raises(kl.BrokerError, match="`java` was not found"):
        kl.ensure_jars(settings)


def test_maven_failure_reports_tail_and_leaves_no_cache(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kl, "_java", lambda: "/usr/bin/java")
    monkeypatch.setattr("infra.kafka_local.shutil.which", lambda name: f"/usr/bin/{name}")
    output = "\n".join(f"line {i}" for i in range(100)) + "\n[ERROR] could not resolve\n"

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, stdout=output)

    monkeypatch.setattr("infra.kafka_local.subprocess.run", fake_run)
    with pytest.raises(kl.BrokerError) as err:
        kl.ensure_jars(settings)
    message = str(err.value)
    assert "Maven failed (exit 1)" in message
    assert "[ERROR] could not resolve" in message
    assert "line 99" in message and "line 10\n" not in message  # only the tail
    version_dir = jar_dir_of(settings).parent
    assert list(version_dir.iterdir()) == []  # temp dir cleaned, no half cache


def test_maven_download_is_renamed_into_place(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kl, "_java", lambda: "/usr/bin/java")
    monkeypatch.setattr("infra.kafka_local.shutil.which", lambda name: f"/usr/bin/{name}")
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        out_dir = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        (out_dir / "kafka_2.13-4.1.1.jar").write_bytes(b"fake")
        (out_dir / "kafka-clients-4.1.1.jar").write_bytes(b"fake")
        return subprocess.CompletedProcess(cmd, 0, stdout="")

    monkeypatch.setattr("infra.kafka_local.subprocess.run", fake_run)
    jars = kl.ensure_jars(settings)
    assert jars == jar_dir_of(settings)
    assert sorted(p.name for p in jars.iterdir()) == [
        "kafka-clients-4.1.1.jar",
        "kafka_2.13-4.1.1.jar",
    ]
    assert [p.name for p in jars.parent.iterdir()] == ["jars"]  # no temp dir left behind
    (cmd,) = seen
    assert "dependency:copy-dependencies" in cmd
    assert "-DincludeScope=runtime" in cmd
    assert f"-Dkafka.version={settings.kafka_version}" in cmd
    assert str(Path(kl.__file__).with_name("pom.xml")) in cmd
    # Second call: cache hit, Maven not run again.
    assert kl.ensure_jars(settings) == jars
    assert len(seen) == 1


def test_format_is_skipped_when_storage_exists(
    settings: Settings, no_subprocess: list[Any]
) -> None:
    paths = kl.broker_paths(settings)
    paths.data.mkdir(parents=True)
    (paths.data / "meta.properties").write_text("cluster.id=x\n")
    assert kl.format_storage(settings, Path("/nonexistent/jars")) is False
    assert no_subprocess == []
    assert paths.server_properties.is_file()
    assert paths.log4j_properties.is_file()


# --------------------------------------------------------------------------- no-op paths


def test_stop_when_nothing_runs(settings: Settings) -> None:
    assert "not running" in kl.stop(settings)
    paths = kl.broker_paths(settings)
    paths.root.mkdir(parents=True)
    paths.pid_file.write_text("999999999\n")  # stale pid file
    assert "not running" in kl.down(settings)
    assert not paths.pid_file.exists()


def test_stale_pid_of_a_non_kafka_process_is_ignored(settings: Settings) -> None:
    import os

    paths = kl.broker_paths(settings)
    paths.root.mkdir(parents=True)
    paths.pid_file.write_text(f"{os.getpid()}\n")  # alive, but it's pytest, not kafka.Kafka
    assert "not running" in kl.stop(settings)


def test_stop_is_a_noop_for_external_kafka(settings: Settings) -> None:
    external = settings.model_copy(update={"kafka_bootstrap": "kafka.example:9092"})
    assert "nothing to stop" in kl.stop(external)


async def test_status_of_a_stopped_local_broker(settings: Settings) -> None:
    st = await kl.status(settings)
    assert st["mode"] == "local"
    assert st["running"] is False
    assert st["pid"] is None
    assert st["bootstrap"] == f"127.0.0.1:{settings.kafka_port}"
    assert st["topics"] == {}


async def test_wait_reachable_gives_up_at_the_deadline(settings: Settings) -> None:
    with pytest.raises(kl.BrokerError, match="not reachable within"):
        await kl.wait_reachable(settings.bootstrap, timeout_s=1.0)


# --------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_real_broker_up_status_down_twice(tmp_path: Path) -> None:
    port, cport = two_free_ports()
    s = Settings(
        home=tmp_path / "home",
        kafka_port=port,
        kafka_controller_port=cport,
        partitions=3,
    )  # default jar_cache on purpose: the real download/cache path
    expected = {name: 3 for name in s.topics.all()}
    try:
        for round_no in (1, 2):
            info = kl.up(s)
            assert info.started and not info.external and info.pid is not None
            assert info.start_seconds > 0
            if round_no == 1:
                assert set(info.topics_created) == set(s.topics.all())
                assert "formatted new storage" in info.notes
            else:
                assert info.topics_created == ()  # survived the restart
                assert "reused existing storage" in info.notes

            again = kl.up(s)  # idempotent while running
            assert not again.started and again.pid == info.pid

            st = kl.info(s)
            assert st["running"] and st["reachable"] and st["pid"] == info.pid
            assert st["topics"] == expected

            configs = asyncio.run(kl.topic_configs(s.bootstrap, list(s.topics.all())))
            for name in s.topics.all():
                policy = configs[name]["cleanup.policy"]
                assert policy == ("compact" if name in s.topics.compacted else "delete"), name

            assert "stopped" in kl.down(s)
            assert kl.info(s)["running"] is False
            assert kl.port_is_free(port)
    finally:
        kl.down(s)
