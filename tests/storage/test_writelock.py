"""SQLite writers queue on a file lock before ``BEGIN IMMEDIATE`` (:mod:`.writelock`): a write
waits, asleep, while another process's writer holds it, without holding SQLite's own lock
meanwhile; reads never queue; the lock is let go after a failed batch; and a process that
forked opens its own descriptor (one inherited would share the parent's lock).

Nothing here is timed: a writer that should be waiting is shown to be waiting by SQLite's
write lock still being free (another connection takes it), and ``join`` timeouts only turn a
hang into a failure.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwing.storage.blobs import BlobStore
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite.executor import SqliteExecutor, Work
from mailwing.storage.sqlite.writelock import WriterQueue, writers_path
from mailwing.storage.steps import Query, Script

GUARD = 30.0


def insert(value: int) -> Script[None]:
    yield Query("INSERT INTO t (x) VALUES ($1)", (value,))


def count() -> Script[int]:
    rows = yield Query("SELECT count(*) FROM t")
    return int(rows[0][0])


def failing() -> Script[None]:
    yield Query("INSERT INTO t (x) VALUES (1)")
    raise StorageError("the script gives up")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mail.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()
    yield path


def executor(path: Path, *, read_only: bool = False) -> SqliteExecutor:
    return SqliteExecutor(path, BlobStore(path.parent / "blobs"), read_only=read_only,
                          busy_timeout=GUARD)


def hold(path: Path) -> int:
    """Take the file lock as another process's writer would (a descriptor of its own)."""
    fd = os.open(writers_path(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def sqlite_lock_free(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_a_write_waits_for_the_file_lock_before_taking_sqlites(database: Path) -> None:
    writer = executor(database)

    def write() -> None:  # the connection belongs to the thread that opened it
        writer.run(insert(7), write=True)
        writer.close()

    fd = hold(database)
    thread = threading.Thread(target=write)
    thread.start()
    try:
        thread.join(0.3)
        assert thread.is_alive(), "the write went ahead while another writer held the lock"
        # waiting on the file lock, not on SQLite's: that one is free for whoever holds ours
        assert sqlite_lock_free(database)
    finally:
        os.close(fd)  # lets go of the lock
    thread.join(GUARD)
    assert not thread.is_alive()
    assert executor(database, read_only=True).run(count(), write=False) == 1
    assert writer.writers is not None
    assert (writer.writers.taken, writer.writers.waited) == (1, 1)


def test_reads_do_not_queue(database: Path) -> None:
    fd = hold(database)
    try:
        reader = executor(database, read_only=True)
        assert reader.writers is None
        # a read batch on the writer's connection does not take the lock either
        writer = executor(database)
        assert writer.run(count(), write=False) == 0
        assert writer.writers is not None and writer.writers.taken == 0
        writer.close()
    finally:
        os.close(fd)


def test_the_lock_is_let_go_after_a_failed_batch(database: Path) -> None:
    writer = executor(database)
    with pytest.raises(StorageError):
        writer.run(failing(), write=True)
    writer.run(insert(1), write=True)
    fd = hold(database)  # would raise BlockingIOError if the writer still held it
    os.close(fd)
    assert writer.run(count(), write=False) == 1
    writer.close()


def test_a_forked_child_opens_its_own_descriptor(database: Path) -> None:
    parent = WriterQueue(database)
    assert parent.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child: the inherited queue must not count as holding the lock
            code = 1
            try:
                fd = parent._open()
                assert fd is not None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    code = 0  # a descriptor of its own: the parent's lock excludes it
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        parent.release()
        parent.close()


def test_without_a_usable_file_writers_go_ahead(tmp_path: Path) -> None:
    queue = WriterQueue(tmp_path / "missing" / "mail.db")  # its folder does not exist
    assert queue.acquire() is False
    queue.release()
    queue.close()


def test_a_queued_write_begins_without_the_retry_steps(database: Path) -> None:
    """Holding the file lock, the writer sends ``BEGIN IMMEDIATE`` alone: no
    ``PRAGMA busy_timeout`` pair around it (see ``SqliteExecutor._transaction``)."""
    writer = executor(database)
    statements: list[str] = []
    writer._connect().set_trace_callback(statements.append)
    writer.run(insert(3), write=True)
    assert statements[0] == "BEGIN IMMEDIATE"
    assert not any("busy_timeout" in s for s in statements)
    assert writer.writers is not None and writer.writers.taken == 1
    writer.close()


def test_a_writer_that_does_not_queue_is_still_waited_for(database: Path) -> None:
    """A writer outside the file lock (the ``sqlite3`` shell) holds SQLite's lock: the
    queued write waits for it (SQLite's busy handler) and then goes through."""
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    writer = executor(database)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.run(insert(5), write=True)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        thread.join(0.3)
        assert thread.is_alive(), "the write went ahead while SQLite's lock was held"
    finally:
        other.execute("ROLLBACK")
        other.close()
    thread.join(GUARD)
    assert not thread.is_alive() and errors == []
    assert executor(database, read_only=True).run(count(), write=False) == 1


def test_the_queue_counts_the_time_it_was_held(database: Path) -> None:
    writer = executor(database)
    writer.run(insert(1), write=True)
    writer.run(insert(2), write=True)
    assert writer.writers is not None
    assert writer.writers.taken == 2
    assert writer.writers.held_seconds > 0.0
    assert writer.writers.held_cpu_seconds >= 0.0
    writer.close()


def test_a_failing_request_of_a_batch_is_rolled_back_alone(database: Path) -> None:
    """Each request of a batch runs in a savepoint that is never released (nested in the
    previous request's): a failure, first, in the middle or last, undoes only its own
    statements, and the batch sends no ``RELEASE``."""
    writer = executor(database)
    statements: list[str] = []
    writer._connect().set_trace_callback(statements.append)
    batch = [Work(failing(), True), Work(insert(10), True), Work(failing(), True),
             Work(insert(11), True), Work(insert(12), True), Work(failing(), True)]
    writer.run_batch(batch)
    assert [isinstance(w.error, StorageError) for w in batch] == [
        True, False, True, False, False, True]
    assert statements.count("SAVEPOINT job") == 6
    assert statements.count("ROLLBACK TO job") == 3
    assert not any(s.startswith("RELEASE") for s in statements)
    assert statements[-1] == "COMMIT"

    def values() -> Script[list[int]]:
        rows = yield Query("SELECT x FROM t ORDER BY rowid")
        return [int(r[0]) for r in rows]

    assert writer.run(values(), write=False) == [10, 11, 12]  # no 1 of a failed request
    writer.close()


def test_a_release_without_a_hold_counts_no_time(tmp_path: Path) -> None:
    queue = WriterQueue(tmp_path / "missing" / "mail.db")  # no usable file: nothing held
    assert queue.acquire() is False
    queue.release()
    assert (queue.held_seconds, queue.held_cpu_seconds) == (0.0, 0.0)
    queue.close()
