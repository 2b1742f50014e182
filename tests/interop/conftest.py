"""Fixtures for the interoperability tests: a real server with a certificate clients can verify.

Why a private CA (trustme) instead of the server's own self-signed certificate: with a CA the
clients run with verification *on* (curl ``--cacert``, getmail ``ca_certs``, fetchmail
``--sslcertck``), so a broken chain or a wrong name would fail the test instead of being waved
through by ``-k``. The server gets the certificate through ``tls.cert_file``/``tls.key_file``.
"""

from __future__ import annotations

import os
import poplib
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import MailwingServer

ADDRESS = "alice@example.com"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # what clients trust
    cert: Path  # server chain, for names 127.0.0.1 / localhost / mail.test
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    # A subject CN as well as SANs: fetchmail reports "Server name not specified" without one.
    leaf = ca.issue_cert("127.0.0.1", "localhost", "mail.test", common_name="mail.test")
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(files.cert), append=i > 0)
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


@dataclass
class Pop3Env:
    """A started server with one user, plus the ways tests look at its maildrop."""

    server: MailwingServer
    tls: TlsFiles
    address: str = ADDRESS
    password: str = PASSWORD

    @property
    def pop3_port(self) -> int:
        return self.server.ports["pop3"]

    @property
    def pop3s_port(self) -> int:
        return self.server.ports["pop3s"]

    def deliver(self, message: bytes) -> None:
        self.server.deliver(self.address, message)

    def _login(self) -> poplib.POP3:
        client = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        client.user(self.address)
        client.pass_(self.password)
        return client

    def stat(self) -> tuple[int, int]:
        """(messages, octets) in the maildrop, read with the stdlib client."""
        client = self._login()
        try:
            return client.stat()
        finally:
            client.quit()

    def uidls(self) -> list[str]:
        client = self._login()
        try:
            _, lines, _ = client.uidl()
            return [ln.decode().split(" ", 1)[1] for ln in lines]
        finally:
            client.quit()


def start_env(factory: type[MailwingServer], root: Path, database_url: str,
              tls: TlsFiles) -> Pop3Env:
    extra = f'[tls]\ncert_file = "{tls.cert}"\nkey_file = "{tls.key}"\n'
    server = factory(root=root, database_url=database_url, enable=("pop3", "pop3s"),
                     extra_config=extra)
    server.start()
    server.add_user(ADDRESS, PASSWORD)
    return Pop3Env(server, tls)


@pytest.fixture
def pop3_env(server_factory: type[MailwingServer], tmp_path: Path,
             tls_files: TlsFiles) -> Pop3Env:
    """A server on SQLite (the cheap backend every client test runs against)."""
    url = f"sqlite:///{tmp_path / 'mailwing.db'}"
    return start_env(server_factory, tmp_path / "server", url, tls_files)


@pytest.fixture
def pop3_env_any(server_factory: type[MailwingServer], tmp_path: Path, tls_files: TlsFiles,
                 database_url: str) -> Pop3Env:
    """The same, once per storage backend (SQLite and PostgreSQL)."""
    return start_env(server_factory, tmp_path / "server", database_url, tls_files)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder that an unprivileged user can write to.

    getmail refuses to deliver as root, so when the tests run as root (CI) its Maildir
    destination runs as ``nobody``; pytest's tmp_path is under a 0700 folder that ``nobody``
    cannot reach, hence a separate folder directly in the system temp folder."""
    path = Path(tempfile.mkdtemp(prefix="mailwing-interop-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unprivileged_user() -> str | None:
    """``nobody`` when running as root (for getmail's ``user`` option), else None."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody").pw_name
