"""Transcripts against the sans-IO SMTP core: every reply code of the catalogue, in context."""

from __future__ import annotations

import base64

import pytest

from mailwing.proto.smtp.core import SmtpCore, SmtpUsageError
from mailwing.proto.smtp.states import State
from tests.unit.test_smtp_driver import PASSWORD, codes, driver, in_rcpt, ready

MSG = b"Subject: t\r\n\r\nhello\r\n"


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_greeting_helo_ehlo_and_keywords() -> None:
    d = driver()
    assert d.send(b"HELO client.test\r\n") == b"250 mail.test greets client.test\r\n"
    reply = d.send(b"EHLO client.test\r\n").decode()
    lines = reply.split("\r\n")
    assert lines[0] == "250-mail.test greets client.test"
    for kw in ("PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
               "CHUNKING", "STARTTLS", "AUTH PLAIN LOGIN"):
        assert f"250-{kw}" in lines or f"250 {kw}" in lines, kw
    assert lines[-2].startswith("250 ")


def test_ehlo_without_tls_when_plaintext_is_refused_offers_starttls_not_auth() -> None:
    d = driver(plaintext_allowed=False)
    reply = d.send(b"EHLO c\r\n")
    assert b"STARTTLS" in reply and b"AUTH" not in reply
    assert codes(d.send(b"AUTH PLAIN " + plain("u@x.test", "p").encode() + b"\r\n")) == [
        "538 5.7.11"]
    d.send(b"STARTTLS\r\n")
    reply = d.send(b"EHLO c\r\n")
    assert b"AUTH PLAIN LOGIN" in reply and b"STARTTLS" not in reply


def test_general_commands() -> None:
    d = ready()
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]
    assert codes(d.send(b"HELP\r\n")) == ["214 2.0.0"]
    assert codes(d.send(b"VRFY bob\r\n")) == ["252 2.5.2"]
    assert codes(d.send(b"EXPN list\r\n")) == ["502 5.5.1"]
    assert codes(d.send(b"RSET\r\n")) == ["250 2.0.0"]
    assert codes(d.send(b"QUIT\r\n")) == ["221 2.0.0"]
    assert d.closed


@pytest.mark.parametrize(("line", "code"), [
    (b"FOO\r\n", "500 5.5.2"),
    (b"\r\n", "500 5.5.2"),
    (b"MAIL\x00 FROM:<a@b.c>\r\n", "500 5.5.2"),
    (b"\xff\xfe\r\n", "500 5.5.2"),
    (b"X" * 1200 + b"\r\n", "500 5.5.2"),
    (b"MAIL TO:<a@b.c>\r\n", "501 5.5.4"),
    (b"MAIL FROM:<not an address>\r\n", "501 5.1.7"),
    (b"MAIL FROM:<a@b.c> FOO=BAR\r\n", "555 5.5.4"),
    (b"MAIL FROM:<a@b.c> SIZE=abc\r\n", "501 5.5.4"),
    (b"MAIL FROM:<a@b.c> BODY=9BIT\r\n", "501 5.5.4"),
    (b"RCPT TO:<a@b.c>\r\n", "503 5.5.1"),
    (b"DATA\r\n", "503 5.5.1"),
    (b"DATA now\r\n", "501 5.5.4"),
    (b"HELO\r\n", "501 5.5.4"),
    (b"VRFY\r\n", "501 5.5.4"),
    (b"BDAT x\r\n", "501 5.5.4"),
    (b"AUTH CRAM-MD5\r\n", "504 5.5.4"),
])
def test_syntax_and_sequence_errors(line: bytes, code: str) -> None:
    d = ready()
    assert codes(d.send(line)) == [code]
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]  # still in step


def test_line_of_exactly_the_limit_is_accepted_and_one_more_octet_is_not() -> None:
    d = ready()
    pad = b"x" * (1000 - len(b"NOOP ") - 2)
    assert codes(d.send(b"NOOP " + pad + b"\r\n")) == ["250 2.0.0"]
    assert codes(d.send(b"NOOP " + pad + b"x\r\n")) == ["500 5.5.2"]


