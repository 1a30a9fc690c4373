"""Run a real, local Apache Kafka broker (KRaft, broker+controller in one JVM) without Docker.

Why: development and the integration tests need the genuine broker semantics (compaction,
consumer groups, transactions), not a fake. The broker jars are fetched once through Maven
(``infra/pom.xml``) into a per-version cache, the storage is formatted once under
``settings.home / "kafka"``, and the JVM runs detached so it outlives the CLI that started it.

When ``settings.kafka_bootstrap`` is set we never start anything: we only wait for that
cluster and make sure the topics exist.

``brokers=3`` (``spaces infra up --brokers 3``) runs a three-node KRaft cluster instead, each
node a broker and a controller, on ports ``kafka_port + 10 * i`` (and the controller ports
alike) with its storage under ``settings.home / "kafka-cluster" / "node-<n>"``. Its topics are
replicated three times with ``min.insync.replicas=2``, so with the producers' ``acks=all`` one
node may die without losing an acknowledged record or stopping writes (``make chaos
BROKERS=3`` kills one mid-stream).

Async functions are the ones that talk to Kafka; ``up``/``down``/``info`` are thin sync
wrappers for the CLI.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
    for_code,
)

from infra.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
TOPICS_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 120.0
MVN_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0
TAIL_LINES = 30

# The Java entry points; the pid check looks for the first in /proc/<pid>/cmdline.
_BROKER_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"


class BrokerError(Exception):
    """Anything that keeps the local broker from being usable, with a human-readable cause."""


@dataclass(frozen=True)
class BrokerPaths:
    """Every file the local broker uses, so the CLI can point people at the logs."""

    root: Path
    data: Path
    server_properties: Path
    log4j_properties: Path
    broker_log: Path
    stdout_log: Path
    pid_file: Path
    lock_file: Path


@dataclass(frozen=True)
class BrokerInfo:
    """What ``start`` did: callers (CLI, tests) print the timing and need the bootstrap."""

    bootstrap: str
    external: bool
    pid: int | None
    started: bool  # False when an already-running (or external) broker was reused
    start_seconds: float  # JVM launch -> first metadata answer; 0.0 when nothing was launched
    total_seconds: float  # whole call: jars, format, launch, topics
    topics_created: tuple[str, ...] = ()
    log_file: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    brokers: int = 1
    pids: tuple[int, ...] = ()  # every node's pid, in node order (a cluster has several)


@dataclass(frozen=True)
class Node:
    """One node of the local cluster: a broker and a KRaft controller in one JVM."""

    node_id: int
    port: int
    controller_port: int
    paths: BrokerPaths


CLUSTER_DIR = "kafka-cluster"
CLUSTER_PORT_STEP = 10
"""Node ``n`` of a cluster listens on ``kafka_port + 10 * (n - 1)`` (controller alike)."""


# --------------------------------------------------------------------------- paths & rendering


def broker_paths(settings: Settings) -> BrokerPaths:
    """Absolute paths, because the JVM and the properties files must not depend on the cwd."""
    return _paths_under((settings.home / "kafka").resolve())


def cluster_nodes(settings: Settings, brokers: int) -> list[Node]:
    """The nodes of a local cluster of ``brokers``; one broker is the single-node layout."""
    if brokers < 1:
        raise BrokerError(f"a cluster needs at least one broker, not {brokers}")
    if brokers == 1:
        return [
            Node(1, settings.kafka_port, settings.kafka_controller_port, broker_paths(settings))
        ]
    root = (settings.home / CLUSTER_DIR).resolve()
    nodes = [
        Node(
            n,
            settings.kafka_port + CLUSTER_PORT_STEP * (n - 1),
            settings.kafka_controller_port + CLUSTER_PORT_STEP * (n - 1),
            _paths_under(root / f"node-{n}"),
        )
        for n in range(1, brokers + 1)
    ]
    ports = [port for node in nodes for port in (node.port, node.controller_port)]
    if len(set(ports)) != len(ports):
        raise BrokerError(
            f"the {brokers} nodes' ports {ports} overlap: node n uses SPACES_KAFKA_PORT and "
            f"SPACES_KAFKA_CONTROLLER_PORT + {CLUSTER_PORT_STEP} * (n - 1); choose ports "
            "further apart"
        )
    return nodes


def cluster_bootstrap(settings: Settings, brokers: int) -> str:
    """Every node's address: a client that starts while one node is down still connects."""
    if settings.uses_external_kafka:
        return settings.bootstrap
    return ",".join(f"127.0.0.1:{node.port}" for node in cluster_nodes(settings, brokers))


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, ``min.insync.replicas``) of the topics on ``brokers`` nodes:
    three copies, two of which must have a record before it is acknowledged."""
    factor = min(brokers, 3)
    return factor, 2 if factor >= 3 else 1


def _paths_under(root: Path) -> BrokerPaths:
    return BrokerPaths(
        root=root,
        data=root / "data",
        server_properties=root / "server.properties",
        log4j_properties=root / "log4j2.properties",
        broker_log=root / "broker.log",
        stdout_log=root / "stdout.log",
        pid_file=root / "broker.pid",
        lock_file=root / ".lock",
    )


def render_server_properties(settings: Settings, brokers: int = 1, node_id: int = 1) -> str:
    """Single-node KRaft config; replication factors of 1 because there is one broker.

    With ``brokers`` > 1, the config of node ``node_id`` of that cluster
    (:func:`render_cluster_properties`).
    """
    if brokers > 1:
        return render_cluster_properties(settings, brokers, node_id)
    p = broker_paths(settings)
    host = "127.0.0.1"
    port, cport = settings.kafka_port, settings.kafka_controller_port
    lines = [
        "# Written by infra/kafka_local.py; regenerated on every start.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={host}:{cport}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={p.data.as_posix()}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    return "\n".join(lines) + "\n"


def render_cluster_properties(settings: Settings, brokers: int, node_id: int) -> str:
    """Node ``node_id`` of a KRaft cluster of ``brokers`` combined broker+controller nodes.

    A static quorum (``controller.quorum.voters``) of every node, so the storage is formatted
    without ``--standalone``; every topic, the internal ones too, is replicated
    (:func:`replication_for`) so one node may die.
    """
    nodes = cluster_nodes(settings, brokers)
    node = next((n for n in nodes if n.node_id == node_id), None)
    if node is None:
        raise BrokerError(f"node {node_id} is not one of the {brokers} nodes")
    host = "127.0.0.1"
    factor, min_isr = replication_for(brokers)
    voters = ",".join(f"{n.node_id}@{host}:{n.controller_port}" for n in nodes)
    lines = [
        "# Written by infra/kafka_local.py; regenerated on every start.",
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{node.port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={node.paths.data.as_posix()}",
        "num.partitions=1",
        f"default.replication.factor={factor}",
        f"min.insync.replicas={min_isr}",
        "unclean.leader.election.enable=false",
        f"offsets.topic.replication.factor={factor}",
        f"transaction.state.log.replication.factor={factor}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={factor}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
    ]
    return "\n".join(lines) + "\n"


def render_log4j2_properties(settings: Settings) -> str:
    """Send the broker's own logging to one file; it is truncated per start so tails are fresh."""
    return _render_log4j2(broker_paths(settings))


