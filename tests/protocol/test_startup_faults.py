"""Start-up faults stop ``mailwing serve`` with one line, before any port is bound.

A session module that cannot be imported used to be taken for "not written yet" and its
listener was skipped with an info line: a broken installation then served without POP3, say,
and nobody noticed. Every protocol is written now, so it is an installation fault.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailwing import app
from tests.support import MailwingServer

BROKEN_SERVE = """
import sys
import mailwing.app as app
app.HANDLERS["pop3"] = ("mailwing.server.no_such_session", "handle_pop3")
from mailwing.cli.main import main
raise SystemExit(main(["--config", sys.argv[1], "serve"]))
"""


def test_missing_session_module_is_a_startup_error() -> None:
    original = dict(app.HANDLERS)
    try:
        app.HANDLERS["pop3"] = ("mailwing.server.no_such_session", "handle_pop3")
        with pytest.raises(app.StartupError, match=r"cannot load the pop3 session "
                                                    r"\(mailwing.server.no_such_session\)"):
            app.load_handlers({"pop3"})
        assert set(app.load_handlers({"smtp", "imap"})) == {"smtp", "imap"}
        app.HANDLERS["pop3"] = ("mailwing.server.pop3_session", "no_such_function")
        with pytest.raises(app.StartupError, match="has no no_such_function"):
            app.load_handlers()
    finally:
        app.HANDLERS.clear()
        app.HANDLERS.update(original)


def test_serve_refuses_to_start_with_a_broken_installation(tmp_path: Path) -> None:
    server = MailwingServer(root=tmp_path, enable=("pop3",))
    server.cli("db", "upgrade")
    result = subprocess.run([sys.executable, "-c", BROKEN_SERVE, str(server.config_path)],
                            capture_output=True, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    lines = [line for line in err.splitlines() if "cannot load" in line]
    assert len(lines) == 1 and "mailwing.server.no_such_session" in lines[0]
    assert "Traceback" not in err
