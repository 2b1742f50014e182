"""`make run` on a fresh data folder also prints the console URL and a first admin token
(stored hashed, usable at once); a second run prints no new token."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.conftest import open_test_storage
from tests.protocol.test_quickstart import _run_quickstart
from tests.support import free_port


def _token_name(root: Path, token: str) -> str | None:
    from mailwing.services.admin_tokens import TokenService

    async def check() -> str | None:
        store = await open_test_storage(f"sqlite:///{root / 'data' / 'mailwing.db'}",
                                        root / "data", upgrade=False)
        try:
            record = await TokenService(store).verify(token)
            return record.name if record else None
        finally:
            await store.close()

    return asyncio.run(check())


def test_quickstart_prints_the_console_and_a_first_token(tmp_path: Path) -> None:
    ports = {"pop3": free_port(), "admin": free_port()}
    first, code = _run_quickstart(tmp_path, ports)
    assert code == 0
    assert f"web console and admin API: http://127.0.0.1:{ports['admin']}/" in first
    found = re.search(r"first admin token: (mwa_\S+)", first)
    assert found, first
    token_file = tmp_path / "data" / "admin-token.txt"
    assert token_file.read_text().strip() == found[1]
    assert token_file.stat().st_mode & 0o077 == 0
    assert _token_name(tmp_path, found[1]) == "first-admin"

    second, code = _run_quickstart(tmp_path, ports)
    assert code == 0 and "first admin token" not in second
    assert f"admin token file: {token_file}" in second
