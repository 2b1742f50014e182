"""Real POP3 clients (curl, getmail6, fetchmail) against a real ``mailwing serve``.

What each test proves is the outcome a user would see: the messages that land in the client's
output or Maildir, byte for byte (see :mod:`tests.interop.messages` for the only differences
allowed), and the state of the maildrop afterwards, read back with :mod:`poplib`. Plain POP3,
STLS (RFC 2595) and implicit TLS are all driven with certificate verification on.

A missing client skips the test on a laptop and fails it in CI (``MAILWING_REQUIRE_CLIENTS=1``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.conftest import Pop3Env, unprivileged_user
from tests.interop.messages import BIG, DOTS, PLAIN, UTF8, comparable, numbered, split_trace
from tests.support import require_binary

pytestmark = pytest.mark.interop

TIMEOUT = 120


def run(*cmd: str, env: dict[str, str] | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {result.returncode}:\n"
                             f"{result.stderr.decode(errors='replace')}")
    return result


def assert_wire_exact(got: bytes, delivered: bytes) -> None:
    """``got`` is the wire form: trace fields added by delivery, then exactly ``delivered``."""
    trace, rest = split_trace(got)
    assert [t.split(b":")[0] for t in trace] == [b"Return-Path", b"Delivered-To"]
    assert rest == delivered, f"{len(rest)} octets back for {len(delivered)} delivered"


# -- curl ---------------------------------------------------------------------------------------

def curl(env: Pop3Env, url: str, *extra: str, check: bool = True
         ) -> subprocess.CompletedProcess[bytes]:
    exe = require_binary("curl")
    return run(exe, "--silent", "--show-error", "--max-time", "60",
               "--user", f"{env.address}:{env.password}", *extra, url, check=check)


def test_curl_list_retr_uidl_dele(pop3_env_any: Pop3Env) -> None:
    """On both backends: LIST sizes match what RETR returns; UIDL has the
    ``<uidvalidity>.<uid>`` form; DELE at QUIT removes exactly that message."""
    env = pop3_env_any
    env.deliver(PLAIN)
    env.deliver(DOTS)
    base = f"pop3://127.0.0.1:{env.pop3_port}/"
    listing = curl(env, base).stdout.decode().split("\r\n")
    sizes = {int(n): int(s) for n, s in (ln.split() for ln in listing if ln)}
    assert sorted(sizes) == [1, 2]
    bodies = {n: curl(env, f"{base}{n}").stdout for n in sizes}
    assert_wire_exact(bodies[1], PLAIN)
    assert_wire_exact(bodies[2], DOTS)
    assert {n: len(b) for n, b in bodies.items()} == sizes

    uidl = curl(env, base, "--request", "UIDL").stdout.decode().split("\r\n")
    uids = [ln.split()[1] for ln in uidl if ln]
    assert len(uids) == 2 and len(set(uids)) == 2
    for uid in uids:
        validity, _, number = uid.partition(".")
        assert validity.isdigit() and number.isdigit()

    curl(env, f"{base}1", "--request", "DELE", "--head")  # --head: single-line answer
    assert env.stat() == (1, sizes[2])
    assert env.uidls() == [uids[1]]  # the survivor keeps its UIDL


def test_curl_wrong_password_is_refused(pop3_env: Pop3Env) -> None:
    exe = require_binary("curl")
    result = run(exe, "--silent", "--user", f"{pop3_env.address}:wrong",
                 f"pop3://127.0.0.1:{pop3_env.pop3_port}/", check=False)
    assert result.returncode == 67  # CURLE_LOGIN_DENIED


def test_curl_stls_with_ssl_reqd(pop3_env: Pop3Env) -> None:
    """``--ssl-reqd`` makes curl refuse to continue unless STLS succeeds, and the CA file
    makes it verify the server certificate for 127.0.0.1."""
    pop3_env.deliver(UTF8)
    url = f"pop3://127.0.0.1:{pop3_env.pop3_port}/1"
    result = curl(pop3_env, url, "--ssl-reqd", "--cacert", str(pop3_env.tls.ca), "--verbose")
    assert_wire_exact(result.stdout, UTF8)
    log = result.stderr.decode(errors="replace")
    assert "> STLS" in log
    assert "SSL connection using" in log


def test_curl_pop3s_implicit_tls(pop3_env: Pop3Env) -> None:
    pop3_env.deliver(DOTS)
    url = f"pop3s://127.0.0.1:{pop3_env.pop3s_port}/1"
    result = curl(pop3_env, url, "--cacert", str(pop3_env.tls.ca))
    assert_wire_exact(result.stdout, DOTS)


def test_curl_untrusted_certificate_is_rejected(pop3_env: Pop3Env) -> None:
    """The negative control for the TLS tests: without the CA, verification must fail."""
    url = f"pop3s://127.0.0.1:{pop3_env.pop3s_port}/"
    result = curl(pop3_env, url, "--cacert", "/dev/null", check=False)
    assert result.returncode in (60, 77)  # peer certificate / CA cert problem


@pytest.mark.slow
def test_curl_big_message_byte_exact(pop3_env: Pop3Env) -> None:
    pop3_env.deliver(BIG)
    for url, extra in ((f"pop3://127.0.0.1:{pop3_env.pop3_port}/1", ()),
                       (f"pop3s://127.0.0.1:{pop3_env.pop3s_port}/1",
                        ("--cacert", str(pop3_env.tls.ca)))):
        assert_wire_exact(curl(pop3_env, url, *extra).stdout, BIG)


# -- getmail6 -----------------------------------------------------------------------------------

def getmail(env: Pop3Env, work: Path, *, ssl: bool, delete: bool) -> list[bytes]:
    """Run getmail once into the Maildir under ``work``; return the files it added."""
    exe = require_binary("getmail")
    maildir = work / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    user = unprivileged_user()
    if user is not None:  # getmail will not deliver as root: its Maildir writer runs as nobody
        import pwd

        entry = pwd.getpwnam(user)
        for d in (maildir, *(maildir / s for s in ("cur", "new", "tmp"))):
            os.chown(d, entry.pw_uid, entry.pw_gid)
    state = work / "getmail-state"
    state.mkdir(exist_ok=True)
    if ssl:
        retriever = (f"type = SimplePOP3SSLRetriever\nport = {env.pop3s_port}\n"
                     f"ca_certs = {env.tls.ca}\n")
    else:
        retriever = f"type = SimplePOP3Retriever\nport = {env.pop3_port}\n"
    rc = state / "getmailrc"
    rc.write_text("\n".join([
        "[retriever]", "server = 127.0.0.1", f"username = {env.address}",
        f"password = {env.password}", retriever,
        "[destination]", "type = Maildir", f"path = {maildir}/",
        f"user = {user}" if user else "",
        "[options]", "verbose = 0", "read_all = true",
        f"delete = {'true' if delete else 'false'}",
        # No Delivered-To/Received of getmail's own: what is compared is the server's output.
        "delivered_to = false", "received = false", "message_log_syslog = false", "",
    ]))
    before = set((maildir / "new").iterdir())
    run(exe, "--getmaildir", str(state), "--rcfile", str(rc))
    return [p.read_bytes() for p in sorted(set((maildir / "new").iterdir()) - before)]


def test_getmail_pop3_delete_into_maildir(pop3_env: Pop3Env, shared_dir: Path) -> None:
    """getmail fetches everything (dot lines and 8-bit body intact), deletes it on the
    server, and a second run finds nothing."""
    messages = [PLAIN, DOTS, UTF8]
    for m in messages:
        pop3_env.deliver(m)
    fetched = getmail(pop3_env, shared_dir, ssl=False, delete=True)
    assert sorted(comparable(f) for f in fetched) == sorted(comparable(m) for m in messages)
    assert pop3_env.stat() == (0, 0)
    # The administrator's view agrees: no messages, no bytes left for the account.
    listing = pop3_env.server.cli("user", "list").stdout.decode().splitlines()
    row = next(ln.split() for ln in listing if ln.startswith(pop3_env.address))
    assert row[2:4] == ["0", "0"]
    assert getmail(pop3_env, shared_dir, ssl=False, delete=True) == []


def test_getmail_pop3_ssl_verified_keep(pop3_env: Pop3Env, shared_dir: Path) -> None:
    """SimplePOP3SSLRetriever with ca_certs (verification and host name check on); without
    ``delete`` the message stays on the server."""
    pop3_env.deliver(UTF8)
    fetched = getmail(pop3_env, shared_dir, ssl=True, delete=False)
    assert [comparable(f) for f in fetched] == [comparable(UTF8)]
    assert pop3_env.stat()[0] == 1


@pytest.mark.slow
def test_getmail_big_message(pop3_env: Pop3Env, shared_dir: Path) -> None:
    pop3_env.deliver(BIG)
    fetched = getmail(pop3_env, shared_dir, ssl=False, delete=True)
    assert len(fetched) == 1
    assert comparable(fetched[0]) == comparable(BIG)
    assert pop3_env.stat() == (0, 0)


# -- fetchmail ----------------------------------------------------------------------------------

class Fetchmail:
    """fetchmail in keep + UIDL mode with an MDA that writes one file per message, so no
    local MTA is needed; its rc file, id file and home are private to the test."""

    def __init__(self, env: Pop3Env, work: Path, *, ssl: bool) -> None:
        self.exe = require_binary("fetchmail")
        self.env = env
        self.work = work
        self.out = work / "delivered"
        self.out.mkdir(parents=True)
        self.rc = work / "fetchmailrc"
        if ssl:
            # fetchmail matches the name it connects to against DNS names only, never IP
            # SANs, so it is told which certificate name to expect.
            port, tls = env.pop3s_port, (f"ssl sslcertck sslcertfile {env.tls.ca} "
                                         "sslcommonname mail.test")
        else:
            port, tls = env.pop3_port, "sslproto ''"  # plain POP3: do not try STLS
        mda = work / "mda.sh"  # a script: quoting a pipeline inside the rc file is fragile
        mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp -p {self.out} msg.XXXXXX)"\n')
        mda.chmod(0o755)
        self.rc.write_text(
            "set no bouncemail\n"
            f"poll 127.0.0.1 with proto POP3 service {port} uidl\n"
            f'  user "{env.address}" there with password "{env.password}"\n'
            f"  keep no rewrite {tls}\n"
            f'  mda "{mda}"\n'
        )
        self.rc.chmod(0o600)  # fetchmail refuses a password file others can read

    def run(self) -> tuple[int, list[bytes]]:
        """One poll; returns fetchmail's exit code and the messages it delivered this time."""
        before = set(self.out.iterdir())
        # --pidfile: as root fetchmail's lock file is /var/run/fetchmail.pid whatever
        # FETCHMAILHOME says, so two of these tests on two xdist workers refused each other
        # ("another foreground fetchmail is running").
        result = run(self.exe, "--fetchmailrc", str(self.rc), "--idfile",
                     str(self.work / "fetchids"), "--pidfile", str(self.work / "fetchmail.pid"),
                     "--nodetach", "--silent",
                     env={"FETCHMAILHOME": str(self.work), "HOME": str(self.work)},
                     check=False)
        assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
        new = sorted(set(self.out.iterdir()) - before)
        return result.returncode, [p.read_bytes() for p in new]


