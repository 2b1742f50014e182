"""The delivery worker: claims due queued messages with a lease, delivers, settles, bounces.

Why leases and not a lock or a single queue process: every ``mailwing serve`` worker process
on every node runs one of these over the shared database. A claim
(:meth:`Storage.claim_queued`) leases a message to this worker until ``now + outbound.lease``;
the lease is renewed every third of that while the delivery runs, so no other worker takes a
message that is being sent, and a worker that dies (SIGKILL, power loss) loses nothing: its
lease expires and another worker (or the restarted one) claims the message again. Delivery
is therefore *at least once*: a crash after the remote ``250`` and before the settle commits
sends that recipient again, which SMTP accepts as the lesser evil (RFC 5321 section 6.1).

One attempt of one message (RFC 5321 sections 4.5.4.1 and 5.1):

- its pending and deferred recipients are grouped by domain; each domain is one SMTP
  transaction per host tried, in MX order with every address of each host, until a host
  gives a reply (connection failures and refused greetings move on to the next one);
- domains run concurrently, at most ``outbound.max_per_destination`` at once per domain in
  this process; at most ``outbound.concurrency`` messages are in flight;
- ``2xx`` -> delivered; ``5xx``, NXDOMAIN, null MX -> failed; anything else (``4xx``,
  connection refused/dropped/timed out, SERVFAIL) -> deferred until
  ``now + retry_schedule[attempt]`` (the last delay repeats), but never past the lifetime
  (``outbound.lifetime`` after arrival); once that has passed a deferred recipient fails;
- the outcome, the lease release and the DSN for newly failed recipients
  (:mod:`.bounce`) are one transaction (:meth:`Storage.settle_queued`).

Time comes from ``clock`` (a callable returning UNIX seconds) and work can be triggered with
:meth:`Worker.run_once`, so tests move time instead of sleeping. :meth:`start` runs the
polling loop (every ``outbound.poll_interval``, or at once on :func:`.wakeup.notify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

from mailwing.config import Settings, parse_duration
from mailwing.queue import client, wakeup
from mailwing.queue.bounce import Failure, bounce_for
from mailwing.queue.routing import Route, RouteError, Router
from mailwing.services import metrics
from mailwing.services.inbound import new_queue_id
from mailwing.storage.errors import StorageError
from mailwing.storage.interface import QueuedMessage, QueueStatus, RecipientOutcome, Storage

__all__ = ["Worker"]

log = logging.getLogger("mailwing.queue")


class Worker:
    """One per server process (see the module docstring)."""

    def __init__(self, storage: Storage, settings: Settings, *,
                 clock: Callable[[], float] = time.time, worker_id: str | None = None,
                 router: Router | None = None) -> None:
        o = settings.outbound
        self.storage, self.settings, self.clock = storage, settings, clock
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.router = router or Router(o)
        self.schedule = [parse_duration(d) for d in o.retry_schedule]
        self.lifetime = parse_duration(o.lifetime)
        self.lease = parse_duration(o.lease)
        self.poll = parse_duration(o.poll_interval)
        self._per_domain: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- driving ----------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim what is due now and deliver it all; return how many messages were tried."""
        claimed = await self._claim(self.settings.outbound.concurrency)
        await asyncio.gather(*(self._process(m) for m in claimed))
        return len(claimed)

    def start(self) -> None:
        wakeup.listen(self._wake.set)
        self._loop_task = asyncio.create_task(self._run(), name="mailwing-queue")

    async def stop(self) -> None:
        """Stop claiming; cancel deliveries in flight (their messages are released, due
        now, so the next start or another worker takes them up)."""
        wakeup.unlisten(self._wake.set)
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            free = self.settings.outbound.concurrency - len(self._tasks)
            self._wake.clear()
            claimed = await self._claim(free) if free > 0 else []
            for message in claimed:
                task = asyncio.create_task(self._process(message))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if claimed and len(claimed) == free:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free

    async def _claim(self, limit: int) -> list[QueuedMessage]:
        now = self.clock()
        try:
            return await self.storage.claim_queued(self.id, now, now + self.lease, limit)
        except Exception as exc:  # the loop must survive anything: it is retried next poll
            log.warning("queue claim failed: %s", exc)
            return []

    # -- one message ------------------------------------------------------------------------
    async def _process(self, message: QueuedMessage) -> None:
        renew = asyncio.create_task(self._keep_lease(message.queue_id))
        retry_at: float | None = None
        try:
            outcomes = await self._attempt(message)
            renew.cancel()
            await self._settle(message, outcomes)
        except asyncio.CancelledError:
            retry_at = self.clock()  # shutting down: hand it back, due now
            raise
        except Exception:
            log.exception("delivery of %s failed", message.queue_id)
            retry_at = self.clock() + self.schedule[0]
        finally:
            renew.cancel()
            if retry_at is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.storage.settle_queued(
                        message.queue_id, self.id, [], next_attempt=retry_at))

    async def _keep_lease(self, queue_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(StorageError):
                await self.storage.renew_lease(queue_id, self.id, self.clock() + self.lease)

    async def _attempt(self, message: QueuedMessage) -> list[RecipientOutcome]:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for r in message.recipients:
            if r.status in ("pending", "deferred"):
                by_domain[r.address.rpartition("@")[2].lower()].append(r.address)
        results = await asyncio.gather(*(
            self._deliver_domain(message, domain, addresses)
            for domain, addresses in by_domain.items()))
        return [o for group in results for o in group]

    async def _deliver_domain(self, message: QueuedMessage, domain: str,
                              addresses: list[str]) -> list[RecipientOutcome]:
        async with self._slot(domain):
            try:
                route = await self.router.route(domain)
            except RouteError as exc:
                status: QueueStatus = "failed" if exc.permanent else "deferred"
                return [RecipientOutcome(a, status, exc.reply) for a in addresses]
            return await self._send(message, route, addresses)

    @contextlib.asynccontextmanager
    async def _slot(self, domain: str) -> AsyncIterator[None]:
        """At most ``max_per_destination`` deliveries to ``domain`` at once; the semaphore
        lives only while someone uses it, so the table does not grow with every domain."""
        entry = self._per_domain.get(domain)
        if entry is None:
            entry = (asyncio.Semaphore(self.settings.outbound.max_per_destination), [0])
            self._per_domain[domain] = entry
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._per_domain[domain]

    def _options(self, route: Route) -> client.ClientOptions:
        o = self.settings.outbound
        base = client.ClientOptions(helo_name=self.settings.server.hostname,
                                    connect_timeout=o.connect_timeout,
                                    command_timeout=o.command_timeout)
        if not route.relay:
            return base
        return client.ClientOptions(
            helo_name=base.helo_name, connect_timeout=o.connect_timeout,
            command_timeout=o.command_timeout, tls=o.relay_tls, verify=o.relay_tls != "none",
            ca_file=o.relay_ca_file, username=o.relay_username, password=o.relay_password)

    async def _send(self, message: QueuedMessage, route: Route,
                    addresses: list[str]) -> list[RecipientOutcome]:
        opts = self._options(route)
        smtputf8 = not (message.sender + "".join(addresses)).isascii()
        trouble: client.ConnectionTrouble | None = None
        for hop in route.hops:
            for address in hop.addresses:
                txn = client.Transaction(message.sender, addresses, message.content.size,
                                         smtputf8)
                try:
                    await self._transaction(message, address, hop.port, hop.name, txn, opts)
                except client.ConnectionTrouble as exc:
                    log.info("%s: %s (%s) %s", message.queue_id, hop.name, address, exc)
                    trouble = exc
                    continue
                return [_outcome(a, txn.results.get(a), hop.name) for a in addresses]
        reply = str(trouble.reply) if trouble and trouble.reply else f"451 4.4.1 {trouble}"
        permanent = bool(trouble and trouble.reply and trouble.reply.permanent)
        return [RecipientOutcome(a, "failed" if permanent else "deferred", reply)
                for a in addresses]

    async def _transaction(self, message: QueuedMessage, address: str, port: int, name: str,
                           txn: client.Transaction, opts: client.ClientOptions) -> None:
        """One SMTP transaction; towards an MX whose TLS handshake fails, once more in
        plaintext (opportunistic TLS must not make mail undeliverable)."""
        for attempt in (opts, replace(opts, tls="none")):
            body = self.storage.open_content(message.content.sha256)
            try:
                await client.deliver(address, port, name, txn, _relayed(body), attempt)
                return
            except client.TlsFailed as exc:
                if opts.tls != "opportunistic" or attempt is not opts:
                    raise
                log.info("%s: %s: %s; retrying without TLS", message.queue_id, name, exc)
                txn.results.clear()
            finally:
                with contextlib.suppress(Exception):
                    await body.aclose()  # type: ignore[attr-defined]

    async def _settle(self, message: QueuedMessage, outcomes: Sequence[RecipientOutcome]
                      ) -> None:
        now = self.clock()
        deadline = message.created_at + self.lifetime
        final: list[RecipientOutcome] = []
        for o in outcomes:
            if o.status == "deferred" and now >= deadline:
                o = RecipientOutcome(o.address, "failed", o.reply, o.remote_mta)
            final.append(o)
        failures = [Failure(o.address, o.reply, o.remote_mta)
                    for o in final if o.status == "failed"]
        bounce = await bounce_for(self.storage, self.settings, message, failures, now=now,
                                  new_id=new_queue_id())
        delay = self.schedule[min(max(message.attempts, 1), len(self.schedule)) - 1]
        next_attempt = min(now + delay, max(deadline, now))
        ok = await self.storage.settle_queued(message.queue_id, self.id, final,
                                              next_attempt=next_attempt, bounce=bounce)
        for o in final:
            metrics.delivery_attempt(o.status)
            log.info("%s to=<%s> status=%s relay=%s reply=%s", message.queue_id, o.address,
                     o.status, o.remote_mta or "-", o.reply[:200])
        if not ok:
            log.warning("%s: lease lost before settling (another worker took over)",
                        message.queue_id)
        if bounce is not None:
            metrics.bounce()
        if bounce is not None and bounce.outbound is not None:
            wakeup.notify()


async def _relayed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stored content without the ``Return-Path`` line the SMTP session put first for
    its local copies: RFC 5321 section 4.4, only the final delivery adds one."""
    first = True
    async for chunk in chunks:
        if first and chunk.startswith(b"Return-Path:"):
            end = chunk.find(b"\r\n")
            chunk = chunk[end + 2:] if end >= 0 else chunk
        first = False
        yield chunk


def _outcome(address: str, reply: client.SmtpReply | None, host: str) -> RecipientOutcome:
    if reply is None:
        return RecipientOutcome(address, "deferred", "451 4.4.2 no reply for this recipient",
                                host)
    status: QueueStatus
    if 200 <= reply.code < 300:
        status = "delivered"
    elif reply.permanent:
        status = "failed"
    else:
        status = "deferred"
    return RecipientOutcome(address, status, str(reply), host)
