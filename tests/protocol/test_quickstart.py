"""`make run` = `mailwing quickstart`: a fresh data folder gets a demo account whose password
is printed and works at once; a second run adds nothing and only serves."""

from __future__ import annotations

import os
import poplib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import LISTENER_NAMES, free_port


def _run_quickstart(workdir: Path, ports: dict[str, int]) -> tuple[str, int]:
    env = dict(os.environ)
    for name in LISTENER_NAMES:
        env[f"MAILWING_{name.upper()}_PORT"] = str(ports.get(name, 0))
    env["MAILWING_SERVER_DATA_DIR"] = str(workdir / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwing", "quickstart"], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + 60
    while b"stop with Ctrl-C" not in out and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out += line
    text = out.decode()
    assert "stop with Ctrl-C" in text, text
    # wait until the POP3 port answers (signal handlers are installed by then)
    for _ in range(200):
        try:
            client = poplib.POP3("127.0.0.1", ports["pop3"], timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    password = re.search(r"demo password: (\S+)", text)
    if not password:
        client.quit()
    else:
        client.user("demo@localhost")
        client.pass_(password.group(1))
        count, _ = client.stat()
        assert count == 1  # the welcome message
        assert b"Welcome to mailwing" in b"\r\n".join(client.retr(1)[1])
        client.quit()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    return text, code


def test_quickstart_creates_a_working_demo_account_once(tmp_path: Path) -> None:
    ports = {"pop3": free_port(), "smtp": free_port()}
    first, code = _run_quickstart(tmp_path, ports)
    assert code == 0
    assert "demo account created: demo@localhost" in first
    assert re.search(r"demo password: \S+", first)
    assert f"127.0.0.1:{ports['pop3']}" in first
    password_file = tmp_path / "data" / "demo-password.txt"
    assert password_file.stat().st_mode & 0o077 == 0

    second, code = _run_quickstart(tmp_path, ports)
    assert code == 0
    assert "existing installation: no account was added" in second
    assert "demo password:" not in second
