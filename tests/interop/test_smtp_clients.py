"""Real SMTP clients (smtplib, aiosmtplib, swaks) against a real ``mailwing serve``.

Every delivery is read back through the POP3 listener of the same server and compared byte for
byte with what the client sent, below the trace fields the server put in front (RFC 5321
section 4.4: ``Return-Path`` and ``Received``); so a test passes only if the message a user
would download is exactly the message that was submitted. Refusals are asserted with their
reply code and enhanced status code (RFC 3463, RFC 2034), through the exceptions of the stdlib
client that a real program would see.

What is covered, by RFC:

* RFC 5321 3.3 mail transactions on the MX listener (delivery to local users without AUTH,
  relay refused 554 5.7.1, unknown user 550 5.1.1), 4.5.2 dot transparency, 4.4 trace fields;
* RFC 3207 STARTTLS and RFC 8314 implicit TLS, with certificate verification *on* against the
  server's generated certificate (its SANs name 127.0.0.1);
* RFC 4954 AUTH PLAIN/LOGIN, and RFC 6409 submission rules (530 5.7.0 before AUTH, envelope
  sender and From: of the authenticated user or 553 5.7.1, remote recipients 550 5.7.1 while
  there is no outbound queue);
* RFC 1870 SIZE (552 5.3.4), RFC 5321 4.5.3.1.8 recipient limit (452 4.5.3), failed AUTH limit
  (421 4.7.0), RFC 2920 PIPELINING, RFC 3030 CHUNKING (BDAT), RFC 6531 SMTPUTF8 (UTF-8 local
  parts in the envelope, to and from).

The core deliveries run on both storage backends (``database_url``); refusals and the other
clients on SQLite only. swaks missing skips on a laptop and fails in CI.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.interop.messages import BIG, DOTS, PLAIN, UTF8
from tests.support import MailwingServer, require_binary

pytestmark = pytest.mark.interop

ALICE = "alice@example.com"
BOB = "bob@example.com"
JOERG = "jörg@example.com"  # a local user whose local part is UTF-8 (RFC 6531)
PASSWORDS = {ALICE: "alice secret 1", BOB: "bob secret 2", JOERG: "jörg secret 3"}
REMOTE = "carol@remote.example"
UTF8_REMOTE = "δοκιμή@remote.example"
MAX_SIZE = 24 * 1024 * 1024  # [limits] max_message_size: the 20 MB message fits, 25 MB not
MAX_RCPT = 2  # [limits] max_recipients
#: A message whose From: is the local user bob, as submission requires of bob.
FROM_BOB = PLAIN.replace(b"From: Bob <bob@example.org>", b"From: Bob <bob@example.com>")
TIMEOUT = 120
MX_HELO = "client.remote.example"  # what the tests' MTA-like clients say in EHLO
CLIENT_HELO = "laptop.example.com"  # and the mail user agents on submission/smtps

#: What these tests are about is transport, so the rest is switched off: SPF/DKIM/DMARC on
#: the MX (they need DNS and add Authentication-Results; tests/auth covers them with a
#: loopback DNS server) and the outbound queue (remote recipients of authenticated users are
#: then refused with 550 5.7.1, the behaviour asserted below). The resolver points at a closed
#: loopback port so that no lookup ever leaves the machine.
TRANSPORT_ONLY = """
[auth]
check_spf = false
check_dkim = false
check_dmarc = false

[outbound]
enabled = false
dns_resolver = "127.0.0.1:9"
"""

# -- environment --------------------------------------------------------------------------------


@dataclass
class SmtpEnv:
    """A started server with smtp, submission, smtps and pop3 listeners and three users."""

    server: MailwingServer

    def port(self, name: str) -> int:
        return self.server.ports[name]

    def tls_context(self) -> ssl.SSLContext:
        """Verification and host name check on: the certificate's SANs include 127.0.0.1."""
        return ssl.create_default_context(cafile=str(self.server.cert_path))

    def mx(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=TIMEOUT)
        client.ehlo(MX_HELO)
        return client

    def submission(self, user: str | None = ALICE) -> smtplib.SMTP:
        """Submission after STARTTLS, logged in as ``user`` (None: not logged in)."""
        client = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=TIMEOUT)
        client.ehlo(CLIENT_HELO)
        client.starttls(context=self.tls_context())
        client.ehlo(CLIENT_HELO)
        if user is not None:
            client.login(user, PASSWORDS[user])
        return client

    def smtps(self) -> smtplib.SMTP_SSL:
        client = smtplib.SMTP_SSL("127.0.0.1", self.port("smtps"), timeout=TIMEOUT,
                                  context=self.tls_context())
        client.ehlo(CLIENT_HELO)
        return client

    def pop_all(self, address: str) -> list[bytes]:
        """Every message in ``address``'s maildrop in wire form (RETR, dot-unstuffed, CRLF
        endings), deleted afterwards so that the next call sees only newer mail."""
        client = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=TIMEOUT)
        try:
            client.user(address)
            client.pass_(PASSWORDS[address])
            count, _ = client.stat()
            out = []
            for n in range(1, count + 1):
                _, lines, _ = client.retr(n)
                out.append(b"".join(line + b"\r\n" for line in lines))
                client.dele(n)
        finally:
            client.quit()
        return out