def test_commands_before_ehlo_need_helo() -> None:
    d = driver()
    assert codes(d.send(b"MAIL FROM:<a@b.c>\r\n")) == ["503 5.5.1"]
    assert b"HELO or EHLO" in d.send(b"AUTH PLAIN\r\n")


def test_mail_rcpt_data_round_trip_with_dot_unstuffing() -> None:
    d = in_rcpt()
    assert d.send(b"RCPT TO:<v@mail.test>\r\n") == b"250 2.1.5 Ok: recipient\r\n"
    assert d.send(b"DATA\r\n") == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    reply = d.send(b"Subject: x\r\n\r\n..leading\r\n.\r\n")
    assert reply == b"250 2.0.0 Ok: queued as Q1\r\n"
    assert d.stored == [("a@remote.test", ("u@mail.test", "v@mail.test"),
                         b"Subject: x\r\n\r\n.leading\r\n")]
    assert d.core.state is State.READY


def test_nested_mail_and_null_sender() -> None:
    d = ready()
    assert codes(d.send(b"MAIL FROM:<>\r\n")) == ["250 2.1.0"]
    assert codes(d.send(b"MAIL FROM:<>\r\n")) == ["503 5.5.1"]
    assert codes(d.send(b"RSET\r\nMAIL FROM:<x@y.z> AUTH=<> BODY=8BITMIME\r\n")) == [
        "250 2.0.0", "250 2.1.0"]


def test_unknown_user_and_too_many_recipients() -> None:
    d = ready(max_recipients=2)
    d.unknown.add("nobody@mail.test")
    d.send(b"MAIL FROM:<a@b.c>\r\n")
    assert codes(d.send(b"RCPT TO:<nobody@mail.test>\r\n")) == ["550 5.1.1"]
    assert codes(d.send(b"RCPT TO:<a@mail.test>\r\nRCPT TO:<b@mail.test>\r\n"
                        b"RCPT TO:<c@mail.test>\r\n")) == ["250 2.1.5", "250 2.1.5", "452 4.5.3"]
    assert codes(d.send(b"RCPT TO:<x@mail.test> NOTIFY=NEVER\r\n")) == ["555 5.5.4"]


def test_declared_size_over_the_limit() -> None:
    d = ready(max_message_size=1000)
    assert codes(d.send(b"MAIL FROM:<a@b.c> SIZE=1001\r\n")) == ["552 5.3.4"]
    assert codes(d.send(b"MAIL FROM:<a@b.c> SIZE=1000\r\n")) == ["250 2.1.0"]


def test_actual_size_over_the_limit_is_refused_after_the_end_and_nothing_stored() -> None:
    d = in_rcpt(max_message_size=1024)
    d.send(b"DATA\r\n")
    body = b"".join(b"%04d " % i + b"x" * 70 + b"\r\n" for i in range(40))
    assert d.send(body) == b""  # no reply before the terminator
    assert codes(d.send(b".\r\n")) == ["552 5.3.4"]
    assert d.stored == [] and d.aborted == 1
    assert codes(d.send(b"RCPT TO:<x@mail.test>\r\n")) == ["503 5.5.1"]  # transaction gone


def test_smtputf8_addresses() -> None:
    d = ready()
    assert codes(d.send("MAIL FROM:<jörg@exämple.test>\r\n".encode())) == ["553 5.6.7"]
    assert codes(d.send("MAIL FROM:<jörg@exämple.test> SMTPUTF8\r\n".encode())) == [
        "250 2.1.0"]
    assert codes(d.send("RCPT TO:<pelé@mail.test>\r\n".encode())) == ["250 2.1.5"]
    d2 = ready()
    d2.send(b"MAIL FROM:<a@b.c>\r\n")
    assert codes(d2.send("RCPT TO:<pelé@mail.test>\r\n".encode())) == ["553 5.6.7"]


def test_pipelined_group_is_answered_in_order_in_one_batch() -> None:
    d = ready()
    d.unknown.add("x@mail.test")
    replies = d.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<u@mail.test>\r\nRCPT TO:<x@mail.test>\r\n"
                     b"DATA\r\n")
    assert codes(replies) == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354"]
    assert codes(d.send(MSG + b".\r\nQUIT\r\n")) == ["250 2.0.0", "221 2.0.0"]
    assert d.stored[0][2] == MSG


