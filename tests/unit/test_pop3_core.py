"""Transcripts against the sans-IO POP3 core alone: bytes in, replies and events out."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwing.proto.pop3.core import Pop3Core, Pop3UsageError
from mailwing.proto.pop3.events import (
    AuthFailure,
    AuthRequest,
    Close,
    CommandReceived,
    Event,
    MaildropItem,
    NeedData,
    RetrieveRequest,
    SendReply,
    StartTlsRequest,
    UpdateRequest,
)
from mailwing.proto.pop3.states import State

GREETING = b"+OK mailwing POP3 server ready <mail.test>\r\n"
DROP = [
    MaildropItem(uid=10, uidl="7.10", octets=120),
    MaildropItem(uid=11, uidl="7.11", octets=200),
    MaildropItem(uid=15, uidl="7.15", octets=5),
]


def run(core: Pop3Core, data: bytes = b"") -> tuple[bytes, Event]:
    """Feed ``data``; collect replies until the core needs something (returned too)."""
    if data:
        core.receive_data(data)
    out = []
    while True:
        ev = core.next_event()
        if isinstance(ev, SendReply):
            out.append(ev.data)
        elif isinstance(ev, CommandReceived):
            continue
        else:
            return b"".join(out), ev


def talk(core: Pop3Core, data: bytes) -> bytes:
    out, ev = run(core, data)
    assert isinstance(ev, NeedData), ev
    return out


def new(**kw: object) -> Pop3Core:
    core = Pop3Core("mail.test", **kw)  # type: ignore[arg-type]
    out, ev = run(core)
    assert out == GREETING and isinstance(ev, NeedData)
    return core


def logged_in(drop: list[MaildropItem] | None = None, **kw: object) -> Pop3Core:
    core = new(**kw)
    assert talk(core, b"USER a@b.c\r\n") == b"+OK send PASS\r\n"
    out, ev = run(core, b"PASS secret\r\n")
    assert out == b"" and isinstance(ev, AuthRequest)
    core.auth_succeeded(DROP if drop is None else drop)
    assert talk(core, b"").startswith(b"+OK maildrop has")
    return core


# -- greeting, CAPA -------------------------------------------------------------------------
def test_greeting_then_need_data() -> None:
    new()


def test_capa_before_tls() -> None:
    core = new()
    assert talk(core, b"CAPA\r\n") == (
        b"+OK capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"
        b"AUTH-RESP-CODE\r\nSASL PLAIN\r\nSTLS\r\nIMPLEMENTATION mailwing\r\n.\r\n"
    )


def test_capa_after_tls_has_no_stls() -> None:
    core = new(tls_active=True)
    out = talk(core, b"capa\r\n")
    assert b"STLS" not in out and b"USER\r\n" in out and b"SASL PLAIN\r\n" in out


def test_capa_plaintext_disallowed_hides_login() -> None:
    core = new(plaintext_allowed=False)
    out = talk(core, b"CAPA\r\n")
    assert b"USER\r\n" not in out and b"SASL" not in out and b"STLS\r\n" in out


def test_capa_without_tls_context_has_no_stls() -> None:
    out = talk(new(tls_available=False), b"CAPA\r\n")
    assert b"STLS" not in out


def test_capa_in_transaction() -> None:
    out = talk(logged_in(), b"CAPA\r\n")
    assert out.startswith(b"+OK") and b"STLS" not in out and b"TOP\r\n" in out


# -- USER/PASS ---------------------------------------------------------------------------------
def test_user_pass_login() -> None:
    core = new()
    talk(core, b"USER someone.with.a.long.name.over.forty.chars@example.org\r\n")
    _out, ev = run(core, b"PASS a pass with  spaces \r\n")
    assert isinstance(ev, AuthRequest)
    assert ev.username == "someone.with.a.long.name.over.forty.chars@example.org"
    assert ev.password == "a pass with  spaces "
    assert "spaces" not in repr(ev)
    core.auth_succeeded(DROP)
    assert talk(core, b"") == b"+OK maildrop has 3 messages (325 octets)\r\n"
    assert core.state is State.TRANSACTION


def test_utf8_password() -> None:
    core = new()
    talk(core, b"USER a@b.c\r\n")
    _, ev = run(core, "PASS pässwörd\r\n".encode())
    assert isinstance(ev, AuthRequest) and ev.password == "pässwörd"


def test_pass_without_user() -> None:
    assert talk(new(), b"PASS x\r\n") == b"-ERR send USER first\r\n"


def test_pass_must_follow_user_directly() -> None:
    core = new()
    talk(core, b"USER a@b.c\r\nCAPA\r\n")
    assert talk(core, b"PASS x\r\n") == b"-ERR send USER first\r\n"


@pytest.mark.parametrize(
    ("failure", "reply"),
    [
        (AuthFailure.BAD_CREDENTIALS, b"-ERR [AUTH] authentication failed\r\n"),
        (AuthFailure.THROTTLED, b"-ERR [AUTH] too many failed logins, try again later\r\n"),
        (AuthFailure.DISABLED, b"-ERR [SYS/PERM] account disabled, contact the administrator\r\n"),
        (AuthFailure.TEMPFAIL, b"-ERR [SYS/TEMP] authentication temporarily unavailable, "
                               b"try again later\r\n"),
        (AuthFailure.MAILDROP_TEMPFAIL, b"-ERR [SYS/TEMP] maildrop temporarily unavailable, "
                                        b"try again later\r\n"),
    ],
)
def test_auth_failures(failure: AuthFailure, reply: bytes) -> None:
    core = new()
    talk(core, b"USER a@b.c\r\n")
    _, ev = run(core, b"PASS x\r\n")
    assert isinstance(ev, AuthRequest)
    core.auth_failed(failure)
    assert talk(core, b"") == reply
    assert core.state is State.AUTHORIZATION
    assert core.errors == (0 if failure.name.endswith("TEMPFAIL") else 1)


def test_plaintext_refused_without_tls() -> None:
    core = new(plaintext_allowed=False)
    assert b"STLS" in talk(core, b"USER a@b.c\r\n")
    assert talk(core, b"PASS x\r\n").startswith(b"-ERR [AUTH]")
    assert b"STLS" in talk(core, b"AUTH PLAIN AGFAYg==\r\n")


def test_plaintext_allowed_after_tls() -> None:
    core = new(plaintext_allowed=False)
    out, ev = run(core, b"STLS\r\n")
    assert out == b"+OK begin TLS negotiation\r\n" and isinstance(ev, StartTlsRequest)
    core.tls_started()
    assert talk(core, b"USER a@b.c\r\n") == b"+OK send PASS\r\n"


# -- AUTH PLAIN (RFC 5034, RFC 4616) ------------------------------------------------------
def b64(s: bytes) -> bytes:
    return base64.b64encode(s)


def test_auth_plain_initial_response() -> None:
    core = new()
    _out, ev = run(core, b"AUTH PLAIN " + b64(b"\0a@b.c\0pw") + b"\r\n")
    assert isinstance(ev, AuthRequest) and (ev.username, ev.password) == ("a@b.c", "pw")
    assert ev.mechanism == "PLAIN"


def test_auth_plain_continuation() -> None:
    core = new()
    assert talk(core, b"auth plain\r\n") == b"+ \r\n"
    _, ev = run(core, b64(b"a@b.c\0a@b.c\0pw") + b"\r\n")
    assert isinstance(ev, AuthRequest) and ev.username == "a@b.c"


def test_auth_plain_continuation_may_exceed_command_limit() -> None:
    core = new()
    talk(core, b"AUTH PLAIN\r\n")
    resp = b64(b"\0" + b"u" * 200 + b"@b.c\0" + b"p" * 200)
    assert len(resp) > 255
    _, ev = run(core, resp + b"\r\n")
    assert isinstance(ev, AuthRequest)


def test_auth_continuation_too_long() -> None:
    core = new()
    talk(core, b"AUTH PLAIN\r\n")
    assert talk(core, b"A" * 3000 + b"\r\n") == (
        b"-ERR [AUTH] authentication response too long\r\n")
    assert talk(core, b"NOOP\r\n").startswith(b"-ERR NOOP not allowed")


def test_auth_cancel() -> None:
    core = new()
    talk(core, b"AUTH PLAIN\r\n")
    assert talk(core, b"*\r\n") == b"-ERR [AUTH] authentication cancelled\r\n"


@pytest.mark.parametrize("resp", [b"!!!!", b"abc", b"=", b64(b"nonuls"), b64(b"\0\0pw")])
def test_auth_malformed(resp: bytes) -> None:
    core = new()
    talk(core, b"AUTH PLAIN\r\n")
    assert talk(core, resp + b"\r\n") == b"-ERR [AUTH] malformed SASL response\r\n"


def test_auth_empty_initial_response() -> None:
    assert talk(new(), b"AUTH PLAIN =\r\n") == b"-ERR [AUTH] malformed SASL response\r\n"


def test_auth_other_authzid_refused() -> None:
    out = talk(new(), b"AUTH PLAIN " + b64(b"boss@b.c\0a@b.c\0pw") + b"\r\n")
    assert out.startswith(b"-ERR [AUTH] not authorized")


def test_auth_lists_mechanisms() -> None:
    assert talk(new(), b"AUTH\r\n") == b"+OK supported SASL mechanisms follow\r\nPLAIN\r\n.\r\n"


def test_auth_unknown_mechanism() -> None:
    assert talk(new(), b"AUTH CRAM-MD5\r\n").startswith(b"-ERR unsupported SASL mechanism")


def test_apop_not_supported() -> None:
    assert talk(new(), b"APOP a d41d8cd98f00b204e9800998ecf8427e\r\n").startswith(b"-ERR APOP")


# -- STLS (RFC 2595) ---------------------------------------------------------------------
def test_stls_discards_pipelined_plaintext() -> None:
    core = new()
    _out, ev = run(core, b"STLS\r\nUSER evil\r\nPASS injected\r\n")
    assert isinstance(ev, StartTlsRequest)
    core.tls_started()
    assert talk(core, b"") == b""
    assert core.tls_active
    assert talk(core, b"STLS\r\n") == b"-ERR TLS is already active\r\n"


def test_stls_refused_on_implicit_tls() -> None:
    assert talk(new(tls_active=True), b"STLS\r\n") == b"-ERR TLS is already active\r\n"


def test_stls_unavailable() -> None:
    assert talk(new(tls_available=False), b"STLS\r\n").startswith(b"-ERR TLS is not available")


def test_stls_not_in_transaction() -> None:
    assert talk(logged_in(), b"STLS\r\n") == b"-ERR STLS not allowed in the TRANSACTION state\r\n"


# -- TRANSACTION ---------------------------------------------------------------------------
def test_stat_list_uidl() -> None:
    core = logged_in()
    assert talk(core, b"STAT\r\n") == b"+OK 3 325\r\n"
    assert talk(core, b"LIST\r\n") == (
        b"+OK 3 messages (325 octets)\r\n1 120\r\n2 200\r\n3 5\r\n.\r\n")
    assert talk(core, b"LIST 2\r\n") == b"+OK 2 200\r\n"
    assert talk(core, b"UIDL\r\n") == (
        b"+OK unique-id listing follows\r\n1 7.10\r\n2 7.11\r\n3 7.15\r\n.\r\n")
    assert talk(core, b"UIDL 3\r\n") == b"+OK 3 7.15\r\n"


def test_empty_maildrop() -> None:
    core = logged_in([])
    assert talk(core, b"STAT\r\n") == b"+OK 0 0\r\n"
    assert talk(core, b"LIST\r\n") == b"+OK 0 messages (0 octets)\r\n.\r\n"
    assert talk(core, b"RETR 1\r\n") == b"-ERR no such message 1\r\n"


@pytest.mark.parametrize("cmd", [b"LIST 4", b"LIST 0", b"RETR 9", b"DELE 4", b"TOP 4 0",
                                 b"UIDL 4"])
def test_no_such_message(cmd: bytes) -> None:
    assert talk(logged_in(), cmd + b"\r\n").startswith(b"-ERR no such message")


@pytest.mark.parametrize("cmd", [b"LIST x", b"LIST -1", b"RETR", b"RETR 1 2", b"DELE 1.0",
                                 b"LIST 12345678901", b"UIDL 1 2"])
def test_bad_message_number(cmd: bytes) -> None:
    assert talk(logged_in(), cmd + b"\r\n") == b"-ERR invalid message number\r\n"


def test_dele_marks_and_every_command_refuses() -> None:
    core = logged_in()
    assert talk(core, b"DELE 2\r\n") == b"+OK message 2 deleted\r\n"
    for cmd in (b"DELE 2", b"RETR 2", b"TOP 2 1", b"LIST 2", b"UIDL 2"):
        assert talk(core, cmd + b"\r\n") == b"-ERR message 2 already deleted\r\n", cmd
    assert talk(core, b"STAT\r\n") == b"+OK 2 125\r\n"
    assert talk(core, b"LIST\r\n") == b"+OK 2 messages (125 octets)\r\n1 120\r\n3 5\r\n.\r\n"
    assert talk(core, b"UIDL\r\n").endswith(b"1 7.10\r\n3 7.15\r\n.\r\n")
    assert talk(core, b"RSET\r\n") == b"+OK maildrop has 3 messages (325 octets)\r\n"
    assert talk(core, b"LIST 2\r\n") == b"+OK 2 200\r\n"
    assert core.deleted == frozenset()


def test_noop() -> None:
    assert talk(logged_in(), b"NOOP\r\n") == b"+OK\r\n"


def test_retr_and_top_requests() -> None:
    core = logged_in()
    _, ev = run(core, b"RETR 2\r\n")
    assert isinstance(ev, RetrieveRequest)
    assert (ev.number, ev.item.uid, ev.body_lines, ev.reply) == (2, 11, None, b"+OK 200 octets\r\n")
    with pytest.raises(Pop3UsageError):
        core.next_event()
    core.retrieve_done()
    _, ev = run(core, b"TOP 1 0\r\n")
    assert isinstance(ev, RetrieveRequest) and ev.body_lines == 0 and ev.item.uid == 10
    core.retrieve_failed(gone=True)
    assert talk(core, b"").startswith(b"-ERR [SYS/PERM]")
    _, ev = run(core, b"RETR 1\r\n")
    core.retrieve_failed(gone=False)
    assert talk(core, b"").startswith(b"-ERR [SYS/TEMP]")


@pytest.mark.parametrize("cmd", [b"TOP 1", b"TOP 1 x", b"TOP 1 -1", b"TOP 1 2 3"])
def test_top_bad_args(cmd: bytes) -> None:
    assert talk(logged_in(), cmd + b"\r\n").startswith(b"-ERR")


def test_result_without_request_is_usage_error() -> None:
    core = new()
    with pytest.raises(Pop3UsageError):
        core.auth_succeeded([])
    with pytest.raises(Pop3UsageError):
        core.update_done(0)


# -- QUIT / UPDATE ---------------------------------------------------------------------------
def test_quit_in_authorization() -> None:
    out, ev = run(new(), b"QUIT\r\n")
    assert out == b"+OK mailwing POP3 server signing off\r\n" and isinstance(ev, Close)


def test_quit_without_deletions_needs_no_update() -> None:
    out, ev = run(logged_in(), b"QUIT\r\n")
    assert out.startswith(b"+OK") and isinstance(ev, Close)


def test_quit_expunges_marked_uids() -> None:
    core = logged_in()
    out, ev = run(core, b"DELE 3\r\nDELE 1\r\nQUIT\r\nNOOP\r\n")
    assert out == b"+OK message 3 deleted\r\n+OK message 1 deleted\r\n"
    assert isinstance(ev, UpdateRequest) and ev.uids == (10, 15)
    assert core.state is State.UPDATE
    core.update_done(2)
    out, ev = run(core)
    assert out == b"+OK mailwing POP3 server signing off (2 messages deleted)\r\n"
    assert isinstance(ev, Close)
    assert isinstance(core.next_event(), Close)


def test_quit_update_failure() -> None:
    core = logged_in()
    _, ev = run(core, b"DELE 1\r\nQUIT\r\n")
    assert isinstance(ev, UpdateRequest)
    core.update_failed()
    out, ev = run(core)
    assert out.startswith(b"-ERR [SYS/TEMP]") and isinstance(ev, Close)


# -- state gating, syntax, limits --------------------------------------------------------------
@pytest.mark.parametrize("cmd", [b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"RSET", b"NOOP",
                                 b"UIDL", b"TOP 1 1"])
def test_transaction_commands_refused_before_login(cmd: bytes) -> None:
    name = cmd.split()[0]
    assert talk(new(), cmd + b"\r\n") == (
        b"-ERR " + name + b" not allowed in the AUTHORIZATION state\r\n")


@pytest.mark.parametrize("cmd", [b"USER x", b"PASS x", b"AUTH PLAIN", b"APOP a b"])
def test_authorization_commands_refused_after_login(cmd: bytes) -> None:
    assert b"not allowed in the TRANSACTION state" in talk(logged_in(), cmd + b"\r\n")


def test_unknown_and_empty() -> None:
    core = new()
    assert talk(core, b"XYZZY\r\n") == b"-ERR unknown command\r\n"
    assert talk(core, b"\r\n") == b"-ERR empty command\r\n"
    assert talk(core, b"CAPA now\r\n") == b"-ERR this command takes no arguments\r\n"


def test_case_insensitive_and_bare_lf() -> None:
    core = logged_in()
    assert talk(core, b"sTaT\n") == b"+OK 3 325\r\n"
    assert talk(core, b"list  2 \n") == b"+OK 2 200\r\n"


def test_pipelining_in_one_receive() -> None:
    core = logged_in()
    out = talk(core, b"STAT\r\nLIST 1\r\nDELE 1\r\nNOOP\r\nSTAT\r\n")
    assert out == b"+OK 3 325\r\n+OK 1 120\r\n+OK message 1 deleted\r\n+OK\r\n+OK 2 205\r\n"


def test_pipelined_login_waits_for_auth() -> None:
    core = new()
    out, ev = run(core, b"USER a@b.c\r\nPASS pw\r\nSTAT\r\n")
    assert out == b"+OK send PASS\r\n" and isinstance(ev, AuthRequest)
    core.auth_succeeded(DROP)
    assert talk(core, b"") == b"+OK maildrop has 3 messages (325 octets)\r\n+OK 3 325\r\n"


def test_split_lines_across_receives() -> None:
    core = logged_in()
    assert talk(core, b"ST") == b""
    assert talk(core, b"AT\r") == b""
    assert talk(core, b"\nLI") == b"+OK 3 325\r\n"
    assert talk(core, b"ST 3\r\n") == b"+OK 3 5\r\n"


def test_line_length_limit() -> None:
    core = new()
    ok = b"USER " + b"a" * 248  # 253 octets + CRLF = 255
    assert talk(core, ok + b"\r\n") == b"+OK send PASS\r\n"
    long = b"USER " + b"a" * 249  # 256 octets with CRLF
    assert talk(core, long + b"\r\n") == b"-ERR command line too long (limit 255 octets)\r\n"
    assert talk(core, b"X" * 100_000) == b""  # no newline yet: discarded, not buffered
    assert talk(core, b"Y" * 100_000 + b"\r\nCAPA\r\n").startswith(
        b"-ERR command line too long (limit 255 octets)\r\n+OK capability")


@pytest.mark.parametrize("line", [b"NO\x00OP", b"STAT\x00", b"\xff\xfe\x00\x01garbage",
                                  b"ST\x07AT", b"LIST \xc3\xa9", "RETR \u0661".encode()])
def test_bad_bytes(line: bytes) -> None:
    out = talk(logged_in(), line + b"\r\n")
    assert out.startswith(b"-ERR") and out.count(b"\r\n") == 1


def test_user_with_invalid_utf8() -> None:
    assert talk(new(), b"USER \xff\xfe\r\n").startswith(b"-ERR command contains")


def test_ten_errors_close_the_session() -> None:
    core = new()
    for i in range(9):
        assert talk(core, b"BOGUS\r\n") == b"-ERR unknown command\r\n", i
    out, ev = run(core, b"BOGUS\r\nCAPA\r\n")
    assert out == b"-ERR unknown command; too many errors, closing connection\r\n"
    assert isinstance(ev, Close) and core.closed


def test_errors_counted_across_kinds() -> None:
    core = new(max_errors=3)
    talk(core, b"\x00\r\n")
    talk(core, b"A" * 300 + b"\r\n")
    out, ev = run(core, b"STAT\r\n")
    assert out.endswith(b"too many errors, closing connection\r\n") and isinstance(ev, Close)


def test_failed_logins_count_as_errors() -> None:
    core = new(max_errors=2)
    for _ in range(2):
        talk(core, b"USER a@b.c\r\n")
        _, ev = run(core, b"PASS x\r\n")
        assert isinstance(ev, AuthRequest)
        core.auth_failed(AuthFailure.BAD_CREDENTIALS)
    out, ev = run(core)
    assert out.endswith(b"too many errors, closing connection\r\n") and isinstance(ev, Close)


def test_command_received_events_name_only() -> None:
    core = new()
    core.receive_data(b"USER a@b.c\r\nPASS hunter2\r\n")
    names = []
    while not isinstance(ev := core.next_event(), AuthRequest):
        if isinstance(ev, CommandReceived):
            names.append(ev.name)
    assert names == ["USER", "PASS"]


# -- fuzz: whatever the bytes, the core answers and never raises ---------------------------
fuzz_input = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\r\n", b"\n", b"USER a@b.c\r\n", b"PASS x\r\n", b"STAT\r\n",
                         b"LIST 1\r\n", b"DELE 2\r\n", b"RETR 1\r\n", b"TOP 3 1\r\n",
                         b"AUTH PLAIN\r\n", b"*\r\n", b"STLS\r\n", b"QUIT\r\n", b"RSET\r\n",
                         b"UIDL\r\n", b"CAPA\r\n", b"\x00" * 300, b"A" * 300]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fuzz_input)
def test_fuzz_core_never_raises(chunks: list[bytes]) -> None:
    core = Pop3Core("mail.test")
    replies = 0
    for chunk in [*chunks, b""]:
        core.receive_data(chunk)
        while True:
            ev = core.next_event()
            if isinstance(ev, SendReply):
                replies += 1
                assert ev.data.startswith((b"+OK", b"-ERR", b"+ \r\n")), ev.data
                assert ev.data.endswith(b"\r\n")
            elif isinstance(ev, AuthRequest):
                core.auth_succeeded(DROP)
            elif isinstance(ev, StartTlsRequest):
                core.tls_started()
            elif isinstance(ev, RetrieveRequest):
                core.retrieve_done()
            elif isinstance(ev, UpdateRequest):
                core.update_done(len(ev.uids))
            elif isinstance(ev, (NeedData, Close)):
                break
        if core.closed:
            assert isinstance(core.next_event(), Close)
            break
    assert replies >= 1
    assert core.errors <= core.max_errors
