"""Named leases for background jobs that one node at a time should run (garbage collection).

A lease is a row (name, owner, until). Taking it succeeds when it is free, expired, or already
ours (renewal), in one upsert whose ``WHERE`` repeats that condition, so two nodes racing for
it cannot both win; the answer is whoever holds it afterwards. Same SQL on both backends.
"""

from __future__ import annotations

from mailwing.storage.steps import Script, q

__all__ = ["release_lease", "take_lease"]


def take_lease(name: str, owner: str, now: float, until: float) -> Script[tuple[str, float]]:
    yield q(
        "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until"
        " WHERE leases.until < $4 OR leases.owner = excluded.owner",
        name, owner, until, now,
    )
    rows = yield q("SELECT owner, until FROM leases WHERE name = $1", name)
    return str(rows[0][0]), float(rows[0][1])


def release_lease(name: str, owner: str) -> Script[None]:
    yield q("DELETE FROM leases WHERE name = $1 AND owner = $2", name, owner)
