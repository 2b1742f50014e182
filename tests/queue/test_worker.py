"""The delivery worker in process, on each backend, against real loopback SMTP servers and
a real loopback DNS server; time moves through the worker's clock, never by sleeping."""

from __future__ import annotations

from email import message_from_bytes
from typing import Any

from mailwing.queue.worker import Worker
from tests.dnsfixtures import DnsServer
from tests.queue.conftest import ALICE, Clock, enqueue, inbox, make_settings
from tests.queue.sinks import Dropper, Sink


def _dsn_report(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    kinds = [p.get_content_type() for p in msg.get_payload()]
    assert kinds == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    return raw.decode()


async def test_delivers_one_transaction_per_domain(
        store: Any, worker: Worker, sink: Sink) -> None:
    await enqueue(store, worker.clock, "b@remote.test", "a@remote.test", "c@other.test")
    assert await worker.run_once() == 1
    got = sorted((e.sender, sorted(e.recipients)) for e in sink.received)
    assert got == [(ALICE, ["a@remote.test", "b@remote.test"]), (ALICE, ["c@other.test"])]
    assert b"\r\n.leading dot\r\n" in sink.received[0].data  # dot-stuffing undone by the sink
    assert await store.list_queued() == []


async def test_fallback_to_second_mx_when_first_refuses(
        store: Any, worker: Worker, sink: Sink, zone: DnsServer) -> None:
    zone.set("remote.test", "MX", "10 down.remote.test.", "20 up.remote.test.")
    zone.add("down.remote.test", "A", "127.0.0.2")  # nothing listens there on this port
    zone.add("up.remote.test", "A", "127.0.0.1")
    await enqueue(store, worker.clock, "b@remote.test")
    await worker.run_once()
    assert [e.recipients for e in sink.received] == [["b@remote.test"]]
    assert await store.list_queued() == []


async def test_4xx_then_success_on_retry(store: Any, worker: Worker, sink: Sink,
                                         clock: Clock) -> None:
    sink.handler.data_replies.append("451 4.3.0 try again later")
    await enqueue(store, clock, "b@remote.test")
    await worker.run_once()
    [m] = await store.list_queued()
    assert m.recipients[0].status == "deferred" and "451 4.3.0" in m.recipients[0].last_reply
    assert m.next_attempt == clock.now + 60 and m.lease_owner is None
    clock.now += 59
    assert await worker.run_once() == 0  # not due yet
    clock.now += 1
    assert await worker.run_once() == 1
    assert [e.recipients for e in sink.received] == [["b@remote.test"]]
    assert await store.list_queued() == []


async def test_5xx_gives_exactly_one_dsn(store: Any, worker: Worker, sink: Sink,
                                         alice: Any) -> None:
    sink.handler.rcpt_replies["bad@remote.test"] = "550 5.1.1 <bad@remote.test>: no such user"
    await enqueue(store, worker.clock, "bad@remote.test", "good@remote.test")
    await worker.run_once()
    assert [e.recipients for e in sink.received] == [["good@remote.test"]]
    assert await worker.run_once() == 0 and await store.list_queued() == []
    [dsn] = await inbox(store, alice)
    text = _dsn_report(dsn)
    assert dsn.startswith(b"Return-Path: <>\r\n")
    assert "Final-Recipient: rfc822; bad@remote.test" in text and "Action: failed" in text
    assert "Status: 5.1.1" in text and "Remote-MTA: dns; mx.remote.test" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1 <bad@remote.test>: no such user" in text
    assert "Final-Recipient: rfc822; good@remote.test" not in text
    assert "Subject: outbound Q1" in text  # the original's headers


async def test_expiry_gives_a_dsn(store: Any, worker: Worker, sink: Sink, clock: Clock,
                                  alice: Any) -> None:
    sink.handler.data_replies.extend(["452 4.2.2 mailbox full"] * 20)
    await enqueue(store, clock, "full@remote.test")
    start, attempts = clock.now, 0
    while await store.list_queued():
        [m] = await store.list_queued()
        clock.now = max(clock.now, m.next_attempt)
        attempts += await worker.run_once()
        assert attempts < 20
    assert clock.now == start + 3600  # the last attempt is made at the end of the lifetime
    [dsn] = await inbox(store, alice)
    text = _dsn_report(dsn)
    assert "Final-Recipient: rfc822; full@remote.test" in text
    assert "Diagnostic-Code: smtp; 452 4.2.2 mailbox full" in text and "Status: 4.2.2" in text
    assert sink.received == []


async def test_connection_dropped_mid_data_is_retried(
        store: Any, zone: DnsServer, clock: Clock, alice: Any) -> None:
    with Dropper() as dropper:
        worker = Worker(store, make_settings(zone, dropper.port), clock=clock)
        await enqueue(store, clock, "b@remote.test")
        await worker.run_once()
        [m] = await store.list_queued()
        assert m.recipients[0].status == "deferred"
        assert dropper.received == [] and dropper.connections == 1
        clock.now = m.next_attempt
        await worker.run_once()
        assert [e.recipients for e in dropper.received] == [["b@remote.test"]]
        assert await store.list_queued() == [] and await inbox(store, alice) == []


async def test_null_mx_and_nxdomain_bounce_servfail_defers(
        store: Any, worker: Worker, zone: DnsServer, alice: Any) -> None:
    zone.add("nomail.test", "MX", "0 .")
    zone.servfail("broken.test")
    await enqueue(store, worker.clock, "x@nomail.test", "y@nowhere.test", "z@broken.test")
    await worker.run_once()
    [m] = await store.list_queued()
    assert [(r.address, r.status) for r in m.recipients] == [
        ("x@nomail.test", "failed"), ("y@nowhere.test", "failed"), ("z@broken.test", "deferred")]
    [dsn] = await inbox(store, alice)
    text = _dsn_report(dsn)
    assert "Final-Recipient: rfc822; x@nomail.test" in text and "556 5.1.10" in text
    assert "Final-Recipient: rfc822; y@nowhere.test" in text and "Status: 5.1.2" in text
    assert "Final-Recipient: rfc822; z@broken.test" not in text


async def test_a_bounce_is_never_bounced(store: Any, worker: Worker, sink: Sink,
                                         alice: Any) -> None:
    sink.handler.rcpt_replies["bad@remote.test"] = "550 5.1.1 no such user"
    await enqueue(store, worker.clock, "bad@remote.test", sender="")
    await worker.run_once()
    assert await store.list_queued() == [] and await inbox(store, alice) == []


async def test_dsn_for_a_remote_sender_is_queued_from_null_sender(
        store: Any, worker: Worker, sink: Sink) -> None:
    sink.handler.rcpt_replies["bad@other.test"] = "550 5.1.1 no such user"
    await enqueue(store, worker.clock, "bad@other.test", sender="carol@remote.test")
    await worker.run_once()
    [dsn] = await store.list_queued()
    assert dsn.sender == "" and [r.address for r in dsn.recipients] == ["carol@remote.test"]
    await worker.run_once()
    [env] = sink.received
    assert env.sender == "<>" and env.recipients == ["carol@remote.test"]  # aiosmtpd: <>
    _dsn_report(env.data)


async def test_opportunistic_starttls_to_mx(store: Any, zone: DnsServer, clock: Clock,
                                            alice: Any, tmp_path: Any) -> None:
    import ssl

    from mailwing.server.tls import ensure_self_signed

    cert, key = ensure_self_signed(tmp_path / "sinktls", "mx.remote.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    with Sink(tls_context=ctx, require_starttls=True) as tls_sink:
        worker = Worker(store, make_settings(zone, tls_sink.port), clock=clock)
        await enqueue(store, clock, "b@remote.test")
        await worker.run_once()
        [env] = tls_sink.received
        assert env.tls and env.recipients == ["b@remote.test"]


def _tls_sink_context(tmp_path: Any) -> tuple[Any, str]:
    import ssl

    from mailwing.server.tls import ensure_self_signed

    cert, key = ensure_self_signed(tmp_path / "relaytls", "relay.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx, str(cert)


async def test_smarthost_with_verified_starttls_and_auth(
        store: Any, zone: DnsServer, clock: Clock, alice: Any, tmp_path: Any) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[tuple[str, bytes, bytes]] = []

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        seen.append((mechanism, data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    ctx, cert = _tls_sink_context(tmp_path)
    with Sink(tls_context=ctx, require_starttls=True, authenticator=check,
              auth_require_tls=True) as relay:
        settings = make_settings(zone, 1, relay_host=f"127.0.0.1:{relay.port}",
                                 relay_tls="starttls", relay_ca_file=cert,
                                 relay_username="relayuser", relay_password="s3cret")
        worker = Worker(store, settings, clock=clock)
        await enqueue(store, clock, "x@no-dns-needed.test")  # the relay overrides routing
        await worker.run_once()
        [env] = relay.received
        assert env.tls and env.recipients == ["x@no-dns-needed.test"]
        assert seen == [("PLAIN", b"relayuser", b"s3cret")]
        # Without the CA the certificate cannot be verified: deferred, never sent in clear.
        settings.outbound.relay_ca_file = ""
        await enqueue(store, clock, "y@no-dns-needed.test", queue_id="Q2")
        await Worker(store, settings, clock=clock).run_once()
        [m] = await store.list_queued()
        assert m.recipients[0].status == "deferred" and "TLS" in m.recipients[0].last_reply
        assert len(relay.received) == 1


async def test_mx_with_a_broken_tls_handshake_gets_the_mail_in_plaintext(
        store: Any, zone: DnsServer, clock: Clock, alice: Any, tmp_path: Any) -> None:
    import ssl

    ctx, _ = _tls_sink_context(tmp_path)
    ctx.verify_mode = ssl.CERT_REQUIRED  # demands a client certificate: our handshake fails
    with Sink(tls_context=ctx) as picky:
        worker = Worker(store, make_settings(zone, picky.port), clock=clock)
        await enqueue(store, clock, "b@remote.test")
        await worker.run_once()
        [env] = picky.received
        assert not env.tls and env.recipients == ["b@remote.test"]
        assert await store.list_queued() == []


async def test_per_destination_concurrency_is_bounded(
        store: Any, zone: DnsServer, sink: Sink, clock: Clock, alice: Any) -> None:
    import asyncio

    live, peak = [0], [0]
    original = sink.handler.handle_DATA

    async def counting(server: Any, session: Any, envelope: Any) -> str:
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        try:
            await asyncio.sleep(0.2)
            return await original(server, session, envelope)
        finally:
            live[0] -= 1

    sink.handler.handle_DATA = counting  # type: ignore[method-assign]
    worker = Worker(store, make_settings(zone, sink.port, max_per_destination=2), clock=clock)
    for i in range(6):
        await enqueue(store, clock, f"u{i}@remote.test", queue_id=f"Q{i}")
    assert await worker.run_once() == 6
    assert len(sink.received) == 6 and 1 <= peak[0] <= 2
