"""``/metrics`` over real HTTP: every family the issue names, fed by real sessions; with two
workers the figures of both are summed (prometheus-client multiprocess mode; each worker
publishes every second and when it stops, so those checks poll). Also: the
admin listener's failure throttle and its TLS mode."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from mailwing.services import metrics
from tests.adminkit import ALICE, PASSWORD, client, enqueue, start_admin
from tests.dnsfixtures import DnsServer, dns_server  # noqa: F401
from tests.protocol.test_outbound_serve import ALICE as OUT_ALICE
from tests.protocol.test_outbound_serve import PASSWORD as OUT_PASSWORD
from tests.protocol.test_outbound_serve import (
    inbox,
    outbound_config,
    queue_empty,
    sink,  # noqa: F401
    submit,
    zone,  # noqa: F401
)
from tests.queue.sinks import Sink, wait_for
from tests.support import MailwingServer


def scrape(srv: MailwingServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with client(srv) as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum over every label set that includes ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def test_metric_families_follow_the_sessions(server_factory: type[MailwingServer],
                                             tmp_path: Path) -> None:
    srv, _ = start_admin(server_factory, tmp_path / "srv",
                         enable=("admin", "imap", "pop3", "smtp", "submission"))
    srv.add_user(ALICE, PASSWORD)
    srv.cli("user", "add", "tiny@example.org", "--quota", "100", "--password-stdin",
            input=b"pw\n")
    enqueue(srv, "QMETRICS1")
    before = scrape(srv)  # the start-up probes of the test helper connected already
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, "wrong")
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    imap.noop()
    imap.logout()
    pop = poplib.POP3("127.0.0.1", srv.ports["pop3"])
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.stat()
    pop.quit()
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"]) as s:
        s.sendmail("carol@example.net", [ALICE], b"Subject: hi\r\n\r\nhello\r\n")
        s.ehlo("client.test")
        assert s.mail("carol@example.net")[0] == 250  # no SIZE: the quota bites after DATA
        assert s.rcpt("tiny@example.org")[0] == 250
        refused = s.data(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 60)[0]
        assert 400 <= refused < 600  # over quota
    m = scrape(srv)
    for listener in ("imap", "pop3", "smtp"):
        assert value(m, "mailwing_connections_total", listener=listener) == value(
            before, "mailwing_connections_total", listener=listener) + 1
    assert value(m, "mailwing_connections_current", listener="imap") == 0
    assert value(m, "mailwing_sessions_total", listener="imap", result="ok") == value(
        before, "mailwing_sessions_total", listener="imap", result="ok") + 1
    assert value(m, "mailwing_logins_total", protocol="imap", mechanism="LOGIN",
                 outcome="ok") == 1
    assert total(m, "mailwing_logins_total", protocol="imap") == 2  # one failure too
    assert value(m, "mailwing_logins_total", protocol="pop3", mechanism="USER",
                 outcome="ok") == 1
    assert value(m, "mailwing_smtp_messages_received_total", listener="smtp") == 1
    assert value(m, "mailwing_smtp_messages_refused_total", listener="smtp",
                 code=str(refused)) == 1
    assert value(m, "mailwing_smtp_delivered_local_total") == 1
    assert value(m, "mailwing_commands_total", protocol="imap", command="SELECT") == 1
    assert value(m, "mailwing_commands_total", protocol="pop3", command="STAT") == 1
    assert value(m, "mailwing_command_duration_seconds_count", protocol="imap",
                 command="NOOP") == 1
    assert total(m, "mailwing_storage_operation_duration_seconds_count",
                 operation="get_user") >= 2
    assert value(m, "mailwing_queue_depth", state="pending") == 1
    assert total(m, "mailwing_auth_cache_lookups_total") >= 1
    assert 0.0 <= value(m, "mailwing_auth_cache_hit_ratio") <= 1.0
    with client(srv) as c:
        text = c.get("/metrics").text
    assert 'mailwing_outbound_delivery_attempts_total{result="delivered"} 0.0' in text
    assert "mailwing_outbound_bounces_total 0.0" in text


def settled(srv: MailwingServer, name: str, **labels: str) -> float:
    """A figure once every worker has published it: the other worker's figures reach a
    scrape at its next periodic flush (``metrics.FLUSH_INTERVAL``), so wait until two
    scrapes more than two intervals apart agree."""
    last = value(scrape(srv), name, **labels)
    for _ in range(20):
        time.sleep(2.5 * metrics.FLUSH_INTERVAL)
        now = value(scrape(srv), name, **labels)
        if now == last:
            return now
        last = now
    raise AssertionError(f"{name} never settled (last {last})")


def test_two_workers_are_summed(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path / "srv", enable=("admin", "imap"),
                         extra_config="[outbound]\nenabled = false\n")
    text = srv.config_path.read_text()
    srv.config_path.write_text(text.replace("[server]\n", "[server]\nworkers = 2\n", 1))
    srv.start()
    srv.add_user(ALICE, PASSWORD)
    start = settled(srv, "mailwing_connections_total", listener="imap")  # the probes
    connections = 24
    for _ in range(connections):
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
        imap.login(ALICE, PASSWORD)
        imap.logout()
    # the worker that did not answer the scrape publishes within a flush interval
    wait_for(lambda: total(scrape(srv), "mailwing_logins_total", protocol="imap",
                           outcome="ok") == connections)
    pids = {line.split("worker pid ")[1].split()[0] for line in srv.log_text().splitlines()
            if "(admin, http)" in line}
    assert len(pids) == 2  # both workers serve the admin port
    imap_pids = {line.split("worker pid ")[1].split()[0] for line in srv.log_text().splitlines()
                 if "(imap)" in line and "listening" in line}
    assert len(imap_pids) == 2
    for _ in range(6):  # whichever worker answers, the sum is the same
        m = scrape(srv)
        assert value(m, "mailwing_connections_total", listener="imap") == start + connections
        assert total(m, "mailwing_logins_total", protocol="imap", outcome="ok") == connections
    assert (srv.data_dir / "metrics").is_dir()
    # live connections in the status API are every worker's too
    token = srv.cli("admin", "token", "create", "w").stdout.decode().strip()
    held = [imaplib.IMAP4("127.0.0.1", srv.ports["imap"]) for _ in range(6)]
    try:
        for conn in held:
            conn.noop()  # the greeting was read: the session is live in some worker
        with client(srv, token) as c:
            for _ in range(6):
                listeners = c.get("/api/v1/status").json()["listeners"]
                imap_live = [x["connections"] for x in listeners if x["name"] == "imap"]
                assert imap_live == [6]
    finally:
        for conn in held:
            conn.logout()
    # a graceful stop publishes what each worker recorded since its last flush
    assert srv.stop() == 0
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(srv.data_dir / "metrics"))  # type: ignore[no-untyped-call,unused-ignore]
    files = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for fam in registry.collect() for s in fam.samples}
    assert value(files, "mailwing_connections_total", listener="imap") == (
        start + connections + len(held))
    assert total(files, "mailwing_logins_total", protocol="imap", outcome="ok") == connections
    assert total(files, "mailwing_commands_total", protocol="imap", command="NOOP") == len(held)


def test_sqlite_write_lock_figures(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    """SQLite's writers' queue (``storage/sqlite/writelock.py``): transactions and the time
    the lock was held, from the worker that wrote (an IMAP APPEND)."""
    srv = server_factory(root=tmp_path / "srv", enable=("admin", "imap"),
                         extra_config="[outbound]\nenabled = false\n")
    srv.start()
    srv.add_user(ALICE, PASSWORD)
    before = scrape(srv)
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    imap.login(ALICE, PASSWORD)
    imap.append("INBOX", None, None, b"Subject: lock\r\n\r\nqueued\r\n")
    imap.logout()
    m = scrape(srv)
    name = "mailwing_sqlite_write_transactions_total"
    written = value(m, name, kind="all")
    assert written > value(before, name, kind="all")
    assert value(m, name, kind="waited") <= written
    held = value(m, "mailwing_sqlite_write_lock_seconds_total", part="held")
    assert held > value(before, "mailwing_sqlite_write_lock_seconds_total", part="held")
    assert value(m, "mailwing_sqlite_write_lock_seconds_total", part="held_cpu") >= 0.0


def test_failed_tokens_are_throttled_per_ip(server_factory: type[MailwingServer],
                                            tmp_path: Path) -> None:
    srv, token = start_admin(server_factory, tmp_path / "srv", enable=("admin",),
                             extra="[auth]\nmax_failures_per_ip = 3\nfailure_delay = 0\n")
    with client(srv) as c:
        for _ in range(3):
            assert c.get("/api/v1/status", headers={"Authorization": "Bearer mwa_x"}
                         ).status_code == 401
        r = c.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert c.get("/healthz").status_code == 200  # probes are not behind the token
    assert srv.log_text().count("admin authentication failed") == 3
    assert "too many failed logins" in srv.log_text()


def test_tls_when_configured(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv, token = start_admin(server_factory, tmp_path / "srv", enable=("admin",),
                             extra='[admin]\ntls = "on"\n')
    ctx = ssl.create_default_context(cafile=str(srv.cert_path))
    ctx.check_hostname = False  # the test certificate names mail.test; we dial 127.0.0.1
    url = f"https://127.0.0.1:{srv.ports['admin']}"
    with httpx.Client(base_url=url, verify=ctx, timeout=30) as c:
        assert c.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"}
                     ).status_code == 200
        login = c.get("/login")
        assert "secure" in login.headers["set-cookie"].lower()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{srv.ports['admin']}/healthz", timeout=5)


def test_outbound_attempts_and_bounces(server_factory: type[MailwingServer], tmp_path: Path,
                                       zone: DnsServer, sink: Sink) -> None:  # noqa: F811
    srv = server_factory(root=tmp_path / "srv", enable=("smtp", "submission", "admin"),
                         database_url=f"sqlite:///{tmp_path / 'out.db'}",
                         extra_config=outbound_config(zone, sink.port))
    srv.start()
    srv.add_user(OUT_ALICE, OUT_PASSWORD)
    sink.handler.rcpt_replies["nobody@remote.test"] = "550 5.1.1 nobody: user unknown"
    submit(srv, ["x@remote.test"], subject="ok")
    submit(srv, ["nobody@remote.test"], subject="bad")
    wait_for(lambda: queue_empty(srv))
    wait_for(lambda: inbox(srv, OUT_ALICE))  # the DSN
    m = scrape(srv)
    assert value(m, "mailwing_outbound_delivery_attempts_total", result="delivered") == 1
    assert value(m, "mailwing_outbound_delivery_attempts_total", result="failed") == 1
    assert value(m, "mailwing_outbound_bounces_total") == 1
    assert value(m, "mailwing_smtp_messages_received_total", listener="submission") == 2
    assert value(m, "mailwing_smtp_delivered_local_total") == 0  # the DSN is not SMTP
