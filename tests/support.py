"""Test helpers shared by every level: free ports, required external clients, a real server.

``MAILWING_REQUIRE_CLIENTS=1`` (set by ``.ci/run``) turns "client not installed" and
"PostgreSQL not reachable" skips into failures, so CI can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "MailwingServer",
    "free_port",
    "require_binary",
    "skip_or_fail",
]

STRICT = os.environ.get("MAILWING_REQUIRE_CLIENTS", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's laptop; fail in CI (MAILWING_REQUIRE_CLIENTS=1)."""
    if STRICT:
        pytest.fail(f"required for CI but missing: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed (apt-get install it, see .ci/run)")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LISTENER_NAMES = ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "admin")


@dataclass
class MailwingServer:
    """A real ``mailwing serve`` process on free loopback ports, in its own data folder.

    ``ports`` maps listener name -> port. Listeners not named in ``enable`` are disabled.
    """

    root: Path
    database_url: str = ""
    enable: tuple[str, ...] = ("pop3", "pop3s")
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    serve_args: tuple[str, ...] = ()  # extra arguments after ``serve`` (``--capture``)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "mailwing.toml"
        self.log_path = self.root / "server.log"
        for name in LISTENER_NAMES:
            self.ports[name] = free_port() if name in self.enable else 0
        config: dict[str, dict[str, object]] = {
            "server": {"hostname": "mail.test", "listen": ["127.0.0.1"],
                       "data_dir": str(self.data_dir)},
            # Tests send traffic only to loopback: no DNS queries to the system's resolver
            # unless a test points these at its own loopback DNS server (tests/dnsserver.py).
            "auth": {"check_spf": False, "check_dkim": False, "check_dmarc": False},
            "outbound": {"dns_resolver": "127.0.0.1:9"},
        }
        if self.database_url:
            config["database"] = {"url": self.database_url}
        for name in LISTENER_NAMES:
            config[name] = {"port": self.ports[name]}
        for section, values in tomllib.loads(self.extra_config).items():
            config.setdefault(section, {}).update(values)
        self.config_path.write_text(_dump_toml(config))

    # -- command line -----------------------------------------------------------------------
    def cli(self, *args: str, input: bytes | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[bytes]:
        cmd = [sys.executable, "-m", "mailwing", "--config", str(self.config_path), *args]
        env = {**os.environ, **self.env}
        result = subprocess.run(cmd, input=input, capture_output=True, env=env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}"
            )
        return result

    def add_user(self, address: str, password: str) -> None:
        self.cli("user", "add", address, "--password-stdin", input=password.encode() + b"\n")

    def deliver(self, address: str, message: bytes, mailbox: str | None = None) -> None:
        extra = ["--mailbox", mailbox] if mailbox else []
        self.cli("deliver", "--to", address, *extra, input=message)

    # -- process ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> MailwingServer:
        self.cli("db", "upgrade")
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailwing", "serve", "--config", str(self.config_path),
             *self.serve_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        wanted = [p for p in self.ports.values() if p]
        socket_wanted = "lmtp" in self.enable  # the LMTP UNIX socket (on by default)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_path.read_text()}")
            if all(_accepts(p) for p in wanted) and (
                    not socket_wanted or _accepts_unix(self.lmtp_socket)):
                return self
            time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code

    @property
    def lmtp_socket(self) -> Path:
        """The LMTP UNIX socket (``lmtp.socket``'s default place in the data folder)."""
        return self.data_dir / "lmtp.sock"

    @property
    def cert_path(self) -> Path:
        """The self-signed certificate the server generated on first start."""
        return self.data_dir / "tls" / "cert.pem"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _dump_toml(config: dict[str, dict[str, object]]) -> str:
    """Enough TOML for a test configuration: flat sections of scalars and lists."""
    out = []
    for section, values in config.items():
        out.append(f"[{section}]")
        out += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        out.append("")
    return "\n".join(out)


def _accepts_unix(path: Path) -> bool:
    """Whether a server answers on the UNIX socket ``path`` (its greeting arrived)."""
    from mailwing.unixpath import socket_address

    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.5)
        with socket_address(path) as where:
            s.connect(where)
        return s.recv(1).startswith(b"2")
    return False


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False