def test_binarymime_needs_bdat() -> None:
    d = ready()
    d.send(b"MAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<u@mail.test>\r\n")
    assert codes(d.send(b"DATA\r\n")) == ["503 5.5.1"]
    assert codes(d.send(b"BDAT 3 LAST\r\n\x00\n\r")) == ["250 2.0.0"]
    assert d.stored[0][2] == b"\x00\n\r"


def test_bdat_chunks_last_and_zero_last() -> None:
    d = in_rcpt()
    assert codes(d.send(b"BDAT 7\r\nSubject")) == ["250 2.0.0"]
    assert codes(d.send(b"BDAT 4\r\n: x\r")) == ["250 2.0.0"]
    assert codes(d.send(b"MAIL FROM:<a@b.c>\r\n")) == ["503 5.5.1"]
    assert codes(d.send(b"BDAT 9\r\n\n\r\nbody\r\n")) == ["250 2.0.0"]
    assert codes(d.send(b"BDAT 0 LAST\r\n")) == ["250 2.0.0"]
    assert d.stored[0][2] == b"Subject: x\r\n\r\nbody\r\n"
    d.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<u@mail.test>\r\n")
    assert d.send(b"BDAT 5 LAST\r\nhi\r\n.") == b"250 2.0.0 Ok: queued as Q2\r\n"
    assert d.stored[1][2] == b"hi\r\n."  # no dot handling in BDAT


def test_bdat_split_across_reads_and_pipelined_after() -> None:
    d = in_rcpt()
    assert d.send(b"BDAT 10 LAST\r\n0123") == b""
    assert codes(d.send(b"456789NOOP\r\n")) == ["250 2.0.0", "250 2.0.0"]
    assert d.stored[0][2] == b"0123456789"


def test_bdat_out_of_sequence_consumes_its_octets() -> None:
    d = ready()
    assert codes(d.send(b"BDAT 6\r\nQUIT\r\n")) == ["503 5.5.1"]
    assert not d.closed
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]


def test_bdat_over_the_limit_fails_the_transaction() -> None:
    d = in_rcpt(max_message_size=1024)
    assert codes(d.send(b"BDAT 1000\r\n" + b"x" * 1000)) == ["250 2.0.0"]
    assert codes(d.send(b"BDAT 100 LAST\r\n" + b"y" * 100)) == ["552 5.3.4"]
    assert d.stored == [] and d.aborted == 1
    assert codes(d.send(b"BDAT 1 LAST\r\nz")) == ["503 5.5.1"]


def test_rset_and_quit_during_bdat_abort_the_body() -> None:
    d = in_rcpt()
    d.send(b"BDAT 3\r\nabc")
    assert codes(d.send(b"EHLO again\r\n")) == ["503 5.5.1"]
    assert codes(d.send(b"RSET\r\n")) == ["250 2.0.0"]
    assert d.aborted == 1
    d2 = in_rcpt()
    d2.send(b"BDAT 3\r\nabc")
    assert codes(d2.send(b"QUIT\r\n")) == ["221 2.0.0"]
    assert d2.aborted == 1 and d2.stored == []


def test_data_content_errors_are_refused_at_the_end() -> None:
    for body, code in [(b"a\nb\r\n", "550 5.6.0"), (b"a\rb\r\n", "550 5.6.0"),
                       (b"a\x00b\r\n", "550 5.6.0"), (b"y" * 999 + b"\r\n", "550 5.6.0")]:
        d = in_rcpt()
        d.send(b"DATA\r\n")
        assert codes(d.send(body + b".\r\n")) == [code], body[:10]
        assert d.stored == [] and d.aborted == 1
    d = in_rcpt()
    d.send(b"DATA\r\n")
    assert codes(d.send(b"y" * 998 + b"\r\n.\r\n")) == ["250 2.0.0"]


