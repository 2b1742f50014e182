"""Connection.write: back-pressure still holds when drain is skipped for small writes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailwing.server.connection import Connection, ConnectionClosed, IdleTimeout


@contextlib.asynccontextmanager
async def connected(idle_timeout: float) -> AsyncIterator[
        tuple[Connection, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A server-side :class:`Connection` on a real loopback socket, with the client's ends."""
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(Connection(reader, writer, listener="imap", ssl_context=None,
                                      idle_timeout=idle_timeout))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client_reader, client_writer = await asyncio.open_connection("127.0.0.1", port)
    conn = await accepted.get()
    try:
        yield conn, client_reader, client_writer
    finally:
        client_writer.close()
        conn.writer.close()
        server.close()
        await server.wait_closed()


async def test_a_peer_that_stops_reading_is_dropped_and_buffers_stay_bounded() -> None:
    """Writes return at once while the socket takes the data; once the peer reads nothing,
    the transport buffer passes its high-water mark, write waits in drain, and after the
    idle limit the peer counts as gone. The buffer never grows past the mark plus one
    write."""
    async with connected(0.5) as (conn, _, _client_writer):  # the client never reads
        piece = b"x" * 65536
        high = conn.writer.transport.get_write_buffer_limits()[1]
        with pytest.raises(ConnectionClosed, match="stopped reading"):
            for _ in range(100_000):  # far more than any socket buffer takes
                await conn.write(piece)
                assert conn.writer.transport.get_write_buffer_size() <= high + len(piece)


async def test_reads_share_one_idle_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle limit costs no timer per read: a session of many commands arms one (an
    ``asyncio.timeout`` around each read armed and cancelled one per command)."""
    loop = asyncio.get_running_loop()
    armed = 0
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        nonlocal armed
        armed += 1
        return call_at(when, callback, *args, **kwargs)

    async with connected(30) as (conn, _, client):
        monkeypatch.setattr(loop, "call_at", counted)
        for n in range(50):
            client.write(b"NOOP %d\r\n" % n)
            assert (await conn.read()).startswith(b"NOOP")
        monkeypatch.undo()
        assert armed == 1
        await conn.close()
        assert conn._idle_timer is None  # no timer left holding a closed connection


async def test_idle_limit_is_per_read_and_still_ends_a_silent_peer() -> None:
    """A client that sends more often than the idle limit is never cut off, however long
    the session; once it goes silent, the waiting read ends in IdleTimeout after about the
    limit (the one timer re-arms itself at each read's own deadline)."""
    async with connected(0.4) as (conn, _, client):
        started = time.monotonic()
        for n in range(6):  # 6 x 0.15 s: longer than the limit in total
            await asyncio.sleep(0.15)
            client.write(b"NOOP %d\r\n" % n)
            assert (await conn.read()).startswith(b"NOOP")
        assert time.monotonic() - started > 0.8
        silent = time.monotonic()
        with pytest.raises(IdleTimeout):
            await conn.read()
        waited = time.monotonic() - silent
        assert 0.35 <= waited < 2.0
        assert conn.end_reason == "timeout"
