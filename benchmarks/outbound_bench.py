"""Outbound delivery: queue throughput and the latency from ``250`` to remote delivery.

Run ``.venv/bin/python benchmarks/outbound_bench.py --help``. Not a test.

What is measured (SQLite, or PostgreSQL with ``--postgres URL``):

1. *Throughput*: ``--messages`` messages are queued (storage ``enqueue``), then one in-process
   :class:`mailwing.queue.worker.Worker` (its polling loop, default concurrency settings)
   delivers them to a local sink (aiosmtpd in a thread that accepts and discards), with the
   recipients' domains spread over 1 and over 20 destination domains (MX records from the
   tests' loopback DNS server, every MX on 127.0.0.1). Reported: messages/s from the worker's
   start to the last ``250`` at the sink. Each message is one SMTP connection and transaction.
2. *Latency*: a real ``mailwing serve`` (one worker process) takes ``--latency-messages``
   messages on submission from smtplib, one at a time; for each, the time from the client
   seeing ``250`` to the sink receiving the message. Reported: p50 and p99.

The load generator, the sink and the DNS server share this process (two cores are few: the
figures are a floor, not a ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402
from tests.dnsserver import DnsServer  # noqa: E402
from tests.support import MailwingServer, free_port  # noqa: E402

from mailwing.config import Settings  # noqa: E402
from mailwing.queue.worker import Worker  # noqa: E402
from mailwing.storage import open_storage  # noqa: E402
from mailwing.storage.interface import Outbound  # noqa: E402

BODY = b"From: a@bench.test\r\nSubject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 52


class Discard:
    """Accepts everything, keeps only the arrival time per Subject."""

    def __init__(self) -> None:
        self.count = 0
        self.arrived: dict[str, float] = {}
        self.done = threading.Event()
        self.expect = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        head = bytes(envelope.original_content or b"")[:400]
        for line in head.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                self.arrived[line[9:].decode()] = time.perf_counter()
        if self.expect and self.count >= self.expect:
            self.done.set()
        return "250 2.0.0 discarded"


def zone(dns: DnsServer, domains: int) -> list[str]:
    names = [f"d{i}.bench" for i in range(domains)]
    for name in names:
        dns.add(name, "MX", f"10 mx.{name}.")
        dns.add(f"mx.{name}", "A", "127.0.0.1")
    return names


async def throughput(url: str, data_dir: Path, dns: DnsServer, port: int, sink: Discard,
                     messages: int, domains: list[str]) -> float:
    store: Any = await open_storage(url, data_dir=data_dir)
    await store.upgrade()
    settings = Settings()
    settings.server.hostname = "bench.test"
    settings.outbound.dns_resolver, settings.outbound.mx_port = dns.address, port
    settings.outbound.poll_interval = "0.05s"
    content = await store.store_content(BODY)
    now = time.time()
    tag = domains[0] + str(len(domains))
    for i in range(messages):
        rcpt = f"u{i}@{domains[i % len(domains)]}"
        await store.enqueue(content, Outbound(f"B{tag}{i}", "a@bench.test", (rcpt,), now))
    sink.count, sink.expect = 0, messages
    sink.done.clear()
    worker = Worker(store, settings)
    start = time.perf_counter()
    worker.start()
    await asyncio.to_thread(sink.done.wait, 600)
    elapsed = time.perf_counter() - start
    await worker.stop()
    await store.close()
    return messages / elapsed


def latency(tmp: Path, dns: DnsServer, port: int, sink: Discard, count: int,
            url: str) -> list[float]:
    srv = MailwingServer(root=tmp / "srv", database_url=url, enable=("submission",),
                         extra_config=f'[outbound]\ndns_resolver = "{dns.address}"\n'
                                      f'mx_port = {port}\npoll_interval = "1s"\n')
    srv.start()
    srv.add_user("a@bench.test", "pw")
    sink.expect = 0
    seen: list[float] = []
    try:
        with smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=60) as s:
            s.login("a@bench.test", "pw")
            for i in range(count):
                subject = f"lat{i}"
                body = BODY.replace(b"Subject: bench", f"Subject: {subject}".encode())
                s.sendmail("a@bench.test", [f"r{i}@d0.bench"], body)
                accepted = time.perf_counter()
                deadline = accepted + 30
                while subject not in sink.arrived and time.perf_counter() < deadline:
                    time.sleep(0.0005)
                seen.append(sink.arrived.get(subject, deadline) - accepted)
    finally:
        srv.stop()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--latency-messages", type=int, default=200)
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (default SQLite)")
    args = parser.parse_args()
    sink = Discard()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    dns = DnsServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            url = args.postgres or f"sqlite:///{tmp / 'bench.db'}"
            for n in (1, 20):
                rate = asyncio.run(throughput(url, tmp / "data", dns, port, sink,
                                              args.messages, zone(dns, n)))
                print(f"throughput, {n:2d} destination domain(s): {rate:7.1f} messages/s"
                      f" ({args.messages} messages, 4 KB)")
            lat_url = args.postgres or f"sqlite:///{tmp / 'lat.db'}"
            times = sorted(latency(tmp, dns, port, sink, args.latency_messages, lat_url))
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"latency 250 -> delivered ({len(times)} messages, one at a time):"
                  f" p50 {statistics.median(times) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    finally:
        dns.stop()
        controller.stop()


if __name__ == "__main__":
    main()
