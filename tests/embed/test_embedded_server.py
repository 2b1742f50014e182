"""The embeddable server (``from mailwing import MailServer``) with the stdlib clients."""

from __future__ import annotations

import asyncio
import imaplib
import json
import poplib
import smtplib
import socket
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailwing import AsyncMailServer, MailServer

MESSAGE = b"From: bob@elsewhere.test\r\nSubject: hello\r\n\r\nfirst line\r\n"


def test_sync_server_speaks_smtp_imap_and_pop3() -> None:
    with MailServer() as server:
        assert set(server.ports) == {"smtp", "submission", "imap", "pop3"}
        assert len(set(server.ports.values())) == 4
        server.add_user("alice@example.test", "s3cret")
        with smtplib.SMTP(server.host, server.ports["smtp"]) as smtp:
            smtp.sendmail("bob@elsewhere.test", ["alice@example.test"], MESSAGE)
        [msg] = server.wait_for_messages("alice@example.test")
        assert msg.subject == "hello" and msg.text.strip() == "first line"
        assert msg.raw.endswith(MESSAGE)  # stored byte for byte after the trace headers

        imap = imaplib.IMAP4(server.host, server.ports["imap"])
        imap.login("alice@example.test", "s3cret")
        assert imap.select("INBOX") == ("OK", [b"1"])
        _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: hello" in data[0][1]
        imap.logout()

        pop = poplib.POP3(server.host, server.ports["pop3"])
        pop.user("alice@example.test")
        pop.pass_("s3cret")
        assert pop.stat()[0] == 1
        pop.quit()

        server.deliver("alice@example.test", "Subject: direct\r\n\r\nvia deliver\r\n")
        assert [m.subject for m in server.messages("alice@example.test")] == ["hello", "direct"]
        data_dir = server.data_dir
    assert not data_dir.exists()  # the temporary folder is removed at stop


def test_nothing_leaves_and_unknown_users_are_refused() -> None:
    with MailServer() as server:
        server.add_user("alice@example.test", "pw")
        with smtplib.SMTP(server.host, server.ports["submission"]) as smtp:
            smtp.login("alice@example.test", "pw")
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail("alice@example.test", ["someone@gmail.com"], MESSAGE)
            assert refused.value.recipients["someone@gmail.com"][0] == 550
        with smtplib.SMTP(server.host, server.ports["smtp"]) as smtp, \
                pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("bob@elsewhere.test", ["nobody@example.test"], MESSAGE)
        assert server.messages("nobody@example.test") == []
        with pytest.raises(TimeoutError):
            server.wait_for_messages("alice@example.test", timeout=0.2)


async def test_async_server_on_the_running_loop(tmp_path: Path) -> None:
    async with AsyncMailServer(data_dir=tmp_path / "mail") as server:
        await server.add_user("carol@example.test", "pw")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "x@y.test", "carol@example.test", "async"
        msg.set_content("hi")
        uid = await server.deliver("carol@example.test", msg)
        assert uid == 1

        def read() -> bytes:
            imap = imaplib.IMAP4(server.host, server.ports["imap"])
            imap.login("carol@example.test", "pw")
            imap.select("INBOX")
            _, data = imap.fetch("1", "(BODY.PEEK[])")
            imap.logout()
            return bytes(data[0][1])

        assert b"Subject: async" in await asyncio.to_thread(read)
        assert (await server.messages("carol@example.test"))[0].subject == "async"
    assert (tmp_path / "mail" / "mailwing.db").exists()  # a given folder is kept
    for port in server.ports.values():
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 1):
            pass


def test_tls_listeners_with_a_trusted_self_signed_certificate() -> None:
    with MailServer(tls=True) as server:
        assert {"smtps", "imaps", "pop3s"} <= set(server.ports)
        server.add_user("dave@example.test", "pw")
        ctx = server.client_ssl_context()
        with smtplib.SMTP_SSL(server.host, server.ports["smtps"], context=ctx) as smtp:
            smtp.login("dave@example.test", "pw")
            smtp.sendmail("dave@example.test", ["dave@example.test"], b"Subject: tls\r\n\r\nx\r\n")
        with smtplib.SMTP(server.host, server.ports["submission"]) as smtp:
            smtp.starttls(context=ctx)
            smtp.login("dave@example.test", "pw")
        imap = imaplib.IMAP4_SSL(server.host, server.ports["imaps"], ssl_context=ctx)
        imap.login("dave@example.test", "pw")
        assert imap.select("INBOX")[0] == "OK"
        imap.logout()
        assert server.wait_for_messages("dave@example.test")[0].subject == "tls"


def test_misuse_is_reported() -> None:
    with pytest.raises(ValueError, match="unknown listener"):
        MailServer(listeners=["smtp", "gopher"])
    server = MailServer(listeners=["smtp"])
    with pytest.raises(RuntimeError, match="not running"):
        server.messages("a@b.test")
    with server:
        assert set(server.ports) == {"smtp"}
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    server.stop()  # a second stop is harmless


def test_capture_mode_keeps_everything_and_sends_nothing() -> None:
    with MailServer(capture=True) as server:
        with smtplib.SMTP(server.host, server.ports["submission"]) as smtp:
            smtp.login("any-user", "any-password")  # any credentials are accepted
            smtp.sendmail("app@myapp.test", ["x@gmail.com", "y@yahoo.com"],
                          b"Subject: signup\r\n\r\nwelcome\r\n")
        with smtplib.SMTP(server.host, server.ports["smtp"]) as smtp:  # and no AUTH at all
            smtp.sendmail("app@myapp.test", ["z@example.org"], b"Subject: reset\r\n\r\nx\r\n")
        assert [m.subject for m in server.captured()] == ["signup", "reset"]
        imap = imaplib.IMAP4(server.host, server.ports["imap"])
        imap.login(server.settings.capture.address, server.settings.capture.password)
        assert imap.select("INBOX") == ("OK", [b"2"])
        imap.logout()


async def test_stop_with_sessions_still_open_is_quiet() -> None:
    """Sessions cancelled by a stop end their connection task normally: on Python 3.11 a
    stream connection task that ends *cancelled* makes asyncio report "Exception in callback"
    with a CancelledError traceback (for every open connection of a test server)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        server = AsyncMailServer()
        server.settings.server.shutdown_grace = 0.0  # cancel at once what is still running
        await server.start()
        opened = []
        for name in ("imap", "pop3", "smtp"):
            reader, writer = await asyncio.open_connection(server.host, server.ports[name])
            await reader.readline()  # the greeting: the session is running
            opened.append(writer)
        await server.stop()
        for writer in opened:
            writer.close()
        await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


STARTUP_IMPORTS = """
import asyncio, json, sys
from mailwing import AsyncMailServer

async def main():
    async with AsyncMailServer():
        pass

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def test_start_imports_no_dns_or_crypto_library() -> None:
    """An embedded server makes no DNS query and signs nothing, so its start-up (issue #12:
    within 150 ms) does not pay for importing dnspython and cryptography (~90 modules)."""
    done = subprocess.run([sys.executable, "-c", STARTUP_IMPORTS], capture_output=True,
                          timeout=60, check=True)
    modules = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert "mailwing.mailauth.dns" in modules  # the checks' modules are there, unused
    assert [m for m in modules if m.split(".")[0] in ("dns", "cryptography", "dkim")] == []
