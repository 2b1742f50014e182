"""The reference SMTP server for the benchmark: aiosmtpd with a durable Maildir handler.

Run as its own process (``python smtp_aiosmtpd.py --port P --maildir DIR``) so that it gets a
core of its own, as mailwing does. The handler does what "250 after DATA means stored" requires
(RFC 5321 4.1.1.4) the classic Maildir way: write ``tmp/<unique>``, fsync the file, rename it
into ``new/``, fsync the ``new/`` directory, and only then answer ``250``. The blocking file
work runs in a thread (``asyncio.to_thread``) so that sessions overlap their fsyncs, which is
the best a per-message-fsync design can do; uvloop is used when installed, as for mailwing.

aiosmtpd does not advertise PIPELINING, but reads commands from a buffered stream, so the
load generator's pipelined groups work with it (checked by the 250s it counts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["MaildirHandler", "main"]


class MaildirHandler:
    """aiosmtpd handler: every accepted message becomes one fsynced Maildir file."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname()
        self._counter = 0

    def _store(self, data: bytes, name: str) -> None:
        tmp = self.maildir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.maildir / "new" / name)
        dfd = os.open(self.maildir / "new", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._counter += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._counter}.{self._host}"
        await asyncio.to_thread(self._store, envelope.original_content, name)
        return "250 2.0.0 OK stored"


async def serve(port: int, maildir: Path) -> None:
    from aiosmtpd.smtp import SMTP

    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="aiosmtpd.bench.test", decode_data=False,
                     data_size_limit=64 * 1024 * 1024),
        "127.0.0.1", port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", type=Path, required=True)
    args = p.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(serve(args.port, args.maildir))
    else:
        uvloop.run(serve(args.port, args.maildir))


if __name__ == "__main__":
    main()
