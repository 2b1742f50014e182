"""``mailwing deliver`` imports only what delivery needs (issue #9: an MTA runs it once per
message, so import time is most of its cost). Checked by module names, not by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Modules a delivery never needs: the server and its listeners, TLS set-up, the password
#: hasher, DKIM/DNS and crypto libraries, uvloop, the PostgreSQL driver for a SQLite URL.
HEAVY = ("mailwing.app", "mailwing.server", "mailwing.services.auth",
         "mailwing.services.passwords", "mailwing.mailauth", "mailwing.queue", "mailwing.proto",
         "argon2", "cryptography", "dkim", "dns", "uvloop", "asyncpg")

SCRIPT = """
import json, sys
from mailwing.cli.main import main
code = main(["deliver", "--to", "nobody@example.org"])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _run(tmp_path: Path, *args: str, script: str | None = None,
         stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MAILWING_SERVER_DATA_DIR=str(tmp_path),
               MAILWING_DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}")
    cmd = [sys.executable, "-c", script] if script else [sys.executable, "-m", "mailwing", *args]
    return subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=60,
                          check=False)


def test_deliver_imports_no_server_code(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    done = _run(tmp_path, script=SCRIPT, stdin=b"Subject: x\r\n\r\nhello\r\n")
    code, modules = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert code == 67, done.stderr  # no such user: the whole delivery path ran
    assert "mailwing.services.delivery" in modules and "mailwing.storage.sqlite" in modules
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []


def test_commands_still_report_startup_errors_in_one_line(tmp_path: Path) -> None:
    """``serve`` imports the server lazily; its errors still end as one line, exit 1."""
    (tmp_path / "m.db").write_bytes(b"")
    done = _run(tmp_path, "serve")
    assert done.returncode == 1
    assert done.stderr.decode().startswith("mailwing: error: ")
    assert b"Traceback" not in done.stderr
