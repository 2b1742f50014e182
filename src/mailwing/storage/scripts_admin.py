"""Transaction scripts for the admin API's bearer tokens (table ``admin_tokens``, schema 7).

Storage only keeps names and SHA-256 digests; making and checking tokens is
:mod:`mailwing.services.admin_tokens`' job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailwing.storage.errors import AlreadyExists
from mailwing.storage.interface import AdminToken
from mailwing.storage.steps import Script, q

__all__ = [
    "add_admin_token",
    "content_bytes",
    "database_size",
    "delete_admin_token",
    "find_admin_token",
    "get_admin_token",
    "list_admin_tokens",
    "touch_admin_token",
]

_COLUMNS = "id, name, token_hash, created_at, last_used_at"


def _row(row: Sequence[Any]) -> AdminToken:
    return AdminToken(id=int(row[0]), name=str(row[1]), token_hash=str(row[2]),
                      created_at=float(row[3]),
                      last_used_at=None if row[4] is None else float(row[4]))


def add_admin_token(name: str, token_hash: str, now: float) -> Script[AdminToken]:
    rows = yield q(
        "INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)"
        f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}", name, token_hash, now,
    )
    if not rows:
        raise AlreadyExists(f"admin token {name} exists already")
    return _row(rows[0])


def list_admin_tokens() -> Script[list[AdminToken]]:
    rows = yield q(f"SELECT {_COLUMNS} FROM admin_tokens ORDER BY name")
    return [_row(r) for r in rows]


def find_admin_token(token_hash: str) -> Script[AdminToken | None]:
    rows = yield q(f"SELECT {_COLUMNS} FROM admin_tokens WHERE token_hash = $1", token_hash)
    return _row(rows[0]) if rows else None


def get_admin_token(token_id: int) -> Script[AdminToken | None]:
    rows = yield q(f"SELECT {_COLUMNS} FROM admin_tokens WHERE id = $1", token_id)
    return _row(rows[0]) if rows else None


def touch_admin_token(token_id: int, now: float) -> Script[None]:
    yield q("UPDATE admin_tokens SET last_used_at = $2 WHERE id = $1", token_id, now)


def delete_admin_token(name: str) -> Script[bool]:
    rows = yield q("DELETE FROM admin_tokens WHERE name = $1 RETURNING id", name)
    return bool(rows)


def content_bytes() -> Script[tuple[int, int]]:
    """(stored contents, their total octets): each content once, however many copies."""
    rows = yield q("SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM contents")
    return int(rows[0][0]), int(rows[0][1])


def database_size(sql: str) -> Script[int]:
    """The database's own size; ``sql`` is the backend's query for it."""
    rows = yield q(sql)
    return int(rows[0][0] or 0)