def start_env(factory: type[MailwingServer], root: Path, database_url: str) -> SmtpEnv:
    extra = (f"[limits]\nmax_message_size = {MAX_SIZE}\nmax_recipients = {MAX_RCPT}\n"
             f"{TRANSPORT_ONLY}")
    server = factory(root=root, database_url=database_url,
                     enable=("smtp", "submission", "smtps", "pop3"), extra_config=extra)
    server.start()
    for address, password in PASSWORDS.items():
        server.add_user(address, password)
    return SmtpEnv(server)


@pytest.fixture
def env(server_factory: type[MailwingServer], tmp_path: Path) -> SmtpEnv:
    return start_env(server_factory, tmp_path / "srv", f"sqlite:///{tmp_path / 'mw.db'}")


@pytest.fixture
def env_any(server_factory: type[MailwingServer], tmp_path: Path, database_url: str) -> SmtpEnv:
    return start_env(server_factory, tmp_path / "srv", database_url)


# -- comparing what came back -------------------------------------------------------------------

_FIELD = re.compile(rb"[!-9;-~]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")
#: Trace fields a final delivery may put in front (Delivered-To is what the LDA path adds).
_ADDED = {b"return-path", b"received", b"delivered-to"}


def _first_difference(a: bytes, b: bytes) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"lengths {len(a)}/{len(b)}, first difference at {n}: {a[n:n + 60]!r} vs {b[n:n + 60]!r}"


def added_fields(got: bytes, sent: bytes, *, return_path: str) -> dict[bytes, list[bytes]]:
    """Assert ``got`` = the server's trace fields + exactly ``sent``; return those fields
    (name, lower-case -> unfolded values)."""
    assert got.endswith(sent), "stored message differs from the sent one:\n" + _first_difference(
        got[-len(sent):] if len(got) >= len(sent) else got, sent)
    prefix = got[: len(got) - len(sent)]
    fields: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(prefix):
        m = _FIELD.match(prefix, pos)
        assert m, f"the bytes added in front are not header fields: {prefix[pos:pos + 200]!r}"
        name, _, value = m.group(0).partition(b":")
        fields.append((name.lower(), re.sub(rb"\r\n[ \t]", b" ", value).strip()))
        pos = m.end()
    names = [n for n, _ in fields]
    assert names and names[0] == b"return-path", f"Return-Path must come first: {names}"
    assert b"received" in names, f"no Received field added: {names}"
    assert set(names) <= _ADDED, f"unexpected fields added: {names}"
    out: dict[bytes, list[bytes]] = {}
    for n, v in fields:
        out.setdefault(n, []).append(v)
    assert out[b"return-path"] == [f"<{return_path}>".encode()]
    return out


def check_received(fields: dict[bytes, list[bytes]], protocol: str, helo: str | None = None
                   ) -> None:
    """RFC 5321 4.4: ``from`` (the EHLO name, when the test knows it) and ``by`` clauses and a
    date after ';'; and a ``with`` clause naming the protocol as registered by RFC 3848 and
    RFC 6531 3.7.3 (optional in the grammar, but what shows TLS and AUTH were used)."""
    stamp = fields[b"received"][0].decode()
    name = re.escape(helo) if helo else r"\S+"
    assert re.match(rf"from {name} ", stamp), stamp
    assert " by mail.test" in stamp, stamp
    assert re.search(r";\s*\S.*\d{4} \d\d:\d\d:\d\d", stamp), stamp
    with_clause = re.search(r"\bwith (\S+)", stamp)
    assert with_clause and with_clause.group(1) == protocol, stamp