def _render_log4j2(paths: BrokerPaths) -> str:
    log_file = paths.broker_log.as_posix()
    lines = [
        "status = warn",
        "name = community-spaces-kafka",
        "appender.file.type = File",
        "appender.file.name = FILE",
        # Overridable so the one-off StorageTool run doesn't clobber the broker's log.
        f"appender.file.fileName = ${{sys:spaces.kafka.log:-{log_file}}}",
        "appender.file.append = false",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        # The request logger and the state-change logger are very chatty at INFO/TRACE.
        "logger.request.name = kafka.request.logger",
        "logger.request.level = WARN",
        "logger.state.name = state.change.logger",
        "logger.state.level = WARN",
    ]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """Same format as ``StorageTool random-uuid`` (22-char URL-safe base64), without a JVM."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):  # Kafka re-rolls these too: they look like CLI flags
            return cid


# --------------------------------------------------------------------------- small helpers


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} not found)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _text_tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(_ANSI.sub("", text).strip().splitlines()[-lines:])


def _java() -> str:
    """Prefer $JAVA_HOME so a deliberately chosen JDK wins over whatever is on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise BrokerError(
            "`java` was not found (neither $JAVA_HOME/bin/java nor on PATH). "
            "Install a JDK 17+ (e.g. `apt-get install openjdk-17-jdk-headless`) "
            "or set SPACES_KAFKA_BOOTSTRAP to use an existing Kafka."
        )
    return found


def _classpath(jars: Path) -> str:
    return str(jars / "*")  # the JVM expands the wildcard itself; no shell involved


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Bind-probe: also catches sockets that are bound but not (yet) listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so TIME_WAIT leftovers of a broker we just stopped don't count as taken;
        # on Linux it still fails while someone else holds the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(settings: Settings) -> None:
    """Fail early and clearly instead of letting the JVM die with a BindException."""
    for port in (settings.kafka_port, settings.kafka_controller_port):
        if not port_is_free(port):
            raise BrokerError(
                f"port {port} is taken by another process; stop it or choose other ports "
                "(SPACES_KAFKA_PORT / SPACES_KAFKA_CONTROLLER_PORT)"
            )


