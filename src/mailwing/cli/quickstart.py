"""``mailwing quickstart`` (what ``make run`` calls): a working server in one command.

On the first run (a database without users) it creates the schema, the domain ``localhost``
with the user ``demo@localhost`` and a random password, stores that password in
``<data_dir>/demo-password.txt`` (mode 0600, never printed into logs), delivers a welcome
message and prints how to connect. Later runs upgrade the schema if needed and only serve:
an existing installation never gets a demo account added behind the operator's back.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from mailwing.app import open_store, run_async
from mailwing.cli.serve import run_server
from mailwing.config import Settings
from mailwing.services.delivery import deliver_local
from mailwing.services.passwords import hash_password

__all__ = ["DEMO_ADDRESS", "register"]

DEMO_ADDRESS = "demo@localhost"

WELCOME = (
    "From: mailwing <postmaster@localhost>\r\n"
    "To: demo@localhost\r\n"
    "Subject: Welcome to mailwing\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello!\r\n\r\n"
    "This message was delivered by 'mailwing quickstart'. Add real accounts with\r\n"
    "'mailwing user add you@example.org' and deliver mail with 'mailwing deliver'.\r\n"
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("quickstart", parents=[common],
                       help="set up a demo account on first run, then serve")
    p.set_defaults(func=_quickstart)


async def _prepare(settings: Settings, password_file: Path) -> tuple[int, int, bool]:
    store = await open_store(settings)
    try:
        before, after = await store.upgrade()
        if await store.list_users():
            return before, after, False
        password = secrets.token_urlsafe(12)
        await store.add_user(DEMO_ADDRESS, hash_password(password), create_domain=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when an old file was there
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        await deliver_local(store, DEMO_ADDRESS, WELCOME.encode(),
                            return_path="postmaster@localhost",
                            hostname=settings.server.hostname)
        return before, after, True
    finally:
        await store.close()


def _instructions(settings: Settings, password_file: Path, created: bool) -> str:
    host = settings.server.listen[0]
    host = f"[{host}]" if ":" in host else host
    pop3, pop3s = settings.pop3.port, settings.pop3s.port
    pw = str(password_file)
    lines = [
        "demo account created: demo@localhost" if created else
        "existing installation: no account was added",
        f"demo password file: {pw}" if password_file.exists() else "",
        "",
        "listeners (POP3 is implemented; SMTP and IMAP come later):",
        f"  pop3  {host}:{pop3} (STLS available)" if pop3 else "",
        f"  pop3s {host}:{pop3s} (implicit TLS, self-signed certificate)" if pop3s else "",
        "",
        "try it:",
        f"  curl -u \"demo@localhost:$(cat {pw})\" pop3://{host}:{pop3}/1" if pop3 else "",
        "  python3 -c 'import poplib; p = poplib.POP3(\"" + host.strip("[]") + f"\", {pop3}); "
        "p.user(\"demo@localhost\"); p.pass_(open(\"" + pw + "\").read().strip()); "
        "print(p.stat()); p.quit()'" if pop3 else "",
        "",
        "stop with Ctrl-C",
    ]
    return "\n".join(line for i, line in enumerate(lines)
                     if line or (i and lines[i - 1]))


def _quickstart(args: argparse.Namespace, settings: Settings) -> int:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    password_file = settings.server.data_dir / "demo-password.txt"
    before, after, created = run_async(lambda: _prepare(settings, password_file))
    if before != after:
        print(f"database schema upgraded from version {before} to {after}")
    print(_instructions(settings, password_file, created), flush=True)
    return run_server(settings)
