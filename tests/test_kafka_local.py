"""Tests for infra/kafka_local.py.

The fast tests cover the pure parts (rendering, port probing, jar cache, no-op paths) without
Java or Maven; the integration test really boots Kafka twice on throw-away ports.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
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


class _ConfigsAnswer:
    """One describe_configs response: (code, message, type, name, entries) per resource."""

    def __init__(self, *resources: tuple[int, str, int, str, list[tuple[str, str]]]) -> None:
        self.resources = list(resources)


def test_topic_configs_retry_a_topic_not_known_yet_and_name_a_lasting_error() -> None:
    """A node that has not yet the metadata of a new topic answers UNKNOWN_TOPIC_OR_PARTITION
    (3, retriable): asked again until the deadline. Other errors fail with their name."""
    known = _ConfigsAnswer((0, "", 2, "decisions", [("cleanup.policy", "delete")]))
    assert kl._configs_of([known], retry_allowed=True) == {
        "decisions": {"cleanup.policy": "delete"}
    }
    unknown = _ConfigsAnswer((3, "", 2, "decisions", []))
    with pytest.raises(kl._RetriableConfigError):
        kl._configs_of([unknown], retry_allowed=True)
    with pytest.raises(kl.BrokerError, match="UnknownTopicOrPartitionError"):
        kl._configs_of([unknown], retry_allowed=False)
    denied = _ConfigsAnswer((29, "no", 2, "decisions", []))  # TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(kl.BrokerError, match="TopicAuthorizationFailedError: no"):
        kl._configs_of([denied], retry_allowed=True)


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


# --------------------------------------------------------------------------- the cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Settings:
    """Ports far enough apart that the nodes' (port + 10 n) never meet."""
    base = 40000 + (abs(hash(tmp_path)) % 2000) * 10
    return Settings(
        home=tmp_path / "home",
        jar_cache=tmp_path / "jar-cache",
        kafka_port=base,
        kafka_controller_port=base + 1,
    )


def test_one_broker_is_the_single_node_config(settings: Settings) -> None:
    assert kl.render_server_properties(settings, 1, 1) == kl.render_server_properties(settings)
    (node,) = kl.cluster_nodes(settings, 1)
    assert node.paths == kl.broker_paths(settings)
    assert kl.cluster_bootstrap(settings, 1) == settings.bootstrap