# Brokers this Python process launched: lets us reap them (no zombies that look alive to
# kill(pid, 0)) and keeps the Popen objects from warning "subprocess still running" on GC.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _is_broker_pid(pid: int) -> bool:
    """Alive and really our Kafka JVM, so a stale pid file reused by another process is ignored."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: certainly not the broker we started
    cmdline = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():  # Linux: we can tell our JVM from a recycled pid
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return _BROKER_MAIN.encode() in args  # zombies have an empty cmdline
    return True


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _running_pid(settings: Settings) -> int | None:
    return _node_pid(broker_paths(settings))


def _node_pid(paths: BrokerPaths) -> int | None:
    pid = _read_pid(paths.pid_file)
    return pid if pid is not None and _is_broker_pid(pid) else None


def node_pid(settings: Settings, brokers: int = 1, node_id: int = 1) -> int | None:
    """The pid of a running node of the local cluster (of the single broker: node 1)."""
    for node in cluster_nodes(settings, brokers):
        if node.node_id == node_id:
            return _node_pid(node.paths)
    raise BrokerError(f"node {node_id} is not one of the {brokers} nodes")


def kill_node(settings: Settings, brokers: int = 1, node_id: int = 1) -> int | None:
    """SIGKILL one node (a crash: no controlled shutdown); returns its pid, None if it was
    not running. ``start`` starts it again on the same storage."""
    pid = node_pid(settings, brokers, node_id)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=30)
    else:
        deadline = time.monotonic() + 30
        while _is_broker_pid(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return pid


@contextlib.contextmanager
def _file_lock(lock_file: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise start/stop so two `up`s (e.g. parallel test workers) don't race for the port."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise BrokerError(f"timed out waiting for the broker lock {lock_file}") from exc
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class _DropBelowCritical(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """While polling a broker that is still booting, aiokafka logs an ERROR per attempt."""
    flt = _DropBelowCritical()
    loggers = [logging.getLogger(n) for n in ("aiokafka", "aiokafka.client", "aiokafka.conn")]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)


def _admin(bootstrap: str, request_timeout_s: float = 10.0) -> Any:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="community-spaces-infra",
        request_timeout_ms=int(request_timeout_s * 1000),
    )


# --------------------------------------------------------------------------- jars & storage


def ensure_jars(settings: Settings) -> Path:
    """Return a directory with the broker's runtime jars, downloading them once via Maven.

    Why a cache keyed by version: the ~43MB download takes ~20s; every later start reuses it.
    The download goes to a temp dir that is renamed into place, so an interrupted download
    never looks like a complete cache.
    """
    _java()  # without java the jars are useless; fail with the clearer message first
    version_dir = settings.jar_cache / f"kafka-{settings.kafka_version}"
    jar_dir = version_dir / "jars"
    if any(jar_dir.glob("kafka_2.13-*.jar")):
        return jar_dir

    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError(
            "`mvn` (Apache Maven) was not found on PATH; it is needed once to download the "
            f"Kafka {settings.kafka_version} jars into {jar_dir}. Install it "
            "(e.g. `apt-get install maven`) or set SPACES_KAFKA_BOOTSTRAP to use an existing Kafka."
        )
    pom = Path(__file__).with_name("pom.xml")
    if not pom.is_file():
        raise BrokerError(f"Maven recipe {pom} is missing")

    version_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="jars.tmp-", dir=version_dir))
    try:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={settings.kafka_version}",
        ]
        log.info("downloading Kafka %s jars with Maven into %s", settings.kafka_version, jar_dir)
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"Maven did not finish within {MVN_TIMEOUT_S:.0f}s") from exc
        if proc.returncode != 0:
            raise BrokerError(
                f"Maven failed (exit {proc.returncode}) fetching Kafka "
                f"{settings.kafka_version} jars:\n{_text_tail(proc.stdout)}"
            )
        if not any(tmp.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Maven succeeded but no kafka_2.13-*.jar landed in {tmp}:\n"
                f"{_text_tail(proc.stdout)}"
            )
        if jar_dir.exists() and not any(jar_dir.glob("kafka_2.13-*.jar")):
            shutil.rmtree(jar_dir)  # an incomplete leftover from a foreign tool; replace it
        try:
            tmp.rename(jar_dir)
        except OSError:
            if not any(jar_dir.glob("kafka_2.13-*.jar")):
                raise
            # A concurrent download won the race; its result is just as good.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return jar_dir


def write_configs(settings: Settings) -> BrokerPaths:
    """(Re)write both properties files so port/heap changes in settings take effect."""
    return _write_node_configs(settings, 1, cluster_nodes(settings, 1)[0])


def _write_node_configs(settings: Settings, brokers: int, node: Node) -> BrokerPaths:
    p = node.paths
    p.root.mkdir(parents=True, exist_ok=True)
    p.server_properties.write_text(
        render_server_properties(settings, brokers, node.node_id), encoding="utf-8"
    )
    p.log4j_properties.write_text(_render_log4j2(p), encoding="utf-8")
    return p


def format_storage(settings: Settings, jars: Path) -> bool:
    """Write the configs and format the KRaft storage unless it already is; True if formatted.

    Why only once: formatting creates a new cluster id, i.e. a brand-new empty cluster; a
    second start must keep the topics and data of the first.
    """
    p = write_configs(settings)
    if (p.data / "meta.properties").is_file():
        return False
    _format(p, jars, new_cluster_id(), standalone=True)
    return True


def format_cluster(settings: Settings, brokers: int, jars: Path) -> bool:
    """Write every node's configs and format the nodes not formatted yet; True if any was.

    All nodes share one cluster id: a node formatted before (the cluster ran already, and
    one node's storage was lost, say) lends its id to the others.
    """
    nodes = cluster_nodes(settings, brokers)
    for node in nodes:
        _write_node_configs(settings, brokers, node)
    existing = [_cluster_id_of(node.paths) for node in nodes]
    missing = [node for node, cid in zip(nodes, existing, strict=True) if cid is None]
    if not missing:
        return False
    cluster_id = next((cid for cid in existing if cid is not None), None) or new_cluster_id()
    for node in missing:
        _format(node.paths, jars, cluster_id, standalone=False)
    return True


def _cluster_id_of(paths: BrokerPaths) -> str | None:
    try:
        text = (paths.data / "meta.properties").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id" and value.strip():
            return value.strip()
    return None


def _format(p: BrokerPaths, jars: Path, cluster_id: str, *, standalone: bool) -> None:
    """Run the StorageTool on one node; ``standalone`` for a quorum of this node alone (a
    cluster's static quorum is in its properties)."""
    if p.data.exists():
        shutil.rmtree(p.data)  # no meta.properties: a half-finished format, unusable anyway
    cmd = [
        _java(),
        "-cp",
        _classpath(jars),
        f"-Dlog4j2.configurationFile={p.log4j_properties}",
        f"-Dspaces.kafka.log={p.root / 'format.log'}",
        _STORAGE_TOOL,
        "format",
        "-t",
        cluster_id,
        "-c",
        str(p.server_properties),
    ]
    if standalone:
        cmd.append("--standalone")
    try:
        proc = subprocess.run(
            cmd,
            cwd=p.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=FORMAT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"formatting Kafka storage took over {FORMAT_TIMEOUT_S:.0f}s") from exc
    if proc.returncode != 0 or not (p.data / "meta.properties").is_file():
        raise BrokerError(
            f"formatting Kafka storage in {p.data} failed (exit {proc.returncode}):\n"
            f"{_text_tail(proc.stdout)}"
        )


def _launch(settings: Settings, jars: Path) -> subprocess.Popen[bytes]:
    return _launch_node(settings, broker_paths(settings), jars)


def _launch_node(settings: Settings, p: BrokerPaths, jars: Path) -> subprocess.Popen[bytes]:
    """Start the JVM in its own session so Ctrl-C in the CLI or test runner doesn't kill it."""
    cmd = [
        _java(),
        f"-Xmx{settings.kafka_heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={p.log4j_properties}",
        "-cp",
        _classpath(jars),
        _BROKER_MAIN,
        str(p.server_properties),
    ]
    p.broker_log.write_bytes(b"")  # logs are per start, so a failure tail shows only this run
    with p.stdout_log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=p.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    p.pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc


def _failure_report(settings: Settings, headline: str, brokers: int = 1) -> str:
    parts = [headline]
    for node in cluster_nodes(settings, brokers):
        p = node.paths
        parts.append(
            f"--- last {TAIL_LINES} lines of {p.broker_log} ---\n{_tail(p.broker_log)}\n"
            f"--- last {TAIL_LINES} lines of {p.stdout_log} ---\n{_tail(p.stdout_log)}"
        )
    return "\n".join(parts)


# --------------------------------------------------------------------------- talking to Kafka


async def probe(bootstrap: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """One metadata round-trip; returns the describe_cluster answer or raises."""
    admin = _admin(bootstrap, request_timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if not cluster.get("brokers"):
        raise BrokerError(f"{bootstrap} answered but reports no brokers yet")
    return cluster


async def wait_reachable(
    bootstrap: str,
    timeout_s: float = START_TIMEOUT_S,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll with short backoff until a metadata request succeeds; return seconds waited.

    Why not a fixed sleep: an open port is not a ready broker, and boot time varies a lot
    between a laptop and a loaded CI box. ``alive`` lets the caller stop waiting the moment
    the JVM it launched has died.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    delay = 0.1
    last_error: BaseException | None = None
    with _quiet_aiokafka():
        while True:
            if alive is not None and not alive():
                raise BrokerError("the broker process exited while starting")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"Kafka at {bootstrap} was not reachable within {timeout_s:.0f}s "
                    f"(last error: {last_error!r})"
                )
            try:
                await probe(bootstrap, timeout_s=max(0.5, min(5.0, remaining)))
                return time.monotonic() - started
            except Exception as exc:
                last_error = exc
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)


async def describe_topics(bootstrap: str) -> dict[str, int]:
    """Non-internal topics and their partition counts (metadata for *all* topics, so asking
    never auto-creates a topic)."""
    admin = _admin(bootstrap)
    try:
        await admin.start()
        topics: list[dict[str, Any]] = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"])
        for t in sorted(topics, key=lambda t: str(t["topic"]))
        if not t.get("is_internal", False) and not str(t["topic"]).startswith("__")
    }


async def topic_configs(
    bootstrap: str, topics: list[str], timeout_s: float = 10.0
) -> dict[str, dict[str, str]]:
    """Effective configs per topic (used to verify e.g. ``cleanup.policy``).

    Why retries: on a cluster the node asked may not yet have the metadata of a topic just
    created and answers UNKNOWN_TOPIC_OR_PARTITION; a retriable error is asked again until
    ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    admin = _admin(bootstrap)
    try:
        await admin.start()
        while True:
            try:
                return _configs_of(
                    await admin.describe_configs(
                        [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
                    ),
                    retry_allowed=time.monotonic() < deadline,
                )
            except _RetriableConfigError:
                await asyncio.sleep(0.3)
    finally:
        await admin.close()


class _RetriableConfigError(Exception):
    """A describe_configs answer with a retriable error code, asked again."""


def _configs_of(responses: Any, retry_allowed: bool) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            error_code, error_message, _rtype, name, entries = resource[:5]
            if error_code:
                err = for_code(error_code)
                if err.retriable and retry_allowed:
                    raise _RetriableConfigError(name)
                raise BrokerError(
                    f"describe_configs({name}) failed: {err.__name__}: {error_message}"
                )
            result[name] = {entry[0]: entry[1] for entry in entries}
    return result


def topic_settings(
    settings: Settings, replication: int = 1, min_insync: int | None = None
) -> dict[str, NewTopic]:
    """The contract's topics as created: compacted ones with ``cleanup.policy=compact``; on
    a cluster ``replication`` copies, ``min_insync`` of which acknowledge a write."""
    compacted = set(settings.topics.compacted)
    wanted: dict[str, NewTopic] = {}
    for name in settings.topics.all():
        configs: dict[str, str] = {}
        if name in compacted:
            configs["cleanup.policy"] = "compact"
        if name == settings.topics.decisions:  # the log of record: `spaces replay` reads it all
            configs["retention.ms"] = str(settings.decisions_retention_ms)
        if min_insync is not None:
            configs["min.insync.replicas"] = str(min_insync)
        wanted[name] = NewTopic(
            name, settings.partitions, replication, topic_configs=configs or None
        )
    return wanted


async def ensure_topics(
    settings: Settings,
    timeout_s: float = TOPICS_TIMEOUT_S,
    replication: int = 1,
    min_insync: int | None = None,
    bootstrap: str | None = None,
) -> list[str]:
    """Create the contract's topics (compacted ones with cleanup.policy=compact); return new ones.

    Why retries: right after boot the controller may not have the broker registered yet and
    answers INVALID_REPLICATION_FACTOR ("only 0 brokers"); that is transient, not a mistake.
    Existing topics are left alone (TopicAlreadyExists is success). ``replication`` and
    ``min_insync`` are for a cluster (:func:`replication_for`); ``bootstrap`` its nodes.
    """
    wanted = topic_settings(settings, replication, min_insync)
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    admin = _admin(bootstrap or settings.bootstrap)
    try:
        await admin.start()
        pending = list(wanted)
        while pending:
            response = await admin.create_topics(
                [wanted[n] for n in pending], timeout_ms=int(timeout_s * 1000)
            )
            retry: list[str] = []
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if code == 0:
                    created.append(name)
                    continue
                if code == TopicAlreadyExistsError.errno:
                    continue
                err = for_code(code)
                transient = err.retriable or code == InvalidReplicationFactorError.errno
                if transient and time.monotonic() < deadline:
                    retry.append(name)
                    continue
                raise BrokerError(f"could not create topic {name!r}: {err.__name__}: {message}")
            pending = retry
            if pending:
                await asyncio.sleep(0.5)

        # Creation is acknowledged before every partition has a leader; wait so the first
        # producer doesn't hit LEADER_NOT_AVAILABLE.
        names = list(wanted)
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics(names)
            ready = {
                t["topic"]
                for t in described
                if t["error_code"] == 0
                and t["partitions"]
                and all(part[0] == 0 and part[2] >= 0 for part in _partitions(t))
            }
            if ready >= set(names):
                for t in described:
                    if len(t["partitions"]) != settings.partitions:
                        log.warning(
                            "topic %s has %d partitions, settings say %d (left unchanged)",
                            t["topic"],
                            len(t["partitions"]),
                            settings.partitions,
                        )
                break
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"topics {sorted(set(names) - ready)} have no partition leaders after "
                    f"{timeout_s:.0f}s"
                )
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return created


def _partitions(topic: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(error_code, partition, leader) for each partition, whatever the metadata version."""
    out: list[tuple[int, int, int]] = []
    for part in topic["partitions"]:
        if isinstance(part, dict):
            out.append((part["error_code"], part["partition"], part["leader"]))
        else:
            out.append((part[0], part[1], part[2]))
    return out


# --------------------------------------------------------------------------- lifecycle


async def start(settings: Settings, brokers: int = 1) -> BrokerInfo:
    """Make a broker available at ``settings.bootstrap`` with all topics; idempotent.

    ``brokers`` > 1: a local KRaft cluster of that many nodes (:func:`start_cluster`); on an
    external cluster, topics replicated as on one (:func:`replication_for`).
    """
    t0 = time.monotonic()
    if settings.uses_external_kafka:
        await wait_reachable(settings.bootstrap, START_TIMEOUT_S)
        factor, min_isr = replication_for(brokers)
        created = await ensure_topics(
            settings, replication=factor, min_insync=min_isr if brokers > 1 else None
        )
        return BrokerInfo(
            bootstrap=settings.bootstrap,
            external=True,
            pid=None,
            started=False,
            start_seconds=0.0,
            total_seconds=time.monotonic() - t0,
            topics_created=tuple(created),
            notes=("external Kafka: nothing started",),
        )

    if brokers > 1:
        return await start_cluster(settings, brokers)
    p = broker_paths(settings)
    p.root.mkdir(parents=True, exist_ok=True)
    lock = _file_lock(p.lock_file)
    await asyncio.to_thread(lock.__enter__)
    try:
        pid = _running_pid(settings)
        if pid is not None:
            # Ours and alive: maybe still booting (another `up`), so wait rather than fail.
            try:
                await wait_reachable(
                    settings.bootstrap, START_TIMEOUT_S, alive=lambda: _is_broker_pid(pid)
                )
            except BrokerError as exc:
                raise BrokerError(
                    _failure_report(settings, f"broker pid {pid} is running but: {exc}")
                ) from exc
            created = await ensure_topics(settings)
            return BrokerInfo(
                bootstrap=settings.bootstrap,
                external=False,
                pid=pid,
                started=False,
                start_seconds=0.0,
                total_seconds=time.monotonic() - t0,
                topics_created=tuple(created),
                log_file=p.broker_log,
                notes=("already running",),
            )
        p.pid_file.unlink(missing_ok=True)  # stale

        check_ports_free(settings)
        jars = await asyncio.to_thread(ensure_jars, settings)
        formatted = await asyncio.to_thread(format_storage, settings, jars)

        launched_at = time.monotonic()
        proc = _launch(settings, jars)
        try:
            await wait_reachable(
                settings.bootstrap, START_TIMEOUT_S, alive=lambda: proc.poll() is None
            )
        except BrokerError as exc:
            code = proc.poll()
            if code is None:  # hung rather than dead: don't leave it squatting on the port
                _terminate(proc.pid, STOP_TIMEOUT_S)
                code = proc.poll()
            p.pid_file.unlink(missing_ok=True)
            _CHILDREN.pop(proc.pid, None)
            raise BrokerError(
                _failure_report(settings, f"Kafka failed to start ({exc}; exit code {code})")
            ) from exc
        start_seconds = time.monotonic() - launched_at
        created = await ensure_topics(settings)
        return BrokerInfo(
            bootstrap=settings.bootstrap,
            external=False,
            pid=proc.pid,
            started=True,
            start_seconds=start_seconds,
            total_seconds=time.monotonic() - t0,
            topics_created=tuple(created),
            log_file=p.broker_log,
            notes=("formatted new storage",) if formatted else ("reused existing storage",),
        )
    finally:
        lock.__exit__(None, None, None)


async def start_cluster(settings: Settings, brokers: int) -> BrokerInfo:
    """Start the nodes of the local cluster that are not running; wait for all; topics.

    Idempotent like :func:`start`, and the way to bring back a node that died: the nodes
    still running are left alone and the missing one starts on its storage. Every node
    must be up before this returns, so that topics (and the consumer offsets topic, created
    on first use) get all their replicas.
    """
    t0 = time.monotonic()
    nodes = cluster_nodes(settings, brokers)
    bootstrap = cluster_bootstrap(settings, brokers)
    root = (settings.home / CLUSTER_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    lock = _file_lock(root / ".lock")
    await asyncio.to_thread(lock.__enter__)
    launched: list[subprocess.Popen[bytes]] = []
    try:
        running = {node.node_id: _node_pid(node.paths) for node in nodes}
        missing = [node for node in nodes if running[node.node_id] is None]
        formatted = False
        launched_at = time.monotonic()
        if missing:
            for node in missing:
                node.paths.pid_file.unlink(missing_ok=True)  # stale
                for port in (node.port, node.controller_port):
                    if not port_is_free(port):
                        raise BrokerError(
                            f"port {port} of node {node.node_id} is taken by another process; "
                            "stop it or choose other ports (SPACES_KAFKA_PORT / "
                            "SPACES_KAFKA_CONTROLLER_PORT)"
                        )
            jars = await asyncio.to_thread(ensure_jars, settings)
            formatted = await asyncio.to_thread(format_cluster, settings, brokers, jars)
            launched_at = time.monotonic()
            for node in missing:
                launched.append(_launch_node(settings, node.paths, jars))
                running[node.node_id] = launched[-1].pid
        pids = [pid for pid in running.values() if pid is not None]

        def alive() -> bool:
            return all(_is_broker_pid(pid) for pid in pids)

        try:
            # Each node started now answers on its own port (the cluster's metadata may
            # still list a node that died a moment ago), then all are registered.
            for node in missing:
                await wait_reachable(f"127.0.0.1:{node.port}", START_TIMEOUT_S, alive)
            await wait_brokers(bootstrap, brokers, START_TIMEOUT_S, alive)
        except BrokerError as exc:
            for proc in launched:
                if proc.poll() is None:
                    _terminate(proc.pid, STOP_TIMEOUT_S)
                _CHILDREN.pop(proc.pid, None)
            for node in missing:
                node.paths.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                _failure_report(settings, f"the Kafka cluster failed to start ({exc})", brokers)
            ) from exc
        start_seconds = time.monotonic() - launched_at if missing else 0.0
        factor, min_isr = replication_for(brokers)
        created = await ensure_topics(
            settings, replication=factor, min_insync=min_isr, bootstrap=bootstrap
        )
    finally:
        lock.__exit__(None, None, None)
    if not missing:
        notes: tuple[str, ...] = ("already running",)
    else:
        started_ids = ", ".join(str(node.node_id) for node in missing)
        storage = "formatted new storage" if formatted else "reused existing storage"
        notes = (f"started node(s) {started_ids}", storage)
    return BrokerInfo(
        bootstrap=bootstrap,
        external=False,
        pid=running[1],
        started=bool(missing),
        start_seconds=start_seconds,
        total_seconds=time.monotonic() - t0,
        topics_created=tuple(created),
        log_file=nodes[0].paths.broker_log,
        notes=notes,
        brokers=brokers,
        pids=tuple(pid for pid in running.values() if pid is not None),
    )


async def wait_brokers(
    bootstrap: str,
    count: int,
    timeout_s: float = START_TIMEOUT_S,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll until the cluster reports ``count`` brokers; return seconds waited."""
    started = time.monotonic()
    deadline = started + timeout_s
    seen = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"the cluster at {bootstrap} reported {seen} of {count} brokers "
                f"within {timeout_s:.0f}s"
            )
        await wait_reachable(bootstrap, remaining, alive)
        with _quiet_aiokafka(), contextlib.suppress(Exception):
            cluster = await probe(bootstrap, timeout_s=max(0.5, min(5.0, remaining)))
            seen = len(cluster.get("brokers") or [])
            if seen >= count:
                return time.monotonic() - started
        await asyncio.sleep(0.2)


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM (Kafka shuts down cleanly), poll, then SIGKILL; True if it needed the kill."""
    child = _CHILDREN.get(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_broker_pid(pid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child is not None:
            child.wait(timeout=10)
        else:
            kill_deadline = time.monotonic() + 10
            while _is_broker_pid(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        _CHILDREN.pop(pid, None)
        return True
    if child is not None:
        child.wait(timeout=10)
    _CHILDREN.pop(pid, None)
    return False


def stop(settings: Settings) -> str:
    """Stop the local broker, or the local cluster's nodes, if we started them; returns what
    happened, for the CLI to print."""
    if settings.uses_external_kafka:
        return f"external Kafka at {settings.bootstrap}: nothing to stop"
    cluster = _stop_cluster(settings)
    p = broker_paths(settings)
    if not p.root.exists():
        return cluster or "local Kafka is not running (never started here)"
    with _file_lock(p.lock_file):
        pid = _read_pid(p.pid_file)
        if pid is None or not _is_broker_pid(pid):
            p.pid_file.unlink(missing_ok=True)
            return cluster or "local Kafka is not running"
        killed = _terminate(pid, STOP_TIMEOUT_S)
        p.pid_file.unlink(missing_ok=True)
    how = f"killed after {STOP_TIMEOUT_S:.0f}s without exiting" if killed else "stopped"
    single = f"local Kafka (pid {pid}) {how}"
    return f"{single}; {cluster}" if cluster else single


def _cluster_on_disk(settings: Settings) -> list[Node]:
    """The nodes of the local cluster whose directories exist (however many it was run with)."""
    root = (settings.home / CLUSTER_DIR).resolve()
    ids = sorted(
        int(entry.name.removeprefix("node-"))
        for entry in (root.iterdir() if root.is_dir() else ())
        if entry.is_dir() and re.fullmatch(r"node-[0-9]+", entry.name)
    )
    if not ids:
        return []
    brokers = max(ids)
    if brokers < 2:
        return []
    return [node for node in cluster_nodes(settings, brokers) if node.node_id in ids]


def _stop_cluster(settings: Settings) -> str:
    """SIGTERM every running node at once (one by one, the last ones would wait for a quorum
    that is gone), then wait for each; '' when no node was running."""
    nodes = _cluster_on_disk(settings)
    if not nodes:
        return ""
    with _file_lock((settings.home / CLUSTER_DIR).resolve() / ".lock"):
        pids = {node.node_id: _node_pid(node.paths) for node in nodes}
        for node in nodes:
            pid = pids[node.node_id]
            if pid is None:
                node.paths.pid_file.unlink(missing_ok=True)
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        stopped = []
        for node in nodes:
            pid = pids[node.node_id]
            if pid is None:
                continue
            killed = _terminate(pid, STOP_TIMEOUT_S)
            node.paths.pid_file.unlink(missing_ok=True)
            how = "killed" if killed else "stopped"
            stopped.append(f"node {node.node_id} (pid {pid}) {how}")
    if not stopped:
        return ""
    return "local Kafka cluster: " + ", ".join(stopped)


async def status(settings: Settings) -> dict[str, Any]:
    """Snapshot for a `status` command: up?, where, and each topic's partition count.

    When the single broker is not running but nodes of a local cluster are, it describes
    the cluster (``nodes``: each node's id, port and pid).
    """
    p = broker_paths(settings)
    external = settings.uses_external_kafka
    pid = None if external else _running_pid(settings)
    result: dict[str, Any] = {
        "mode": "external" if external else "local",
        "external": external,
        "bootstrap": settings.bootstrap,
        "pid": pid,
        "running": False,
        "reachable": False,
        "topics": {},
        "home": None if external else str(p.root),
        "log": None if external else str(p.broker_log),
    }
    bootstrap = settings.bootstrap
    if not external and pid is None:
        nodes = _cluster_on_disk(settings)
        pids = {node.node_id: _node_pid(node.paths) for node in nodes}
        running = [node for node in nodes if pids[node.node_id] is not None]
        if not running:
            return result
        bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in nodes)
        result.update(
            mode="local cluster",
            bootstrap=bootstrap,
            pid=pids[running[0].node_id],
            home=str(running[0].paths.root.parent),
            log=str(running[0].paths.broker_log),
            nodes=[
                {"node": node.node_id, "port": node.port, "pid": pids[node.node_id]}
                for node in nodes
            ],
        )
    try:
        with _quiet_aiokafka():
            await probe(bootstrap, timeout_s=5.0)
            result["topics"] = await describe_topics(bootstrap)
        result["reachable"] = True
    except Exception as exc:
        result["error"] = repr(exc)
    result["running"] = result["reachable"] if external else True
    return result


# --------------------------------------------------------------------------- sync wrappers


def up(settings: Settings, brokers: int = 1) -> BrokerInfo:
    """Sync entry point for the CLI: start (or reuse) the broker and ensure topics."""
    return asyncio.run(start(settings, brokers))


def down(settings: Settings) -> str:
    """Sync entry point for the CLI: stop the local broker (no-op for external Kafka)."""
    return stop(settings)


def info(settings: Settings) -> dict[str, Any]:
    """Sync entry point for the CLI: the :func:`status` dict."""
    return asyncio.run(status(settings))
