"""Run a private Dovecot IMAP server for side-by-side benchmarks (never the system one).

Reuses the POP3 harness (:mod:`dovecot_harness`) for everything that is not protocol-specific:
the folder permissions, the passwd-file, the Maildir layout with ``S=``/``W=`` sizes, process
start-up as ``dovecot -F -c FILE`` and the process-group clean-up. Only the configuration and
the readiness probe differ: IMAP greets with ``* OK`` (RFC 3501 section 7.1.1) and the services
are ``imap-login``/``imap``.

The configuration is Dovecot's documented high-performance setup, so mailwing is compared with
Dovecot at its best:

* ``service imap-login { service_count = 0 }``: long-lived login processes (one per core),
  each proxying many connections;
* ``service imap { service_count = 0 }``: mail processes are reused after a session ends
  instead of being forked per login (an IMAP process still serves one client at a time unless
  ``client_limit`` is raised, which Dovecot advises against);
* ``auth_cache_size``: passdb lookups are cached (Dovecot caches the *hash* and still verifies
  each login, see benchmarks/README.md), spread over auth-worker processes;
* Maildir with Dovecot's own index and cache files (built during the warm-up), ``fsync``
  left at Dovecot's default ``optimized``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dovecot_harness import DOVECOT, Dovecot, dovecot_available

__all__ = ["DOVECOT", "DovecotImap", "dovecot_available", "wait_for_greeting"]


class DovecotImap(Dovecot):
    """A Dovecot instance in ``root`` listening for IMAP (no TLS) on ``127.0.0.1:port``."""

    def __init__(self, root: Path, port: int, clients: int, scheme: str = "ARGON2ID",
                 *, layout: str = "", namespace_extra: str = "", extra: str = "") -> None:
        """``layout`` (e.g. ``":LAYOUT=fs"``) is appended to the Maildir location,
        ``namespace_extra`` goes inside the inbox namespace block (mailbox definitions) and
        ``extra`` at the end of the file: the differential tests (tests/differential) use
        them to mirror mailwing's default mailboxes."""
        super().__init__(root, port, clients)
        self.scheme = scheme
        self.layout = layout
        self.namespace_extra = namespace_extra
        self.extra = extra

    def write_config(self) -> None:
        r = self.root
        procs = self.clients + 16
        cores = os.cpu_count() or 1
        self.config.write_text(f"""\
# Written by benchmarks/imap_dovecot.py; no system configuration is included.
base_dir = {r}/run
state_dir = {r}/state
log_path = {self.log}
info_log_path = /dev/null
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = {self.uid}
mail_gid = {self.gid}
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:{self.mail}/%d/%n{self.layout}
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 0
auth_cache_verify_password_with_worker = yes
default_process_limit = {procs}
default_client_limit = {max(1000, procs * 4)}
mail_max_userip_connections = {procs * 4}
passdb {{
  driver = passwd-file
  args = scheme={self.scheme} {self.passwd}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.mail}/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
{self.namespace_extra}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = {cores}
}}
service imap {{
  service_count = 0
  process_limit = {procs}
  process_min_avail = {min(self.clients, 64)}
}}
service anvil {{
  client_limit = {procs * 4 + 100}
}}
{self.extra}
""")

    def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_greeting(self.proc, self.port, timeout, self.log_text)


def wait_for_greeting(proc: subprocess.Popen[bytes], port: int, timeout: float,
                      log_text: Callable[[], str]) -> None:
    """Wait until ``127.0.0.1:port`` greets with ``* OK`` (raise with the log if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_text()}")
        with contextlib.suppress(OSError), \
                socket.create_connection(("127.0.0.1", port), 0.2) as s:
            if s.recv(100).startswith(b"* OK"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not greet on port {port}:\n{log_text()}")
