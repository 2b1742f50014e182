"""Two ``mailwing serve`` nodes on the host's PostgreSQL behind HAProxy, as real processes.

Used by the cluster test tier (tests/cluster) and by benchmarks/cluster_bench.py.

Everything runs as real processes in network namespaces (:mod:`.netns`). The nodes reach
PostgreSQL through a ``socat`` relay on the host's bridge address (10.213.7.1:15432 ->
127.0.0.1:5432), so PostgreSQL's own configuration is left as it is. HAProxy (Debian's) runs
in ``lb`` in TCP mode, ``send-proxy-v2`` to both nodes, with health checks; besides balanced
frontends it has one frontend per node, so a test can say "through HAProxy, on node1".

The tier needs root, iproute2, haproxy and socat; when any of that is missing it FAILS (it is
never skipped). Namespaces, links and processes are removed at the end, also after a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster import netns
from tests.conftest import PG_ADMIN_URL, _pg_exec
from tests.support import _dump_toml

LB = netns.ADDRESSES["lb"]
MX = netns.ADDRESSES["mx"]
PG_RELAY_PORT = 15432
LOCK_PATH = "/run/mailwing-cluster-tier.lock"
REDIS_RELAY_PORT = 16379  # -> the host's Redis at 127.0.0.1:6379
#: What the nodes use when a test switches them to Redis (database 14 is the cluster tier's).
REDIS_URL = f"redis://{netns.HOST}:{REDIS_RELAY_PORT}/14"
PASSWORD = "cluster secret 1"
#: Listener -> port on the nodes. HAProxy: balanced on the same port, node1 on +1000, node2 +2000.
PORTS = {"smtp": 2525, "submission": 2587, "pop3": 2110, "imap": 2143}
MX_PORT = 2525


def wait_in_service(node: str, timeout: float) -> None:
    """Wait until HAProxy passes connections to ``node`` again on each of its own frontends.

    A node that was stopped or killed is marked down by HAProxy's health checks, and marked
    up only by the first check that succeeds after it is back (``inter 300ms``); until then
    HAProxy closes a connection to that node's frontend at once. Its ports being open is not
    enough: a test that talks to the node right after restarting it raced that check."""
    deadline = time.monotonic() + timeout
    for listener in PORTS:
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    (LB, lb_port(listener, node)), 1.0) as sock:
                if sock.recv(64):  # the greeting: HAProxy reached the node
                    break
            if time.monotonic() > deadline:
                raise ClusterError(f"HAProxy does not reach {node}'s {listener} listener")
            time.sleep(0.05)


class ClusterError(RuntimeError):
    """The cluster cannot be set up or a process did not come up (the tier fails on it)."""


def lb_port(listener: str, node: str | None = None) -> int:
    base = PORTS[listener]
    return base + {None: 0, "node1": 1000, "node2": 2000}[node]


def _require(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClusterError(f"{name} is not installed (see .ci/run PACKAGES)")
    return path


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            raise ClusterError(f"process exited early ({proc.returncode}):\n{text[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.3):
            return
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log else ""
    raise ClusterError(f"{host}:{port} not accepting after {timeout} s\n{text[-3000:]}")


@dataclass
class Node:
    name: str
    root: Path
    database_url: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return netns.ADDRESSES[self.name]

    @property
    def log_path(self) -> Path:
        return self.root / "serve.log"

    @property
    def config_path(self) -> Path:
        return self.root / "mailwing.toml"

    def write_config(self, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config: dict[str, dict[str, object]] = {
            "server": {"hostname": f"{self.name}.cluster.test", "node_name": self.name,
                       "listen": [self.address], "data_dir": str(self.root / "data"),
                       "proxy_trusted": [f"{LB}/32"], "workers": 1,
                       "max_connections_per_ip": 12},
            "database": {"url": self.database_url},
            "auth": {"check_spf": False, "check_dkim": False, "check_dmarc": False,
                     "allow_plaintext": True, "max_failures_per_ip": 6,
                     "max_failures_per_user": 1000, "failure_delay": 0.0,
                     "failure_delay_max": 0.0},
            "outbound": {"relay_host": f"{MX}:{MX_PORT}", "relay_tls": "none",
                         "poll_interval": "0.5s", "lease": "3s", "retry_schedule": ["1s"],
                         "dns_resolver": "127.0.0.1:9"},
            "dkim": {"sign": False},
        }
        for listener in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps",
                         "admin"):
            port = PORTS.get(listener, 0)
            config[listener] = {"port": port}
            if port:
                config[listener]["proxy_protocol"] = True
        for section, values in (overrides or {}).items():
            config.setdefault(section, {}).update(values)
        self.config_path.write_text(_dump_toml(config))

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*netns.exec_prefix(self.name), sys.executable, "-m", "mailwing", "serve",
             "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        log.close()
        wait_port(self.address, PORTS["smtp"], timeout, self.proc, self.log_path)
        wait_port(self.address, PORTS["imap"], timeout, self.proc, self.log_path)
        wait_in_service(self.name, timeout)

    def kill(self) -> None:
        """SIGKILL the whole node (every process of its session), as a power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def wait_log(self, pattern: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if re.search(pattern, text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {pattern!r} in the log:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


HAPROXY = """
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
{sections}
"""


def haproxy_config() -> str:
    sections = []
    for listener in PORTS:
        for node in (None, "node1", "node2"):
            name = f"{listener}_{node or 'all'}"
            servers = [node] if node else ["node1", "node2"]
            sections.append(f"frontend fe_{name}\n    bind {LB}:{lb_port(listener, node)}\n"
                            f"    default_backend be_{name}\n")
            lines = [f"backend be_{name}", "    balance roundrobin"]
            for s in servers:
                lines.append(f"    server {s} {netns.ADDRESSES[s]}:{PORTS[listener]} "
                             "send-proxy-v2 check check-send-proxy inter 300ms fall 2 rise 1")
            sections.append("\n".join(lines) + "\n")
    return HAPROXY.format(sections="\n".join(sections))


@dataclass
class Cluster:
    root: Path
    host_url: str  # the database, as the test process reaches it
    nodes: dict[str, Node]
    mx_record: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        config = self.root / "host.toml"
        result = subprocess.run(
            [sys.executable, "-m", "mailwing", "--config", str(config), *args],
            input=input, capture_output=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"{args} failed: {result.stderr.decode()}")
        return result

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.cli("user", "add", address, "--password-stdin", input=password.encode() + b"\n")

    def mx_messages(self) -> list[str]:
        if not self.mx_record.exists():
            return []
        return [x for x in self.mx_record.read_text().split("\n") if x]


@contextlib.contextmanager
def running_cluster(root: Path, overrides: dict[str, dict[str, Any]] | None = None
                    ) -> Iterator[Cluster]:
    """Set up namespaces, the PostgreSQL relay, the MX sink, HAProxy and both nodes; tear
    everything down on exit, whatever happened. One run per machine at a time: the names and
    addresses are fixed, so a second run (another checkout's test suite) waits for the lock."""
    if os.geteuid() != 0:
        raise ClusterError("must run as root (ip netns)")
    with _machine_lock():
        yield from _running_cluster(root, overrides)


@contextlib.contextmanager
def _machine_lock(wait: float = 150.0) -> Iterator[None]:
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"another cluster tier run holds {LOCK_PATH}") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)  # releases the lock


