"""Capture mode through a real ``mailwing serve --capture``: any recipient, any AUTH, nothing
relayed; mail read back over IMAP and POP3, per recipient too; retention by count and age."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailwing.config import Settings
from mailwing.services.capture import Capture, apply_capture_mode, provision
from mailwing.storage.interface import Delivery

PASSWORD = "capture-pw"


def _send(port: int, rcpts: list[str], subject: str, *, login: bool = False) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        if login:
            smtp.login("django-app", "whatever")
        smtp.sendmail("noreply@myapp.test", rcpts,
                      f"From: noreply@myapp.test\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())


def _subjects(port: int, user: str, password: str) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, password)
    _, (count,) = imap.select("INBOX")
    subjects = []
    for n in range(1, int(count) + 1):
        _, data = imap.fetch(str(n), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects.append(bytes(data[0][1]).decode().strip().removeprefix("Subject: "))
    imap.logout()
    return subjects


def test_serve_capture(server_factory: Any, database_url: str, tmp_path: Path) -> None:
    server = server_factory(
        root=tmp_path, database_url=database_url, serve_args=("--capture",),
        enable=("smtp", "submission", "imap", "pop3"),
        extra_config=f'[capture]\npassword = "{PASSWORD}"\nper_recipient = true\n'
                     '[outbound]\nenabled = true\n').start()
    _send(server.ports["submission"], ["a@gmail.com", "b@example.org"], "one")  # no AUTH
    _send(server.ports["submission"], ["a@gmail.com"], "two", login=True)  # any AUTH
    _send(server.ports["smtp"], ["c@yahoo.com"], "three")
    imap = server.ports["imap"]
    assert _subjects(imap, "capture@localhost", PASSWORD) == ["one", "two", "three"]
    assert _subjects(imap, "a@gmail.com", PASSWORD) == ["one", "two"]  # only its own mail
    assert _subjects(imap, "c@yahoo.com", PASSWORD) == ["three"]
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"])
    pop.user("b@example.org")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    pop.quit()
    # nothing was queued for delivery, even with [outbound] enabled in the file
    assert server.cli("queue", "list").stdout.strip() == b"0 message(s) queued"
    log = server.log_path.read_text()
    assert "capture mode" in log


def test_capture_password_is_generated_once(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(root=tmp_path, enable=("imap",),
                            env={"MAILWING_CAPTURE_ENABLED": "true"}).start()
    secret = (server.data_dir / "capture-password.txt").read_text().strip()
    assert len(secret) >= 12 and oct((server.data_dir / "capture-password.txt")
                                     .stat().st_mode)[-3:] == "600"
    assert _subjects(server.ports["imap"], "capture@localhost", secret) == []
    server.stop()
    server.start()
    assert (server.data_dir / "capture-password.txt").read_text().strip() == secret


async def test_retention_by_count_and_age(store: Any, tmp_path: Path) -> None:
    settings = Settings()
    settings.server.data_dir = tmp_path
    settings.capture.enabled = True
    settings.capture.password = "pw"
    apply_capture_mode(settings)
    await provision(store, settings)
    user = await store.get_user("capture@localhost")
    inbox = await store.get_mailbox(user.id, "INBOX")
    now = datetime.now(UTC)
    for i, age_days in enumerate([10, 5, 3, 2, 1, 0]):
        content = await store.store_content(f"Subject: m{i}\r\n\r\nx\r\n".encode())
        when = now - timedelta(days=age_days)
        await store.append(content, [Delivery(inbox.id, internal_date=when)])
    capture = Capture(store, settings)
    assert await capture.enforce_retention() == 0  # no rule: keep everything
    settings.capture.max_age = "7d"
    assert await capture.enforce_retention() == 1  # the 10-day-old one
    settings.capture.max_messages = 3
    assert await capture.enforce_retention() == 2  # the two oldest of the five left
    left = await store.list_mail(inbox.id)
    assert [e.uid for e in left] == [4, 5, 6]


def test_capture_settings_validation() -> None:
    from mailwing.config import ConfigError, load_settings

    bad = {"MAILWING_CAPTURE_MAX_AGE": "soon"}
    with pytest.raises(ConfigError, match=r"capture\.max_age"):
        load_settings(None, environ=bad)
    with pytest.raises(ConfigError, match=r"capture\.address"):
        load_settings(None, environ={"MAILWING_CAPTURE_ADDRESS": "nobody"})


def test_captured_mail_in_the_admin_api_and_console(server_factory: Any, tmp_path: Path) -> None:
    """The admin listener browses the capture account like any other (issue 12)."""
    import httpx

    server = server_factory(root=tmp_path, serve_args=("--capture",),
                            enable=("smtp", "admin"),
                            extra_config=f'[capture]\npassword = "{PASSWORD}"\n').start()
    token = server.cli("admin", "token", "create", "capture-tests").stdout.decode().strip()
    _send(server.ports["smtp"], ["dev@anywhere.test"], "browse me")
    base = f"http://127.0.0.1:{server.ports['admin']}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as api:
        page = api.get("/api/v1/users/capture@localhost/mailboxes/INBOX/messages").json()
        assert [m["subject"] for m in page["messages"]] == ["browse me"]
        uid = page["messages"][0]["uid"]
        raw = api.get(f"/api/v1/users/capture@localhost/mailboxes/INBOX/messages/{uid}/raw")
        assert b"Subject: browse me" in raw.content
