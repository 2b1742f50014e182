"""``mailwing deliver`` imports only what delivery needs (issue #9: an MTA runs it once per
message, so import time is most of its cost). Checked by module names, not by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import MailwingServer

#: Modules a delivery never needs: the server and its listeners, TLS set-up, the password
#: hasher, DKIM/DNS and crypto libraries, uvloop, the PostgreSQL driver for a SQLite URL.
HEAVY = ("mailwing.app", "mailwing.server", "mailwing.services.auth",
         "mailwing.services.passwords", "mailwing.mailauth", "mailwing.queue", "mailwing.proto",
         "argon2", "cryptography", "dkim", "dns", "uvloop", "asyncpg",
         # No per-class code generation at import: the settings, records and steps are not
         # dataclasses (dataclasses brings inspect, ast, dis and tokenize).
         "dataclasses", "inspect", "ast", "dis", "tokenize")

#: On SQLite, delivery runs without an event loop (mailwing.storage.sqlite.direct): no asyncio
#: (nor what it drags in: ssl, logging, concurrent.futures, subprocess), no database thread,
#: and none of the stdlib modules that are imported only when a value needs them (the email
#: parser for odd header fields, email.utils for dates, shutil for argparse's terminal width,
#: tomllib without a configuration file, importlib.resources for migrations in a plain
#: folder), and no socket when no process waits for changes (none does here). Nor OpenSSL's
#: hashlib for a small content (the built-in SHA-256 module hashes it), json for a list of
#: ids, the date parser for a message without a Date field, or threading (the wake-up
#: sender needs no lock).
NOT_ON_SQLITE = ("asyncio", "ssl", "logging", "concurrent", "subprocess", "email.utils",
                 "mailwing.storage.sqlite.runner", "mailwing.storage.sqlite.backend",
                 "mailwing.storage.sqlite.notify", "shutil", "email.policy", "email.parser",
                 "tomllib", "importlib.resources", "getpass", "socket", "hashlib", "_hashlib",
                 "json", "email._parseaddr", "calendar", "threading")

SCRIPT = """
import sys
from mailwing.cli.main import main
code = main(["deliver", "--to", sys.argv[1]])
modules = sorted(sys.modules)
import json  # only now: the delivery itself must not need it
print(json.dumps([code, modules]))
"""


def _run(tmp_path: Path, *args: str, script: str | None = None,
         stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MAILWING_SERVER_DATA_DIR=str(tmp_path),
               MAILWING_DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}")
    env.pop("MAILWING_CONFIG", None)
    cmd = ([sys.executable, "-c", script, *args] if script
           else [sys.executable, "-m", "mailwing", *args])
    return subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=60,
                          check=False)


def _matching(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in names)]


def _deliver_modules(tmp_path: Path, to: str) -> tuple[int, list[str]]:
    done = _run(tmp_path, to, script=SCRIPT, stdin=b"Subject: x\r\n\r\nhello\r\n")
    code, modules = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert "mailwing.services.delivery" in modules, done.stderr
    return code, modules


def test_deliver_imports_no_server_code(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    code, modules = _deliver_modules(tmp_path, "nobody@example.org")
    assert code == 67  # no such user: the delivery path ran up to the recipient check
    assert "mailwing.storage.sqlite.direct" in modules
    assert _matching(modules, HEAVY) == []


def test_sqlite_deliver_runs_without_asyncio(tmp_path: Path) -> None:
    """A whole delivery (content file, append, change broadcast) on the direct storage."""
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    added = _run(tmp_path, "user", "add", "bob@example.org", "--password-stdin", stdin=b"pw\n")
    assert added.returncode == 0, added.stderr
    code, modules = _deliver_modules(tmp_path, "bob@example.org")
    assert code == 0
    assert "mailwing.storage.sqlite.direct" in modules
    assert _matching(modules, HEAVY + NOT_ON_SQLITE) == []
    assert len(list((tmp_path / "blobs").glob("??/*"))) == 1  # the content file is there


def test_commands_still_report_startup_errors_in_one_line(tmp_path: Path) -> None:
    """``serve`` imports the server lazily; its errors still end as one line, exit 1."""
    (tmp_path / "m.db").write_bytes(b"")
    done = _run(tmp_path, "serve")
    assert done.returncode == 1
    assert done.stderr.decode().startswith("mailwing: error: ")
    assert b"Traceback" not in done.stderr


#: Through the LMTP socket of a running server (mailwing.cli.lmtp_client), on either
#: backend: no storage at all (no database driver, no delivery service, no event loop, not
#: even the storage interface and the model: only ``storage.errors``), and the C socket
#: module rather than :mod:`socket` (whose enums cost milliseconds).
NOT_OVER_LMTP = ("mailwing.services", "mailwing.storage.sqlite", "mailwing.storage.postgres",
                 "mailwing.storage.blobs", "mailwing.storage.interface",
                 "mailwing.storage.common", "mailwing.model", "sqlite3", "_sqlite3",
                 "selectors", "datetime")


def test_deliver_over_lmtp_imports_no_storage(server_factory: type[MailwingServer],
                                              tmp_path: Path, database_url: str) -> None:
    server = server_factory(root=tmp_path / "srv", database_url=database_url,
                            enable=("lmtp",))
    server.cli("db", "upgrade")
    server.add_user("bob@example.org", "pw")
    server.start()
    # the server's settings from the environment, as an MTA would pass them (a file would
    # bring tomllib, which NOT_ON_SQLITE keeps out)
    env = dict(os.environ, MAILWING_SERVER_DATA_DIR=str(server.data_dir),
               MAILWING_DATABASE_URL=database_url)
    env.pop("MAILWING_CONFIG", None)
    for address, wanted in (("bob@example.org", 0), ("nobody@example.org", 67)):
        done = subprocess.run([sys.executable, "-c", SCRIPT, address], env=env,
                              input=b"Subject: x\r\n\r\nhello\r\n", capture_output=True,
                              timeout=60, check=False)
        code, modules = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert code == wanted, done.stderr
        assert "mailwing.cli.lmtp_client" in modules
        assert _matching(modules, HEAVY + NOT_ON_SQLITE + NOT_OVER_LMTP) == []