def _running_cluster(root: Path, overrides: dict[str, dict[str, Any]] | None
                     ) -> Iterator[Cluster]:
    haproxy = _require("haproxy")
    socat = _require("socat")
    _require("ip")
    os.chmod(root, 0o755)
    name = f"mailwing_cluster_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    host_url = f"{base}/{name}"
    node_url = f"postgresql://postgres@{netns.HOST}:{PG_RELAY_PORT}/{name}"
    procs: list[subprocess.Popen[bytes]] = []
    nodes = {n: Node(n, root / n, node_url) for n in ("node1", "node2")}
    try:
        try:
            netns.setup()
        except netns.NetnsError as exc:
            raise ClusterError(f"cannot set up network namespaces: {exc}") from exc
        (root / "host.toml").write_text(_dump_toml({
            "server": {"data_dir": str(root / "host-data"), "hostname": "host.cluster.test"},
            "database": {"url": host_url}}))
        c = Cluster(root, host_url, nodes, root / "mx-record.txt", procs)
        c.cli("db", "upgrade")
        c.cli("domain", "add", "cluster.test")
        procs.append(subprocess.Popen(
            [socat, f"TCP-LISTEN:{PG_RELAY_PORT},bind={netns.HOST},reuseaddr,fork",
             "TCP:127.0.0.1:5432"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(netns.HOST, PG_RELAY_PORT, 10, procs[-1])
        procs.append(subprocess.Popen(
            [socat, f"TCP-LISTEN:{REDIS_RELAY_PORT},bind={netns.HOST},reuseaddr,fork",
             "TCP:127.0.0.1:6379"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(netns.HOST, REDIS_RELAY_PORT, 10, procs[-1])
        procs.append(subprocess.Popen(
            [*netns.exec_prefix("mx"), sys.executable, "-m", "tests.cluster.sink", MX,
             str(MX_PORT), str(c.mx_record), "0.4"],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
            stderr=open(root / "mx.log", "wb")))  # noqa: SIM115
        wait_port(MX, MX_PORT, 20, procs[-1])
        cfg = root / "haproxy.cfg"
        cfg.write_text(haproxy_config())
        procs.append(subprocess.Popen(
            [*netns.exec_prefix("lb"), haproxy, "-db", "-f", str(cfg)],
            stdout=open(root / "haproxy.log", "wb"), stderr=subprocess.STDOUT))  # noqa: SIM115
        for node in nodes.values():
            node.write_config(overrides)
            node.start()
        wait_port(LB, lb_port("smtp"), 10, procs[-1], root / "haproxy.log")
        yield c
    finally:
        for node in nodes.values():
            node.stop()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        netns.teardown()
        with contextlib.suppress(Exception):
            _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
