"""mutt (``imap_deflate=yes``) opens a mailbox over COMPRESS=DEFLATE (RFC 4978): the index it
draws lists the message, and the server's session log shows compression was switched on.
mutt needs a terminal, so it runs under ``script`` (util-linux) with ``push <quit>``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.protocol.test_imap_support import PASSWORD, USER, simple, start
from tests.support import MailwingServer, require_binary


def test_mutt_imap_deflate(server_factory: type[MailwingServer], tmp_path: Path,
                           database_url: str) -> None:
    mutt, script = require_binary("mutt"), require_binary("script")
    srv = start(server_factory, tmp_path, database_url, enable=("imap",))
    srv.deliver(USER, simple("hello mutt"))
    home = tmp_path / "home"
    home.mkdir()
    rc = home / "muttrc"
    rc.write_text(
        f'set imap_user="{USER}"\nset imap_pass="{PASSWORD}"\nset imap_deflate=yes\n'
        "set ssl_starttls=no\nset ssl_force_tls=no\nset mail_check=0\n"
        f'set folder="imap://127.0.0.1:{srv.ports["imap"]}/"\nset spoolfile="+INBOX"\n'
        f'set header_cache="{home}/hcache"\n')
    env = {**os.environ, "TERM": "xterm", "HOME": str(home)}
    result = subprocess.run(
        [script, "-qec", f"{mutt} -n -F {rc} -e 'push <quit>'", "/dev/null"],
        env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result
    assert b"hello mutt" in result.stdout
    log = srv.log_text()
    assert "compression started" in log and "mechanism=DEFLATE" in log
