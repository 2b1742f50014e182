"""The pytest plugin, run the way a user's suite runs it: through pytester, with the plugin
found by its ``pytest11`` entry point (nothing in the test file imports it)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_SUITE = '''
import asyncio, imaplib, poplib, smtplib
import pytest


def test_user_receives_over_smtp_and_reads_over_imap(mailwing_server, mailwing_user):
    with smtplib.SMTP(mailwing_server.host, mailwing_server.ports["smtp"]) as smtp:
        smtp.sendmail("x@elsewhere.test", [mailwing_user.address],
                      b"Subject: plugin\\r\\n\\r\\nbody\\r\\n")
    [msg] = mailwing_user.wait_for(1)
    assert msg.subject == "plugin"
    imap = imaplib.IMAP4(mailwing_server.host, mailwing_server.ports["imap"])
    imap.login(mailwing_user.address, mailwing_user.password)
    assert imap.select("INBOX") == ("OK", [b"1"])
    imap.logout()


def test_each_test_gets_a_fresh_server(mailwing_server):
    assert mailwing_server.messages("anyone@example.test") == []


@pytest.mark.mailwing(tls=True)
def test_marker_options(mailwing_server):
    assert "imaps" in mailwing_server.ports
    mailwing_server.client_ssl_context()


def test_session_server_is_shared(mailwing_session_server, request):
    mailwing_session_server.add_user("shared@example.test", "pw")
    mailwing_session_server.deliver("shared@example.test", b"Subject: s\\r\\n\\r\\nx\\r\\n")
    assert len(mailwing_session_server.messages("shared@example.test")) >= 1


def test_session_server_again(mailwing_session_server):
    assert len(mailwing_session_server.messages("shared@example.test")) >= 1


def test_capture_fixture(mailwing_capture):
    with smtplib.SMTP(mailwing_capture.host, mailwing_capture.ports["submission"]) as smtp:
        smtp.sendmail("app@app.test", ["who@ever.test"], b"Subject: cap\\r\\n\\r\\nx\\r\\n")
    assert [m.subject for m in mailwing_capture.captured()] == ["cap"]


def test_async_test_can_use_the_sync_fixture(mailwing_user):
    async def main():
        mailwing_user.server.deliver(mailwing_user.address, b"Subject: a\\r\\n\\r\\nx\\r\\n")
        return mailwing_user.messages()
    assert len(asyncio.run(main())) == 1
'''


def test_plugin_fixtures_in_a_user_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_suite=USER_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-q")
    result.assert_outcomes(passed=7)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.mailwing(**options)*"])
