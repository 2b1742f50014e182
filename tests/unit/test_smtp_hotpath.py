"""What one SMTP message costs the SQLite database thread (issue #9: latency per message).

An MX message for one local recipient is two requests to the database thread, the content's
posted insertion and the append that links it (one commit between them, usually shared with
other sessions'); the RCPT lookup is not among them: it is answered on the event loop
(:mod:`mailwing.storage.sqlite.backend`), so it never waits behind a group commit's fsync.
"""

from __future__ import annotations

from mailwing.server.smtp_session import handle_smtp
from mailwing.storage.sqlite import SqliteStorage
from tests.unit.test_reply_flushing import USER, Client, Env, env, in_thread

__all__ = ["env"]  # the fixture, imported for this module's tests


async def test_one_message_is_two_database_thread_requests(env: Env) -> None:
    store = env.storage
    assert isinstance(store, SqliteStorage)
    port = await env.listen(handle_smtp, "smtp")

    def session() -> None:
        c = Client(port)
        assert c.until(b"\r\n").startswith(b"220")
        c.sock.sendall(b"EHLO client.test\r\n")
        assert b"PIPELINING" in c.through(b"250 ")
        c.sock.sendall(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{USER}>\r\nDATA\r\n".encode())
        assert c.through(b"354 ").count(b"250 ") == 2
        c.sock.sendall(b"Subject: s\r\n\r\nbody\r\n.\r\n")
        assert c.through(b"250 ").startswith(b"250 ")
        assert c.ask(b"QUIT\r\n").startswith(b"221")
        c.close()

    for _ in range(2):  # the first session opens the read connection
        served, (_, requests) = store._here.served, store.commit_stats
        await in_thread(session)
        assert store.commit_stats[1] - requests == 2  # posted content + append
        assert store._here.served - served == 1  # RCPT, answered on the event loop
