"""The catch-up's read of expunged UIDs uses the (mailbox_id, modseq) index on SQLite.

Why (issue #9, the IMAP mixed load slowing down as it ran): with ``ORDER BY uid`` SQLite
chose the primary key (mailbox_id, uid) to save a sort and walked the mailbox's whole
expunged history for every catch-up that found a change: a STORE after 8,000 expunges took
three times as long as on a fresh mailbox. The plans are checked on a real database with
the real statements the scripts yield.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from pathlib import Path
from typing import Any

from mailwing.storage.scripts_mail import mail_changes
from mailwing.storage.scripts_vanished import vanished_since
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.catchup import mail_changes as sqlite_mail_changes
from mailwing.storage.sqlite.executor import to_sqlite_sql
from mailwing.storage.steps import Query


def _expunged_reads(script: Generator[Any, Any, Any], answers: list[list[tuple[Any, ...]]]
                    ) -> list[Query]:
    """Drive ``script`` with canned rows; the statements it asks for that read expunged."""
    seen: list[Query] = []
    step = next(script)
    try:
        while True:
            if isinstance(step, Query) and "FROM expunged" in step.sql:
                seen.append(step)
            step = script.send(answers.pop(0) if answers else [])
    except StopIteration:
        return seen


def _plan(db: Path, query: Query) -> str:
    conn = sqlite3.connect(db)
    try:
        args = [1 if isinstance(a, int) else a for a in query.args]
        rows = conn.execute("EXPLAIN QUERY PLAN " + to_sqlite_sql(query.sql), args).fetchall()
    finally:
        conn.close()
    return " | ".join(str(r[-1]) for r in rows)


async def test_a_catch_up_reads_the_expunged_uids_by_modseq(
        sqlite_store: SqliteStorage, tmp_path: Path) -> None:
    # highest 9, vanished floor 0, uidnext 5: changes since 3, none pruned
    reads = _expunged_reads(mail_changes(1, 3), [[(9, 0, 5)], []])
    assert len(reads) == 1
    plan = _plan(tmp_path / "mail.db", reads[0])
    assert "expunged_modseq" in plan, plan


async def test_the_one_statement_catch_up_reads_both_by_modseq(
        sqlite_store: SqliteStorage, tmp_path: Path) -> None:
    """SQLite's own catch-up (:mod:`mailwing.storage.sqlite.catchup`): its two subqueries
    read the changed entries and the expunged UIDs through their modseq indexes."""
    script = sqlite_mail_changes(1, 3)
    step = next(script)
    script.close()
    plan = _plan(tmp_path / "mail.db", step)
    assert "expunged_modseq" in plan and "mail_modseq" in plan, plan


async def test_a_vanished_answer_reads_the_expunged_uids_by_modseq(
        sqlite_store: SqliteStorage, tmp_path: Path) -> None:
    reads = _expunged_reads(vanished_since(1, 3), [[(0,)]])
    assert len(reads) == 1
    plan = _plan(tmp_path / "mail.db", reads[0])
    assert "expunged_modseq" in plan, plan


async def test_the_uids_still_come_back_in_ascending_order() -> None:
    script = mail_changes(1, 3)
    next(script)
    script.send([(9, 0, 5)])  # the mailbox row
    script.send([])  # no changed entries
    try:
        script.send([(7,), (2,), (4,)])  # expunged rows in index (modseq) order
    except StopIteration as done:
        assert done.value == (9, [], [2, 4, 7])
    else:
        raise AssertionError("mail_changes asked for more than three statements")
    gone = vanished_since(1, 3)
    next(gone)
    try:
        gone.send([(0,)])
        gone.send([(9,), (1,)])
    except StopIteration as done:
        assert done.value == [1, 9]
