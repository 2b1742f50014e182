"""The import, export, backup and restore commands as real processes: summaries, sysexits
exit codes and one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.portability.conftest import message, write_maildir_file
from tests.support import MailwingServer


@pytest.fixture
def mw(tmp_path: Path, database_url: str) -> MailwingServer:
    srv = MailwingServer(root=tmp_path / "mw", database_url=database_url)
    srv.cli("db", "upgrade")
    srv.add_user("alice@example.org", "pw")
    return srv


def error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_import_export_commands(mw: MailwingServer, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    write_maildir_file(maildir, "1.M1P1.h:2,S", message(1), 1_700_000_000)
    write_maildir_file(maildir / ".Work", "2.M1P1.h:2,F", message(2), 1_700_000_001)
    write_maildir_file(maildir / ".Work", "3.M1P1.h:2,", b"no header here\n", 1_700_000_002)
    first = mw.cli("import", "alice@example.org", str(maildir), check=False)
    out = first.stdout.decode()
    assert first.returncode == 65, first  # EX_DATAERR: one item skipped, the rest imported
    assert "messages imported: 2" in out and "1 no header" in out
    assert "folders: 2 (1 created)" in out
    assert b"skipped" in first.stderr  # the per-item line (plain, not a TTY bar)
    second = mw.cli("import", "alice@example.org", str(maildir), check=False)
    assert "messages imported: 0" in second.stdout.decode()
    assert "2 already in the mailbox" in second.stdout.decode()

    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(b"From x Mon Jan  1 10:00:00 2024\n" + message(3) + b"\n")
    out = mw.cli("import", "alice@example.org", str(mbox), "--folder", "Old",
                 "--quiet").stdout.decode()
    assert "messages imported: 1" in out

    exported = mw.cli("export", "alice@example.org", str(tmp_path / "out")).stdout.decode()
    assert "messages exported: 3" in exported
    assert len(list((tmp_path / "out" / ".Work" / "cur").iterdir())) == 1
    again = mw.cli("export", "alice@example.org", str(tmp_path / "out"), check=False)
    assert again.returncode == 2 and "not empty" in error_line(again)

    nouser = mw.cli("import", "nobody@example.org", str(maildir), check=False)
    assert nouser.returncode == 67 and "no user" in error_line(nouser)
    missing = mw.cli("import", "alice@example.org", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 66 and "no such file" in error_line(missing)
    remote = mw.cli("import", "alice@example.org", "imap://a@127.0.0.1:9", "--password-file",
                    str(mbox), check=False)
    assert remote.returncode == 69 and "cannot reach" in error_line(remote)


def test_backup_restore_commands(mw: MailwingServer, tmp_path: Path) -> None:
    mw.deliver("alice@example.org", message(1, crlf=True))
    out = mw.cli("backup", str(tmp_path / "bk")).stdout.decode()
    assert "1 users, 1 messages, 1 contents" in out
    fresh = MailwingServer(root=tmp_path / "fresh",
                           database_url=f"sqlite:///{tmp_path / 'fresh' / 'data' / 'mw.db'}")
    restored = fresh.cli("restore", str(tmp_path / "bk")).stdout.decode()
    assert "mail: 1 rows" in restored and "verified" in restored
    assert "alice@example.org" in fresh.cli("user", "list").stdout.decode()
    twice = fresh.cli("restore", str(tmp_path / "bk"), check=False)
    assert twice.returncode == 1 and "already holds data" in error_line(twice)
    bad = fresh.cli("restore", str(tmp_path), check=False)
    assert bad.returncode == 1 and "not a mailwing backup" in error_line(bad)
