"""Moving a running installation from SQLite to PostgreSQL with the CLI, as an operator
would: ``mailwing db copy --to`` while the server serves (an mbsync client keeps working
meanwhile), then ``--catch-up`` with the server stopped, then the configuration switched.
The mbsync client's next sync then finds nothing to transfer or change: same UIDVALIDITY,
same UIDs, same flags."""

from __future__ import annotations

import imaplib
import re
import ssl
from pathlib import Path

import pytest

from tests.interop.conftest import TlsFiles, tls_files  # noqa: F401 - the fixture
from tests.interop.imap_support import (
    ImapTarget,
    append_all,
    seed_flags,
    seed_message,
    server_state,
    snapshot,
)
from tests.interop.test_imap_clients import _WRITES, mbsync, mbsync_config
from tests.support import MailwingServer

pytestmark = pytest.mark.interop

ADDRESS = "alice@example.com"
PASSWORD = "correct horse battery staple"


def start(factory: type[MailwingServer], root: Path, url: str, tls: TlsFiles
          ) -> tuple[MailwingServer, ImapTarget]:
    extra = f'[tls]\ncert_file = "{tls.cert}"\nkey_file = "{tls.key}"\n'
    server = factory(root=root, database_url=url, enable=("imap", "imaps"), extra_config=extra)
    server.start()
    return server, ImapTarget("127.0.0.1", server.ports["imap"], server.ports["imaps"], ADDRESS,
                      PASSWORD, tls.ca)


def login(target: ImapTarget) -> imaplib.IMAP4:
    client = imaplib.IMAP4(target.host, target.port, timeout=60)
    client.starttls(ssl.create_default_context(cafile=str(target.ca_file)))
    client.login(target.user, target.password)
    return client


def test_move_to_postgres_with_mbsync(server_factory: type[MailwingServer], tmp_path: Path,
                                      tls_files: TlsFiles,  # noqa: F811
                                      pg_database_url: str) -> None:
    root = tmp_path / "server"
    sqlite_url = f"sqlite:///{root / 'data' / 'mailwing.db'}"
    server, target = start(server_factory, root, sqlite_url, tls_files)
    server.add_user(ADDRESS, PASSWORD)
    client = login(target)
    append_all(client, "INBOX", [(seed_message(n), seed_flags(n)) for n in range(1, 41)])
    client.create("Work")
    append_all(client, "Work", [(seed_message(n), ()) for n in range(41, 46)])
    client.logout()
    home = tmp_path / "mbsync"
    home.mkdir()
    mbsync(home, mbsync_config(home, target))

    # Online copy while the server runs, then more activity the copy has not seen.
    out = server.cli("db", "copy", "--to", pg_database_url)
    assert b"verified" in out.stdout, out
    again = server.cli("db", "copy", "--to", pg_database_url, check=False)
    assert again.returncode == 1 and b"already holds data" in again.stderr
    client = login(target)
    append_all(client, "INBOX", [(seed_message(99), ("\\Flagged",))])
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS", "(\\Answered)")
    client.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    client.expunge()
    client.logout()
    mbsync(home, mbsync_config(home, target))
    before = server_state(target)

    server.stop()
    out = server.cli("db", "copy", "--to", pg_database_url, "--catch-up")
    assert b"verified" in out.stdout

    _, moved = start(server_factory, root, pg_database_url, tls_files)
    assert server_state(moved) == before
    folder = home / "mail" / "INBOX"
    local = snapshot(folder)
    rc = mbsync_config(home, moved)
    output = mbsync(home, rc, "-Dn")
    assert snapshot(folder) == local and server_state(moved) == before
    sent = re.findall(r"^>>> \d+ (.*)$", output, re.M)
    assert any(c.startswith("UID FETCH") for c in sent), output[-3000:]
    assert not [c for c in sent if _WRITES.search(c)], sent



def test_import_from_another_mailwing_over_imaps(server_factory: type[MailwingServer],
                                                 tmp_path: Path,
                                                 tls_files: TlsFiles,  # noqa: F811
                                                 database_url: str) -> None:
    """``mailwing import USER imaps://...`` from one mailwing to another (each backend as the
    target), the certificate checked against a CA file; keywords and flags kept."""
    old, target = start(server_factory, tmp_path / "old", f"sqlite:///{tmp_path / 'old.db'}",
                        tls_files)
    old.add_user(ADDRESS, PASSWORD)
    client = login(target)
    append_all(client, "INBOX", [(seed_message(n), (*seed_flags(n), "$Label1"))
                                 for n in range(1, 11)])
    client.create("Projects/2026")
    append_all(client, "Projects/2026", [(seed_message(11), ("\\Answered",))])
    client.logout()
    before = server_state(target)

    new = MailwingServer(root=tmp_path / "new", database_url=database_url)
    new.cli("db", "upgrade")
    new.add_user("alice@example.org", "pw")
    password = tmp_path / "pw"
    password.write_text(PASSWORD + "\n")
    url = f"imaps://{ADDRESS}@localhost:{target.tls_port}"
    out = new.cli("import", "alice@example.org", url, "--password-file", str(password),
                  "--ca-file", str(tls_files.ca)).stdout.decode()
    assert "messages imported: 11" in out and "folders: 8 (2 created)" in out
    untrusted = new.cli("import", "alice@example.org", url, "--password-file", str(password),
                        check=False)
    assert untrusted.returncode == 69 and b"CERTIFICATE_VERIFY_FAILED" in untrusted.stderr

    _, new_target = start(server_factory, tmp_path / "new", database_url, tls_files)
    moved = server_state(ImapTarget(new_target.host, new_target.port, new_target.tls_port,
                                    "alice@example.org", "pw", tls_files.ca))
    assert moved == before and len(moved) == 10  # same Message-IDs, UIDs and flags
