"""``mailwing quickstart`` (what ``make run`` calls): a working server in one command.

On the first run (a database without users) it creates the schema, the domain ``localhost``
with the user ``demo@localhost`` and a random password, stores that password in
``<data_dir>/demo-password.txt`` (mode 0600, never written into logs), delivers a welcome
message and prints, on the terminal only, the password and how to connect. Later runs
upgrade the schema if needed and only serve: an existing installation never gets a demo
account added behind the operator's back.

On a database without admin tokens it also makes one (``first-admin``), kept in
``<data_dir>/admin-token.txt`` (mode 0600) and printed with the web console's URL.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from mailwing.cli.serve import run_server
from mailwing.config import Settings
from mailwing.runtime import open_store, run_async
from mailwing.services.admin_tokens import TokenService

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


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when an old file was there
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")


async def _first_token(store: Any, token_file: Path) -> str | None:
    tokens = TokenService(store)
    if await tokens.list():
        return None
    secret, _ = await tokens.create("first-admin")
    _write_secret(token_file, secret)
    return secret


async def _prepare(settings: Settings, password_file: Path
                   ) -> tuple[int, int, bool, str | None]:
    from mailwing.services.delivery import deliver_local
    from mailwing.services.passwords import hash_password  # argon2: only when it runs

    store = await open_store(settings)
    try:
        before, after = await store.upgrade()
        token = await _first_token(store, settings.server.data_dir / "admin-token.txt")
        if await store.list_users():
            return before, after, False, token
        password = secrets.token_urlsafe(12)
        await store.add_user(DEMO_ADDRESS, hash_password(password), create_domain=True)
        _write_secret(password_file, password)
        await deliver_local(store, DEMO_ADDRESS, WELCOME.encode(),
                            return_path="postmaster@localhost",
                            hostname=settings.server.hostname)
        return before, after, True, token
    finally:
        await store.close()


def _instructions(settings: Settings, password_file: Path, created: bool) -> str:
    host = settings.server.listen[0]
    url_host = f"[{host}]" if ":" in host else host
    pw = str(password_file)
    password = ""
    if created and password_file.exists():
        password = password_file.read_text().strip()
    ports = {name: settings.listener(name).port for name in
             ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps")}
    lines = [
        "demo account created: demo@localhost" if created else
        "existing installation: no account was added",
        f"demo password: {password} (also in {pw})" if password else
        (f"demo password file: {pw}" if password_file.exists() else ""),
        "",
        "listeners (self-signed certificate in the data folder unless tls.cert_file is set):",
    ]
    labels = {
        "smtp": "SMTP (MX: mail for local users)",
        "submission": "submission (STARTTLS, then AUTH)",
        "smtps": "SMTPS (implicit TLS submission)",
        "pop3": "POP3 (STLS available)",
        "pop3s": "POP3S (implicit TLS)",
        "imap": "IMAP (STARTTLS available)",
        "imaps": "IMAPS (implicit TLS)",
    }
    lines += [f"  {name:<10} {url_host}:{port:<6} {labels[name]}"
              for name, port in ports.items() if port]
    lines += ["", "try it:"]
    if ports["smtp"]:
        lines.append(f"  swaks --server {host}:{ports['smtp']} --to demo@localhost")
    if ports["pop3"]:
        lines.append(f"  curl -u \"demo@localhost:$(cat {pw})\" pop3://{url_host}:{ports['pop3']}/1")
    if ports["imap"]:
        lines.append(f"  curl -u \"demo@localhost:$(cat {pw})\" "
                     f"'imap://{url_host}:{ports['imap']}/INBOX;UID=1'")
        lines.append(f"  Thunderbird/mutt: IMAP {host} port {ports['imap']} (STARTTLS), "
                     f"SMTP port {ports['submission']}, user demo@localhost")
    lines += _console_lines(settings)
    lines += ["", "stop with Ctrl-C"]
    return "\n".join(lines)


def _console_lines(settings: Settings, token: str | None = None) -> list[str]:
    admin = settings.admin
    if not admin.port:
        return []
    host = admin.listen[0]
    url_host = f"[{host}]" if ":" in host else host
    scheme = "https" if admin.tls_enabled else "http"
    token_file = settings.server.data_dir / "admin-token.txt"
    lines = ["", f"web console and admin API: {scheme}://{url_host}:{admin.port}/"]
    if token:
        lines.append(f"first admin token: {token} (also in {token_file})")
    elif token_file.exists():
        lines.append(f"admin token file: {token_file}")
    return lines


def _quickstart(args: argparse.Namespace, settings: Settings) -> int:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    password_file = settings.server.data_dir / "demo-password.txt"
    before, after, created, token = run_async(lambda: _prepare(settings, password_file))
    if before != after:
        print(f"database schema upgraded from version {before} to {after}")
    text = _instructions(settings, password_file, created)
    if token:
        text = text.replace("\n".join(_console_lines(settings)),
                            "\n".join(_console_lines(settings, token)))
    print(text, flush=True)
    return run_server(settings)