def message(sender: str, to: str, subject: str, body: str = "Hello.\r\n") -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@mailwing.test>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content(body)
    return msg


def wire(msg: EmailMessage) -> bytes:
    """The bytes smtplib and aiosmtplib send for ``msg`` (before dot-stuffing)."""
    data = msg.as_bytes(policy=email.policy.SMTPUTF8)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


# -- smtplib: the core, on both backends --------------------------------------------------------


def test_mx_extensions_and_delivery_to_local_users(env_any: SmtpEnv) -> None:
    """MX: no AUTH needed for local recipients; both get the same bytes (dot lines, 8-bit)."""
    with env_any.mx() as client:
        for ext in ("pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking",
                    "starttls"):
            assert client.has_extn(ext), f"EHLO lacks {ext}: {client.esmtp_features}"
        assert client.esmtp_features["size"] == str(MAX_SIZE)
        for data in (DOTS, UTF8):
            refused = client.sendmail(REMOTE, [ALICE, BOB], data, mail_options=["BODY=8BITMIME"])
            assert refused == {}
    for user in (ALICE, BOB):
        got = env_any.pop_all(user)
        assert len(got) == 2
        for data, stored in zip((DOTS, UTF8), got, strict=True):
            check_received(added_fields(stored, data, return_path=REMOTE), "ESMTP", MX_HELO)


def test_submission_starttls_login_send_message(env_any: SmtpEnv) -> None:
    with smtplib.SMTP("127.0.0.1", env_any.port("submission"), timeout=TIMEOUT) as client:
        client.ehlo(CLIENT_HELO)
        assert client.has_extn("starttls")
        client.starttls(context=env_any.tls_context())
        client.ehlo(CLIENT_HELO)
        assert not client.has_extn("starttls"), "STARTTLS offered again inside TLS"
        assert {"PLAIN", "LOGIN"} <= set(client.esmtp_features.get("auth", "").split())
        client.login(ALICE, PASSWORDS[ALICE])
        msg = message(f"Alice <{ALICE}>", f"Bob <{BOB}>", "submitted via starttls",
                      "Grüße,\r\n.\r\n..a dot line\r\n")
        assert client.send_message(msg) == {}
    (got,) = env_any.pop_all(BOB)
    check_received(added_fields(got, wire(msg), return_path=ALICE), "ESMTPSA", CLIENT_HELO)


def test_smtputf8_envelope_from_and_to_utf8_local_parts(env_any: SmtpEnv) -> None:
    """RFC 6531: a UTF-8 local part in MAIL FROM (a remote sender) to a local ASCII user, and
    in RCPT TO (the local user jörg), with the SMTPUTF8 parameter, via the MX listener."""
    msg = message(f"Δοκιμή <{UTF8_REMOTE}>", f"Jörg <{JOERG}>, <{ALICE}>", "utf8 envelope",
                  "Καλημέρα, Jörg!\r\n")
    with env_any.mx() as client:
        assert client.send_message(msg, UTF8_REMOTE, [ALICE, JOERG]) == {}
    for user in (ALICE, JOERG):
        (got,) = env_any.pop_all(user)
        fields = added_fields(got, wire(msg), return_path=UTF8_REMOTE)
        check_received(fields, "UTF8SMTP", MX_HELO)


# -- smtplib: SQLite only -----------------------------------------------------------------------


def test_smtps_implicit_tls_login_and_send(env: SmtpEnv) -> None:
    with env.smtps() as client:
        assert not client.has_extn("starttls")
        assert {"PLAIN", "LOGIN"} <= set(client.esmtp_features.get("auth", "").split())
        client.login(BOB, PASSWORDS[BOB])
        assert client.sendmail(BOB, [ALICE], FROM_BOB) == {}
    (got,) = env.pop_all(ALICE)
    check_received(added_fields(got, FROM_BOB, return_path=BOB), "ESMTPSA", CLIENT_HELO)


@pytest.mark.slow
def test_twenty_megabyte_message_over_submission(env: SmtpEnv) -> None:
    head, _, body = BIG.replace(b"Bob <bob@example.org>", b"Alice <alice@example.com>"
                                ).partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")
    while len(body) < 20 * 1024 * 1024:  # the same base64 lines again, whole lines only
        body += b"\r\n".join(lines[:1000]) + b"\r\n"
    data = head + b"\r\n\r\n" + body
    with env.submission(ALICE) as client:
        assert client.sendmail(ALICE, [BOB], data) == {}
    (got,) = env.pop_all(BOB)
    added_fields(got, data, return_path=ALICE)