def test_fetchmail_keep_uidl_fetches_only_new(pop3_env_any: Pop3Env, tmp_path: Path) -> None:
    """On both backends: UIDs are stable across sessions, so fetchmail's UIDL bookkeeping sees
    nothing new on the second poll and only the added message on the third."""
    env = pop3_env_any
    first = [numbered(1), DOTS, UTF8]
    for m in first:
        env.deliver(m)
    fm = Fetchmail(env, tmp_path / "fetchmail", ssl=False)

    code, got = fm.run()
    assert code == 0
    assert sorted(comparable(g) for g in got) == sorted(comparable(m) for m in first)

    code, got = fm.run()
    assert (code, got) == (1, [])  # 1: no new mail

    env.deliver(numbered(4))
    code, got = fm.run()
    assert code == 0
    assert [comparable(g) for g in got] == [comparable(numbered(4))]
    assert env.stat()[0] == 4  # keep: nothing was deleted


def test_fetchmail_ssl_verified(pop3_env: Pop3Env, tmp_path: Path) -> None:
    pop3_env.deliver(DOTS)
    fm = Fetchmail(pop3_env, tmp_path / "fetchmail", ssl=True)
    code, got = fm.run()
    assert code == 0
    assert [comparable(g) for g in got] == [comparable(DOTS)]
    assert fm.run() == (1, [])
