"""Run a private Dovecot POP3 server for side-by-side benchmarks (never the system one).

Dovecot is started as ``dovecot -F -c FILE`` with a configuration written here, so nothing in
/etc/dovecot is read and no system port is used. The setup is Dovecot's documented
high-performance one, so the comparison is against Dovecot at its best, not its defaults:

* ``service pop3-login { service_count = 0 }``: long-lived login processes, each serving many
  connections, one per core;
* ``service pop3 { service_count = 0 }``: mail processes are reused instead of forked per
  session (a POP3 process still serves one client at a time);
* ``auth_cache_size``: passdb lookups are cached. Note that Dovecot caches the *hash* and still
  verifies every login against it (mailwing caches the successful verification itself), so
  ``auth_cache_verify_password_with_worker`` spreads those checks over auth-worker processes.

Passwords are the same Argon2id PHC strings mailwing stores, given to the passwd-file passdb as
``{ARGON2ID}$argon2id$...`` (Dovecot verifies argon2-cffi's ``p=4`` strings through libsodium;
checked with ``doveadm pw -t``). Mail lives in Maildir, owned by the ``mail`` system user
because Dovecot refuses to access mail as root (``mail_uid`` must be >= ``first_valid_uid`` and
non-zero).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["DOVECOT", "Dovecot", "dovecot_available"]

DOVECOT = "/usr/sbin/dovecot"
MAIL_USER = "mail"  # exists on every Debian system (uid 8)


def dovecot_available() -> bool:
    """True when Dovecot is installed and we are root (it must start as root to drop privs)."""
    return os.path.exists(DOVECOT) and os.geteuid() == 0


def _maildir_vsize(data: bytes) -> int:
    """Size once every line ending is CRLF: what Dovecot's W= filename field records."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


class Dovecot:
    """A Dovecot instance in ``root`` listening for POP3 on ``127.0.0.1:port``."""

    def __init__(self, root: Path, port: int, clients: int) -> None:
        self.root = root
        self.port = port
        self.clients = clients
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = root / "dovecot.conf"
        self.passwd = root / "passwd"
        self.mail = root / "mail"
        self.log = root / "dovecot.log"
        self._counter = 0
        entry = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        for d in (root, self.mail):
            d.mkdir(parents=True, exist_ok=True)
        # Dovecot's auth and mail processes (not root) must be able to reach their files:
        # open up the folders from the system temp folder down to ``root``.
        tmp = Path(tempfile.gettempdir()).resolve()
        for d in (root.resolve(), *root.resolve().parents):
            if d == tmp or tmp not in d.parents:
                break
            os.chmod(d, os.stat(d).st_mode | 0o755)
        os.chown(self.mail, self.uid, self.gid)

    # -- content ----------------------------------------------------------------------------
    def set_users(self, users: dict[str, str]) -> None:
        """``users`` maps address -> Dovecot password field, e.g. ``{ARGON2ID}$argon2id$...``."""
        lines = [f"{addr}:{password}::::::" for addr, password in users.items()]
        self.passwd.write_text("\n".join(lines) + "\n")
        os.chown(self.passwd, 0, grp.getgrnam("dovecot").gr_gid)  # read by the auth process
        os.chmod(self.passwd, 0o640)

    def maildir(self, address: str) -> Path:
        local, _, domain = address.partition("@")
        return self.mail / domain / local

    def add_message(self, address: str, data: bytes) -> None:
        """Store ``data`` as a Maildir file (LF line endings, as Maildir expects)."""
        base = self.maildir(address)
        if not (base / "cur").exists():
            for sub in ("cur", "new", "tmp"):
                (base / sub).mkdir(parents=True, exist_ok=True)
            for d in (base.parent, base, base / "cur", base / "new", base / "tmp"):
                os.chown(d, self.uid, self.gid)
        lf = data.replace(b"\r\n", b"\n")
        self._counter += 1
        name = f"{1700000000 + self._counter}.M{self._counter}P1.bench,S={len(lf)}," \
               f"W={_maildir_vsize(lf)}:2,"
        path = base / "cur" / name
        path.write_bytes(lf)
        os.chown(path, self.uid, self.gid)

    # -- process ----------------------------------------------------------------------------
    def write_config(self) -> None:
        r = self.root
        procs = self.clients + 16
        self.config.write_text(f"""\
# Written by benchmarks/dovecot_harness.py; no system configuration is included.
base_dir = {r}/run
state_dir = {r}/state
log_path = {self.log}
info_log_path = /dev/null
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = {self.uid}
mail_gid = {self.gid}
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:{self.mail}/%d/%n
pop3_uidl_format = %08Xv%08Xu
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 0
# Spread Argon2id checks over auth-worker processes (one core each) instead of the single
# auth master process.
auth_cache_verify_password_with_worker = yes
default_process_limit = {procs}
default_client_limit = {max(1000, procs * 4)}
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID {self.passwd}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.mail}/%d/%n
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = {os.cpu_count() or 1}
}}
service pop3 {{
  service_count = 0
  process_limit = {procs}
  process_min_avail = {min(self.clients, 64)}
}}
service anvil {{
  client_limit = {procs * 4 + 100}
}}
""")

    def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited:\n{self.log_text()}")
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop the master and every child (they share its process group)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # any straggler child
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
