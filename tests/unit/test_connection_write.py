"""Connection.write: back-pressure still holds when drain is skipped for small writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from mailwing.server.connection import Connection, ConnectionClosed


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
