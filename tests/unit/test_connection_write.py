"""Connection.write: back-pressure still holds when drain is skipped for small writes."""

from __future__ import annotations

import asyncio

import pytest

from mailwing.server.connection import Connection, ConnectionClosed


async def test_a_peer_that_stops_reading_is_dropped_and_buffers_stay_bounded() -> None:
    """Writes return at once while the socket takes the data; once the peer reads nothing,
    the transport buffer passes its high-water mark, write waits in drain, and after the
    idle limit the peer counts as gone. The buffer never grows past the mark plus one
    write."""
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(Connection(reader, writer, listener="imap", ssl_context=None,
                                      idle_timeout=0.5))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client_writer = await asyncio.open_connection("127.0.0.1", port)  # never reads
    conn = await accepted.get()
    piece = b"x" * 65536
    high = conn.writer.transport.get_write_buffer_limits()[1]
    try:
        with pytest.raises(ConnectionClosed, match="stopped reading"):
            for _ in range(100_000):  # far more than any socket buffer takes
                await conn.write(piece)
                assert conn.writer.transport.get_write_buffer_size() <= high + len(piece)
    finally:
        client_writer.close()
        conn.writer.close()
        server.close()
        await server.wait_closed()