def test_bdat_chunks_are_stored_unstuffed(env: SmtpEnv) -> None:
    """RFC 3030: BDAT data is counted octets, no dot-stuffing; a chunk border may split
    CRLF.CRLF without ending the message."""
    data = DOTS
    cut = data.index(b"\r\n.\r\n") + 3
    with env.mx() as client:
        assert client.mail(REMOTE, ["BODY=8BITMIME"])[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        client.send(f"BDAT {cut}\r\n".encode() + data[:cut])
        assert client.getreply()[0] == 250
        client.send(f"BDAT {len(data) - cut} LAST\r\n".encode() + data[cut:])
        code, text = client.getreply()
        assert code == 250, text
    (got,) = env.pop_all(ALICE)
    added_fields(got, data, return_path=REMOTE)


def test_mx_refuses_relay_and_unknown_users(env: SmtpEnv) -> None:
    with env.mx() as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as relay:
            client.sendmail(REMOTE, ["dave@elsewhere.example"], PLAIN)
        code, text = relay.value.recipients["dave@elsewhere.example"]
        assert (code, text[:5]) == (554, b"5.7.1")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
            client.sendmail(REMOTE, ["nobody@example.com"], PLAIN)
        code, text = unknown.value.recipients["nobody@example.com"]
        assert (code, text[:5]) == (550, b"5.1.1")
    assert env.pop_all(ALICE) == []


def test_submission_requires_auth_before_mail(env: SmtpEnv) -> None:
    with env.submission(user=None) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail(ALICE, [BOB], PLAIN)
        assert (exc.value.smtp_code, exc.value.smtp_error[:5]) == (530, b"5.7.0")


def test_submission_to_remote_is_refused_for_now(env: SmtpEnv) -> None:
    with env.submission(ALICE) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            client.sendmail(ALICE, ["dave@elsewhere.example"], PLAIN)
        code, text = exc.value.recipients["dave@elsewhere.example"]
        assert (code, text[:5]) == (550, b"5.7.1")


def test_submission_sender_must_be_the_authenticated_user(env: SmtpEnv) -> None:
    """RFC 6409 6.1: the envelope sender (at MAIL) and From: (after DATA) are checked."""
    own = message(ALICE, BOB, "forged header")
    own.replace_header("From", f"Bob <{BOB}>")
    with env.submission(ALICE) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as envelope:
            client.sendmail(BOB, [ALICE], wire(message(BOB, ALICE, "forged envelope")))
        assert (envelope.value.smtp_code, envelope.value.smtp_error[:5]) == (553, b"5.7.1")
        with pytest.raises(smtplib.SMTPDataError) as header:
            client.sendmail(ALICE, [BOB], wire(own))
        assert (header.value.smtp_code, header.value.smtp_error[:5]) == (553, b"5.7.1")
    assert env.pop_all(BOB) == []
    assert env.pop_all(ALICE) == []


def test_size_declared_and_actual(env: SmtpEnv) -> None:
    """RFC 1870: a SIZE over the limit (smtplib declares it by itself) is refused at MAIL; an
    undeclared oversized message is read to its end and refused after DATA; the session goes
    on."""
    too_big = PLAIN + (b"y" * 998 + b"\r\n") * (MAX_SIZE // 1000 + 10)
    with env.mx() as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.sendmail(REMOTE, [ALICE], too_big)
        assert (declared.value.smtp_code, declared.value.smtp_error[:5]) == (552, b"5.3.4")
        assert client.mail(REMOTE)[0] == 250  # no SIZE parameter this time
        assert client.rcpt(ALICE)[0] == 250
        code, text = client.data(too_big)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.sendmail(REMOTE, [ALICE], PLAIN) == {}  # still usable
    (got,) = env.pop_all(ALICE)
    added_fields(got, PLAIN, return_path=REMOTE)


def test_too_many_recipients(env: SmtpEnv) -> None:
    """RFC 5321 4.5.3.1.10: 452 4.5.3 for recipients beyond the limit; the accepted ones get
    the message."""
    with env.mx() as client:
        refused = client.sendmail(REMOTE, [ALICE, BOB, JOERG], PLAIN,
                                  mail_options=["SMTPUTF8"])
    assert set(refused) == {JOERG}
    code, text = refused[JOERG]
    assert (code, text[:5]) == (452, b"4.5.3")
    assert len(env.pop_all(ALICE)) == 1
    assert len(env.pop_all(BOB)) == 1
    assert env.pop_all(JOERG) == []


def test_wrong_password_is_refused_535(env: SmtpEnv) -> None:
    with env.submission(user=None) as client, \
            pytest.raises(smtplib.SMTPAuthenticationError) as exc:
        client.login(ALICE, "wrong password")
    assert (exc.value.smtp_code, exc.value.smtp_error[:5]) == (535, b"5.7.8")
    with env.submission(ALICE) as client:  # and the right one still works
        assert client.noop()[0] == 250


def test_third_failed_auth_closes_with_421(env: SmtpEnv) -> None:
    """[limits] max_auth_failures = 3 (the default). AUTH is sent by hand: smtplib's login()
    would try PLAIN and then LOGIN, two failures per call."""
    creds = base64.b64encode(f"\0{ALICE}\0wrong password".encode()).decode()
    codes = []
    with env.submission(user=None) as client:
        for _ in range(4):
            try:
                code, text = client.docmd("AUTH", f"PLAIN {creds}")
            except smtplib.SMTPServerDisconnected:
                break
            codes.append((code, text[:5]))
            if code == 421:
                break
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert codes[:2] == [(535, b"5.7.8")] * 2, codes
    assert codes[-1] == (421, b"4.7.0"), codes
    assert len(codes) in (3, 4), codes  # the third failure answered 421, or 535 then 421


# -- aiosmtplib ---------------------------------------------------------------------------------


async def test_aiosmtplib_starttls_login_send_message(env_any: SmtpEnv) -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=env_any.port("submission"),
                             start_tls=False, timeout=TIMEOUT)
    await client.connect()
    await client.starttls(tls_context=env_any.tls_context())
    await client.login(BOB, PASSWORDS[BOB])
    msg = message(f"Bob <{BOB}>", f"Alice <{ALICE}>", "from aiosmtplib", "dot:\r\n.\r\nend\r\n")
    errors, _ = await client.send_message(msg)
    assert errors == {}
    await client.quit()
    (got,) = env_any.pop_all(ALICE)
    check_received(added_fields(got, wire(msg), return_path=BOB), "ESMTPSA")


async def test_aiosmtplib_concurrent_clients(env: SmtpEnv) -> None:
    """Ten aiosmtplib clients at once over opportunistic STARTTLS on the MX listener (its
    default when STARTTLS is offered), three messages each on one connection."""
    aiosmtplib = pytest.importorskip("aiosmtplib")

    async def one(k: int) -> list[EmailMessage]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=env.port("smtp"), timeout=TIMEOUT,
                                 tls_context=env.tls_context())
        await client.connect()
        assert client.get_transport_info("sslcontext") is not None
        sent = []
        for n in range(3):
            msg = message(REMOTE, ALICE, f"concurrent {k} {n}")
            errors, _ = await client.send_message(msg)
            assert errors == {}
            sent.append(msg)
        await client.quit()
        return sent

    sent = [m for group in await asyncio.gather(*(one(k) for k in range(10))) for m in group]
    got = env.pop_all(ALICE)
    assert len(got) == len(sent) == 30
    by_subject = {m["Subject"]: wire(m) for m in sent}
    for stored in got:
        subject = re.search(rb"^Subject: (.*)\r\n", stored, re.MULTILINE)
        assert subject
        fields = added_fields(stored, by_subject.pop(subject.group(1).decode()),
                              return_path=REMOTE)
        check_received(fields, "ESMTPS")
    assert by_subject == {}


