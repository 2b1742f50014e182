"""The ``mailwing`` command as operators and MTAs run it: real processes, both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import MailwingServer

MSG = b"From: a@example.net\r\nSubject: hello\r\n\r\nbody\r\n"


@pytest.fixture
def mw(tmp_path: Path, database_url: str) -> MailwingServer:
    srv = MailwingServer(root=tmp_path, database_url=database_url)
    srv.cli("db", "upgrade")
    return srv


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mailwing: error: ")
    return lines[0]


def test_db_upgrade_and_status(tmp_path: Path, database_url: str) -> None:
    srv = MailwingServer(root=tmp_path, database_url=database_url)
    status = srv.cli("db", "status", check=False)
    assert status.returncode == 1 and b"mailwing db upgrade" in status.stdout
    out = srv.cli("db", "upgrade").stdout.decode()
    assert "from version 0 to" in out
    assert b"up to date" in srv.cli("db", "upgrade").stdout
    assert srv.cli("db", "status").returncode == 0


def test_user_lifecycle(mw: MailwingServer) -> None:
    out = mw.cli("user", "add", "Bob@Example.ORG", "--password-stdin", "--quota", "1000000",
                 input=b"pw1\n").stdout.decode()
    assert "domain example.org added" in out and "user bob@example.org added" in out
    out = mw.cli("user", "add", "carol@example.org", "--password-stdin",
                 input=b"pw2\n").stdout.decode()
    assert "domain" not in out
    dup = mw.cli("user", "add", "bob@example.org", "--password-stdin", input=b"x\n",
                 check=False)
    assert dup.returncode == 1
    assert "already exists" in one_line_error(dup)

    mw.deliver("bob@example.org", MSG)
    table = mw.cli("user", "list").stdout.decode().splitlines()
    assert table[0].split()[:2] == ["ADDRESS", "ENABLED"]
    bob = next(line.split() for line in table if line.startswith("bob@"))
    assert bob[1:3] == ["yes", "1"] and int(bob[3]) > len(MSG) and bob[4] == "1000000"
    carol = next(line.split() for line in table if line.startswith("carol@"))
    assert carol[1:] == ["yes", "0", "0", "unlimited"]

    pwfile = mw.root / "pw.txt"
    pwfile.write_text("newpass\n")
    assert "changed" in mw.cli("user", "passwd", "bob@example.org", "--password-file",
                               str(pwfile)).stdout.decode()
    mw.cli("user", "disable", "bob@example.org")
    assert " no " in next(line for line in mw.cli("user", "list").stdout.decode().splitlines()
                          if line.startswith("bob@"))
    mw.cli("user", "enable", "bob@example.org")
    mw.cli("user", "del", "bob@example.org")
    assert b"bob@" not in mw.cli("user", "list").stdout
    gone = mw.cli("user", "del", "bob@example.org", check=False)
    assert gone.returncode == 1
    assert one_line_error(gone) == "mailwing: error: user bob@example.org does not exist"
    missing = mw.cli("user", "passwd", "nobody@example.org", "--password-stdin",
                     input=b"x\n", check=False)
    assert missing.returncode == 1 and "does not exist" in one_line_error(missing)


def test_password_never_from_argv(mw: MailwingServer) -> None:
    r = mw.cli("user", "add", "eve@example.org", "--password", "hunter2", check=False)
    assert r.returncode == 2
    assert b"hunter2" not in r.stderr + r.stdout
    one_line_error(r)
    # without a flag and without a terminal it refuses instead of reading stdin silently
    r = mw.cli("user", "add", "eve@example.org", input=b"hunter2\n", check=False)
    assert r.returncode == 2 and "--password-stdin" in one_line_error(r)
    assert b"eve@" not in mw.cli("user", "list").stdout
    empty = mw.cli("user", "add", "eve@example.org", "--password-stdin", input=b"\n",
                   check=False)
    assert empty.returncode == 2 and "empty" in one_line_error(empty)


def test_bad_address(mw: MailwingServer) -> None:
    r = mw.cli("user", "add", "no-at-sign", "--password-stdin", input=b"x\n", check=False)
    assert r.returncode == 2
    one_line_error(r)


def test_domains(mw: MailwingServer) -> None:
    assert mw.cli("domain", "add", "Example.COM").stdout == b"domain example.com added\n"
    dup = mw.cli("domain", "add", "example.com", check=False)
    assert dup.returncode == 1 and "already exists" in one_line_error(dup)
    mw.add_user("u@example.net", "pw")
    assert mw.cli("domain", "list").stdout.decode().split() == ["example.com", "example.net"]
    busy = mw.cli("domain", "del", "example.net", check=False)
    assert busy.returncode == 1 and "has users" in one_line_error(busy)
    mw.cli("domain", "del", "example.com")
    assert mw.cli("domain", "list").stdout.decode().split() == ["example.net"]
    nope = mw.cli("domain", "del", "nope.test", check=False)
    assert nope.returncode == 1 and "does not exist" in one_line_error(nope)


def test_deliver_exit_codes(mw: MailwingServer) -> None:
    mw.add_user("bob@example.org", "pw")
    ok = mw.cli("deliver", "--to", "bob@example.org", "--from", "a@example.net", input=MSG,
                check=False)
    assert ok.returncode == 0
    unknown = mw.cli("deliver", "--to", "nobody@example.org", input=MSG, check=False)
    assert unknown.returncode == 67  # EX_NOUSER
    assert "does not exist" in one_line_error(unknown)
    empty = mw.cli("deliver", "--to", "bob@example.org", input=b"", check=False)
    assert empty.returncode == 65  # EX_DATAERR
    one_line_error(empty)
    nobox = mw.cli("deliver", "--to", "bob@example.org", "--mailbox", "Nope", input=MSG,
                   check=False)
    assert nobox.returncode == 73
    mw.deliver("bob@example.org", MSG, mailbox="Archive")
    line = next(x for x in mw.cli("user", "list").stdout.decode().splitlines()
                if x.startswith("bob@"))
    assert line.split()[2] == "2"


def test_deliver_tempfail_on_outdated_schema(tmp_path: Path) -> None:
    srv = MailwingServer(root=tmp_path)  # sqlite, never upgraded
    r = srv.cli("deliver", "--to", "bob@example.org", input=MSG, check=False)
    assert r.returncode == 75  # EX_TEMPFAIL: the MTA retries later
    one_line_error(r)


def test_config_errors_exit_2(tmp_path: Path) -> None:
    srv = MailwingServer(root=tmp_path, extra_config="[auth]\nbogus = 1\n")
    r = srv.cli("user", "list", check=False)
    assert r.returncode == 2
    assert "auth.bogus" in one_line_error(r)
    # MAILWING_CONFIG is honoured and --config may follow the command
    env = {**os.environ, "MAILWING_CONFIG": str(srv.config_path)}
    r = subprocess.run([sys.executable, "-m", "mailwing", "user", "list"], env=env,
                       capture_output=True)
    assert r.returncode == 2 and b"auth.bogus" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mailwing", "db", "status", "--config",
                        str(srv.config_path)], capture_output=True)
    assert r.returncode == 2 and b"auth.bogus" in r.stderr


def test_usage_errors(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mailwing", "frobnicate"], capture_output=True)
    assert r.returncode == 2 and b"Traceback" not in r.stderr
