"""Servers for the differential tier: one Dovecot and one mailwing per backend, for the whole
session; every script gets its own user on both, so scripts never see each other's state."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, _pg_exec, open_test_storage
from tests.differential.dovecot import DifferentialDovecot, dovecot_available
from tests.differential.script import SCRIPTS
from tests.support import MailwingServer, free_port, skip_or_fail

PASSWORD = "differential-secret"


def user_for(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + "@example.test"


def all_users() -> list[str]:
    names = [p.stem for p in sorted(SCRIPTS.glob("*.txt"))] + ["corpus"]
    return [user_for(n) for n in names]


@dataclass
class Target:
    """A server to play scripts against."""

    name: str
    port: int


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Target]:
    if not dovecot_available():
        skip_or_fail("Dovecot (dovecot-imapd) is not installed or we are not root")
    # Dovecot's unprivileged processes must reach the folder: not under pytest's tmp_path,
    # whose parents are private.
    root = Path(tempfile.mkdtemp(prefix="mailwing-diff-dovecot-"))
    server = DifferentialDovecot(root, free_port())
    server.set_plain_users({u: PASSWORD for u in all_users()})
    try:
        server.start()
        yield Target("dovecot", server.port)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def _add_users(url: str, data_dir: Path) -> None:
    from mailwing.services.passwords import hash_password

    store = await open_test_storage(url, data_dir)
    try:
        hashed = hash_password(PASSWORD)
        for user in all_users():
            await store.add_user(user, hashed, create_domain=True)
    finally:
        await store.close()


def _mailwing(root: Path, url: str) -> MailwingServer:
    srv = MailwingServer(root=root, database_url=url, enable=("imap",))
    asyncio.run(_add_users(url or f"sqlite:///{srv.data_dir / 'mailwing.db'}", srv.data_dir))
    return srv.start()


@pytest.fixture(scope="session")
def mailwing_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    srv = _mailwing(tmp_path_factory.mktemp("diff-mailwing"), "")
    try:
        yield Target("mailwing-sqlite", srv.ports["imap"])
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def mailwing_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    name = f"mailwing_diff_{uuid.uuid4().hex[:12]}"
    try:
        _pg_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        skip_or_fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    srv = _mailwing(tmp_path_factory.mktemp("diff-mailwing-pg"), url)
    try:
        yield Target("mailwing-postgresql", srv.ports["imap"])
    finally:
        srv.stop()
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def mailwing(request: pytest.FixtureRequest) -> Target:
    target: Target = request.getfixturevalue(f"mailwing_{request.param}")
    return target