def test_cluster_node_properties(cluster: Settings) -> None:
    p, c = cluster.kafka_port, cluster.kafka_controller_port
    voters = f"1@127.0.0.1:{c},2@127.0.0.1:{c + 10},3@127.0.0.1:{c + 20}"
    for node_id in (1, 2, 3):
        props = parse_properties(kl.render_server_properties(cluster, 3, node_id))
        port, cport = p + 10 * (node_id - 1), c + 10 * (node_id - 1)
        assert props["process.roles"] == "broker,controller"
        assert props["node.id"] == str(node_id)
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props  # a static quorum
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
        node_dir = (cluster.home / "kafka-cluster" / f"node-{node_id}").resolve()
        assert Path(props["log.dirs"]) == node_dir / "data"
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        for key in (
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "share.coordinator.state.topic.replication.factor",
        ):
            assert props[key] == "3", key
        for key in ("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
            assert props[key] == "2", key


def test_cluster_bootstrap_names_every_node(cluster: Settings) -> None:
    p = cluster.kafka_port
    assert kl.cluster_bootstrap(cluster, 3) == (
        f"127.0.0.1:{p},127.0.0.1:{p + 10},127.0.0.1:{p + 20}"
    )
    external = cluster.model_copy(update={"kafka_bootstrap": "k1:9092,k2:9092"})
    assert kl.cluster_bootstrap(external, 3) == "k1:9092,k2:9092"


def test_overlapping_node_ports_are_refused(cluster: Settings) -> None:
    clash = cluster.model_copy(update={"kafka_controller_port": cluster.kafka_port + 10})
    with pytest.raises(kl.BrokerError, match="overlap"):
        kl.cluster_nodes(clash, 3)
    with pytest.raises(kl.BrokerError, match="at least one broker"):
        kl.cluster_nodes(cluster, 0)


def test_replication_and_topic_settings() -> None:
    assert [kl.replication_for(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    s = Settings(partitions=4)
    topics = kl.topic_settings(s, replication=3, min_insync=2)
    assert set(topics) == set(s.topics.all())
    for name, topic in topics.items():
        assert topic.num_partitions == 4 and topic.replication_factor == 3
        assert topic.topic_configs["min.insync.replicas"] == "2"
        policy = topic.topic_configs.get("cleanup.policy")
        assert policy == ("compact" if name in s.topics.compacted else None), name
    single = kl.topic_settings(s)
    assert all(t.replication_factor == 1 for t in single.values())
    assert "min.insync.replicas" not in (single[s.topics.usage_monthly].topic_configs or {})


def test_cluster_nodes_share_one_cluster_id(
    cluster: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kl, "_java", lambda: "/usr/bin/java")
    formatted: list[list[str]] = []

    def fake_format(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        formatted.append(cmd)
        props = parse_properties(Path(cmd[cmd.index("-c") + 1]).read_text())
        data = Path(props["log.dirs"])
        data.mkdir(parents=True)
        (data / "meta.properties").write_text(f"cluster.id={cmd[cmd.index('-t') + 1]}\n")
        return subprocess.CompletedProcess(cmd, 0, stdout="")

    monkeypatch.setattr("infra.kafka_local.subprocess.run", fake_format)
    assert kl.format_cluster(cluster, 3, Path("/jars")) is True
    assert len(formatted) == 3
    ids = {cmd[cmd.index("-t") + 1] for cmd in formatted}
    assert len(ids) == 1
    assert all("--standalone" not in cmd for cmd in formatted)
    for node in kl.cluster_nodes(cluster, 3):
        assert node.paths.server_properties.is_file()
        assert node.paths.log4j_properties.is_file()

    assert kl.format_cluster(cluster, 3, Path("/jars")) is False  # all formatted: kept
    assert len(formatted) == 3
    lost = kl.cluster_nodes(cluster, 3)[1].paths.data
    shutil.rmtree(lost)  # one node's storage lost: only it is formatted, with the same id
    assert kl.format_cluster(cluster, 3, Path("/jars")) is True
    assert len(formatted) == 4 and formatted[-1][formatted[-1].index("-t") + 1] in ids


async def test_status_and_stop_of_a_cluster_that_is_not_running(cluster: Settings) -> None:
    for node in kl.cluster_nodes(cluster, 3):
        node.paths.root.mkdir(parents=True)
        node.paths.pid_file.write_text("999999999\n")  # stale
    assert "not running" in kl.stop(cluster)
    st = await kl.status(cluster)
    assert st["running"] is False and st["mode"] == "local"
    assert kl.node_pid(cluster, 3, 2) is None
    assert kl.kill_node(cluster, 3, 2) is None


async def replicas(bootstrap: str, topic: str) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [len(part["replicas"]) for part in described["partitions"]]


def free_cluster_base() -> int:
    """A port p below the ephemeral range with p, p+1, p+10, p+11, p+20 and p+21 free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        if all(kl.port_is_free(base + step) for step in (0, 1, 10, 11, 20, 21)):
            return base
    raise RuntimeError("no free ports for a three-node cluster")


@pytest.mark.integration
def test_real_three_node_cluster_survives_a_node_killed(tmp_path: Path) -> None:
    """Topics replicated 3 times with min.insync.replicas=2: with one node SIGKILLed the
    idempotent producer (acks=all) still writes; the node comes back on its storage."""
    from infra.kafka import make_producer

    port = free_cluster_base()
    s = Settings(home=tmp_path / "home", kafka_port=port, kafka_controller_port=port + 1)
    s = s.model_copy(update={"partitions": 3})
    bootstrap = kl.cluster_bootstrap(s, 3)
    try:
        info = kl.up(s, 3)
        assert info.started and info.brokers == 3 and len(info.pids) == 3
        assert info.bootstrap == bootstrap
        configs = asyncio.run(kl.topic_configs(bootstrap, [s.topics.decisions]))
        assert configs[s.topics.decisions]["min.insync.replicas"] == "2"
        assert asyncio.run(replicas(bootstrap, s.topics.decisions)) == [3, 3, 3]
        st = kl.info(s)
        assert st["mode"] == "local cluster" and st["running"] and st["reachable"]
        assert [n["node"] for n in st["nodes"]] == [1, 2, 3]

        killed = kl.kill_node(s, 3, 2)
        assert killed is not None and kl.node_pid(s, 3, 2) is None

        async def write() -> None:
            producer = make_producer(Settings(kafka_bootstrap=bootstrap), request_timeout_ms=60000)
            await producer.start()
            try:
                for i in range(20):
                    key = f"r{i}".encode()
                    await (await producer.send(s.topics.decisions, key=key, value=b"{}"))
            finally:
                await producer.stop()

        asyncio.run(write())
        again = kl.up(s, 3)
        assert again.started and "started node(s) 2" in again.notes
        assert "reused existing storage" in again.notes
        assert kl.node_pid(s, 3, 2) == again.pids[1]
    finally:
        print(kl.down(s))
    assert kl.info(s)["running"] is False


def test_cli_infra_up_takes_the_number_of_brokers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging
    import os

    from entrypoints import cli
    from infra.settings import get_settings

    for name in [name for name in os.environ if name.startswith("SPACES_")]:
        monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    seen: list[int] = []

    def fake_up(settings: Settings, brokers: int = 1) -> kl.BrokerInfo:
        seen.append(brokers)
        return kl.BrokerInfo(
            bootstrap=kl.cluster_bootstrap(settings, brokers),
            external=False,
            pid=1,
            started=True,
            start_seconds=1.0,
            total_seconds=1.0,
            brokers=brokers,
        )

    monkeypatch.setattr(kl, "up", fake_up)
    get_settings.cache_clear()
    try:
        assert cli.main(["infra", "up", "--brokers", "3"]) == 0
        out = capsys.readouterr().out
        assert "local cluster of 3" in out and "127.0.0.1:19112" in out
        assert cli.main(["infra", "up"]) == 0
        assert "(local;" in capsys.readouterr().out
        assert seen == [3, 1]
        assert cli.main(["infra", "up", "--brokers", "0"]) == cli.EXIT_USAGE
        assert seen == [3, 1]
    finally:
        get_settings.cache_clear()
        root.handlers[:] = handlers
        root.setLevel(level)