def test_auth_plain_with_and_without_initial_response() -> None:
    d = ready()
    assert codes(d.send(f"AUTH PLAIN {plain('u@x.test', PASSWORD)}\r\n".encode())) == [
        "235 2.7.0"]
    assert d.core.user == "u@x.test"
    assert codes(d.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]
    d = ready()
    assert d.send(b"AUTH PLAIN\r\n") == b"334 \r\n"
    assert codes(d.send(plain("u@x.test", PASSWORD).encode() + b"\r\n")) == ["235 2.7.0"]


def test_auth_login() -> None:
    d = ready()
    assert d.send(b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"
    assert d.send(base64.b64encode(b"u@x.test") + b"\r\n") == b"334 UGFzc3dvcmQ6\r\n"
    assert codes(d.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")) == ["235 2.7.0"]
    d = ready()
    user = base64.b64encode(b"u@x.test")
    assert d.send(b"AUTH LOGIN " + user + b"\r\n") == b"334 UGFzc3dvcmQ6\r\n"
    assert codes(d.send(base64.b64encode(b"wrong") + b"\r\n")) == ["535 5.7.8"]
    assert "wrong" not in repr(d.auth_requests[0])


def test_auth_cancel_malformed_and_authzid() -> None:
    d = ready()
    d.send(b"AUTH PLAIN\r\n")
    assert codes(d.send(b"*\r\n")) == ["501 5.0.0"]
    assert codes(d.send(b"AUTH PLAIN !!!!\r\n")) == ["501 5.5.2"]
    other = base64.b64encode(f"boss@x.test\0u@x.test\0{PASSWORD}".encode())
    assert codes(d.send(b"AUTH PLAIN " + other + b"\r\n")) == ["535 5.7.8"]
    assert codes(d.send(b"AUTH PLAIN\r\n" + b"A" * 13000 + b"\r\n")) == ["334", "500 5.5.6"]


def test_three_auth_failures_close_with_421() -> None:
    d = ready()
    bad = f"AUTH PLAIN {plain('u@x.test', 'nope')}\r\n".encode()
    assert codes(d.send(bad + bad)) == ["535 5.7.8", "535 5.7.8"]
    assert codes(d.send(bad)) == ["421 4.7.0"]
    assert d.closed


def test_submission_requires_auth_before_mail() -> None:
    d = ready(auth_required=True)
    assert codes(d.send(b"MAIL FROM:<u@x.test>\r\n")) == ["530 5.7.0"]
    d.send(f"AUTH PLAIN {plain('u@x.test', PASSWORD)}\r\n".encode())
    assert codes(d.send(b"MAIL FROM:<u@x.test>\r\n")) == ["250 2.1.0"]
    assert codes(d.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]


def test_starttls_discards_pipelined_plaintext_and_forgets_ehlo() -> None:
    d = ready()
    assert codes(d.send(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")) == ["220 2.0.0"]
    assert d.core.tls_active and d.core.state is State.CONNECTED
    assert codes(d.send(b"MAIL FROM:<a@b.c>\r\n")) == ["503 5.5.1"]
    d.send(b"EHLO c\r\n")
    assert codes(d.send(b"STARTTLS\r\n")) == ["503 5.5.1"]
    d2 = ready(tls_available=False)
    assert codes(d2.send(b"STARTTLS\r\n")) == ["454 4.7.0"]


def test_too_many_errors_in_a_row_close_with_421() -> None:
    d = ready(max_errors=3)
    assert codes(d.send(b"FOO\r\nFOO\r\nNOOP\r\nFOO\r\nFOO\r\n")) == [
        "500 5.5.2", "500 5.5.2", "250 2.0.0", "500 5.5.2", "500 5.5.2"]
    assert codes(d.send(b"FOO\r\nNOOP\r\n")) == ["421 4.7.0"]
    assert d.closed


def test_result_calls_out_of_turn_are_usage_errors() -> None:
    core = SmtpCore("mail.test")
    with pytest.raises(SmtpUsageError):
        core.mail_accepted()
    core.receive_data(b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nNOOP\r\n")
    while type(core.next_event()).__name__ != "MailRequest":
        pass
    with pytest.raises(SmtpUsageError):
        core.next_event()
