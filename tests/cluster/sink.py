"""A remote MX for the cluster tier's outbound test: accepts everything, records each message.

Run as ``python -m tests.cluster.sink HOST PORT RECORD_FILE DELAY``. Every message accepted is
recorded (its Message-ID, one line, flushed and fsynced) *before* the ``250`` goes out, and
the reply is held back ``DELAY`` seconds so that deliveries are in flight when a node dies.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

_MSGID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  record: int, delay: float) -> None:
    writer.write(b"220 mx.remote.test ESMTP sink\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-mx.remote.test\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                found = _MSGID.search(data)
                os.write(record, (found.group(1) if found else b"?") + b"\n")
                os.fsync(record)
                await asyncio.sleep(delay)
                writer.write(b"250 2.0.0 accepted\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            elif verb == b"RSET" or verb in (b"MAIL", b"RCPT", b"NOOP"):
                writer.write(b"250 ok\r\n")
            else:
                writer.write(b"502 no\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main(host: str, port: int, path: str, delay: float) -> None:
    record = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    server = await asyncio.start_server(lambda r, w: session(r, w, record, delay), host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