async def _replies(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """``count`` replies (multi-line ones joined), each as its last line."""
    out = []
    while len(out) < count:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
        if line[3:4] != b"-":
            out.append(line)
    return out


async def test_pipelined_transaction_inside_starttls(env: SmtpEnv) -> None:
    """RFC 2920: MAIL, three RCPTs and DATA in one write, inside STARTTLS on the MX listener;
    the replies come back in order and a refused RCPT does not spoil the others. (aiosmtplib
    cannot pipeline: it awaits each reply before the next command; swaks --pipeline below is
    the external client that does.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port("smtp"))
    try:
        await _replies(reader, 1)
        writer.write(b"EHLO pipeliner.remote.example\r\nSTARTTLS\r\n")
        assert [r[:3] for r in await _replies(reader, 2)] == [b"250", b"220"]
        await writer.start_tls(env.tls_context(), server_hostname="127.0.0.1")
        writer.write(
            f"EHLO pipeliner.remote.example\r\nMAIL FROM:<{REMOTE}> SIZE={len(PLAIN)}\r\n"
            f"RCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<{BOB}>\r\n"
            f"DATA\r\n".encode())
        codes = [r[:3] for r in await _replies(reader, 6)]
        assert codes == [b"250", b"250", b"250", b"550", b"250", b"354"]
        writer.write(PLAIN + b".\r\nQUIT\r\n")
        assert [r[:3] for r in await _replies(reader, 2)] == [b"250", b"221"]
    finally:
        writer.close()
    for user in (ALICE, BOB):
        (got,) = env.pop_all(user)
        check_received(added_fields(got, PLAIN, return_path=REMOTE), "ESMTPS",
                       "pipeliner.remote.example")


# -- swaks --------------------------------------------------------------------------------------


#: What swaks sends for :func:`data_file` (dot lines included).
SWAKS_DATA = DOTS.replace(b"bob@example.org", b"bob@example.com")


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[Path]:
    """``--data @file``: swaks dot-stuffs it and ends it with CRLF.CRLF, adding a CRLF of its
    own; so the file lacks the final CRLF and the server must store :data:`SWAKS_DATA`."""
    path = tmp_path / "swaks-data.eml"
    path.write_bytes(SWAKS_DATA[:-2])
    yield path


def swaks(env: SmtpEnv, port: str, *args: str) -> str:
    exe = require_binary("swaks")
    cmd = [exe, "--server", "127.0.0.1", "--port", str(env.port(port)),
           "--helo", "swaks.example.com", "--timeout", "60", *args]
    result = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    out = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"swaks exited {result.returncode}:\n{out}"
    return out


def replies(output: str) -> list[str]:
    """Server reply lines in swaks' transcript (``<-`` plain, ``<~`` inside TLS)."""
    return [ln[4:] for ln in output.splitlines() if ln.startswith(("<-  ", "<~  "))]


def test_swaks_mx_pipelined(env: SmtpEnv, data_file: Path) -> None:
    out = swaks(env, "smtp", "--pipeline", "--from", REMOTE, "--to", f"{ALICE},{BOB}",
                "--data", f"@{data_file}")
    assert "PIPELINING" in out
    assert sum(r.startswith("250 ") for r in replies(out)) >= 4, out  # MAIL, 2 RCPT, dot
    for user in (ALICE, BOB):
        (got,) = env.pop_all(user)
        added_fields(got, SWAKS_DATA, return_path=REMOTE)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_submission_starttls_auth(env: SmtpEnv, data_file: Path, mechanism: str) -> None:
    out = swaks(env, "submission", "--tls", "--tls-verify", "--tls-ca-path",
                str(env.server.cert_path), "--auth", mechanism, "--auth-user", BOB,
                "--auth-password", PASSWORDS[BOB], "--from", BOB, "--to", ALICE,
                "--data", f"@{data_file}")
    lines = replies(out)
    assert any(r.startswith("235 ") for r in lines), out
    assert lines[-2].startswith("250 "), out  # the answer to the final dot, before QUIT's 221
    (got,) = env.pop_all(ALICE)
    check_received(added_fields(got, SWAKS_DATA, return_path=BOB), "ESMTPSA",
                   "swaks.example.com")


def test_swaks_smtps_tls_on_connect(env: SmtpEnv, data_file: Path) -> None:
    out = swaks(env, "smtps", "--tls-on-connect", "--tls-verify", "--tls-ca-path",
                str(env.server.cert_path), "--auth", "PLAIN", "--auth-user", BOB,
                "--auth-password", PASSWORDS[BOB], "--from", BOB, "--to", ALICE,
                "--data", f"@{data_file}")
    assert "<~  250 " in out, out
    (got,) = env.pop_all(ALICE)
    added_fields(got, SWAKS_DATA, return_path=BOB)


def test_plain_socket_cannot_skip_starttls_on_smtps(env: SmtpEnv) -> None:
    """Negative control for the TLS tests: the smtps port speaks TLS first, not SMTP."""
    with socket.create_connection(("127.0.0.1", env.port("smtps")), timeout=10) as sock:
        sock.settimeout(2)
        try:
            greeting = sock.recv(100)
        except TimeoutError:
            greeting = b""
    assert not greeting.startswith(b"220")
