"""The admin JSON API over real HTTP against ``mailwing serve``, on SQLite and PostgreSQL:
tokens from the CLI, 401s, domains, users, mailboxes and messages, the queue (the same
service as ``mailwing queue``), DKIM and DNS records, status, health and OpenAPI."""

from __future__ import annotations

import hashlib
import imaplib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adminkit import ALICE, PASSWORD, client, enqueue, message, start_admin
from tests.support import MailwingServer


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path,
           database_url: str) -> tuple[MailwingServer, str]:
    return start_admin(server_factory, tmp_path / "srv", database_url)


def test_tokens_401_and_revocation(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    with client(srv) as anon:
        r = anon.get("/api/v1/users")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert anon.get("/api/v1/users", headers={"Authorization": "Bearer mwa_nope"}
                        ).status_code == 401
        assert anon.get("/api/v1/users", headers={"Authorization": f"Basic {token}"}
                        ).status_code == 401
    with client(srv, token) as c:
        assert c.get("/api/v1/users").status_code == 200
    assert "admin authentication failed" in srv.log_text()
    listing = srv.cli("admin", "token", "list").stdout.decode()
    assert "tests\t" in listing and token not in listing
    if srv.database_url.startswith("sqlite:///"):
        db = Path(srv.database_url.removeprefix("sqlite:///"))
        wal = db.with_name(db.name + "-wal")  # WAL mode: recent rows may not be checkpointed
        stored = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert token.encode() not in stored  # only the digest is kept
        assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    srv.cli("admin", "token", "revoke", "tests")
    with client(srv, token) as c:
        assert c.get("/api/v1/users").status_code == 401
    bad = srv.cli("admin", "token", "revoke", "tests", check=False)
    assert bad.returncode == 1 and b"no token named tests" in bad.stderr
    bad = srv.cli("admin", "token", "create", "no spaces", check=False)
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1


def test_domains_and_users(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    with client(srv, token) as c:
        assert c.post("/api/v1/domains", json={"name": "Example.ORG"}).status_code == 201
        assert c.post("/api/v1/domains", json={"name": "example.org"}).status_code == 409
        assert c.post("/api/v1/domains", json={"name": "bad domain"}).status_code == 400
        r = c.post("/api/v1/users", json={"address": ALICE, "password": PASSWORD,
                                          "quota": 1000000})
        assert r.status_code == 201 and r.json()["quota"] == 1000000
        for i in range(5):
            c.post("/api/v1/users", json={"address": f"u{i}@other.test", "password": "x"})
        assert c.post("/api/v1/users", json={"address": ALICE, "password": "x"}
                      ).status_code == 409
        assert c.post("/api/v1/users", json={"address": "nope", "password": "x"}
                      ).status_code == 400
        page = c.get("/api/v1/users", params={"offset": 2, "limit": 2}).json()
        assert page["total"] == 6 and [u["address"] for u in page["users"]] == [
            "u1@other.test", "u2@other.test"]
        assert c.get("/api/v1/users", params={"domain": "example.org"}).json()["total"] == 1
        assert c.get("/api/v1/users", params={"limit": 100000}).status_code == 422
        assert [d["name"] for d in c.get("/api/v1/domains").json()] == [
            "example.org", "other.test"]

        # the password given through the API works for IMAP; changing it too
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
        imap.login(ALICE, PASSWORD)
        imap.logout()
        assert c.patch(f"/api/v1/users/{ALICE}", json={"password": "new-pw-2"}
                       ).status_code == 200
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
        imap.login(ALICE, "new-pw-2")
        imap.logout()
        r = c.patch(f"/api/v1/users/{ALICE}", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(ALICE, "new-pw-2")
        assert c.patch("/api/v1/users/ghost@example.org", json={"enabled": True}
                       ).status_code == 404
        # quota: the same service as `mailwing user quota`
        r = c.patch("/api/v1/users/u1@other.test", json={"quota": 5 * 1024 * 1024})
        assert r.status_code == 200 and r.json()["quota"] == 5 * 1024 * 1024
        listing = srv.cli("user", "list").stdout.decode()
        assert re.search(r"u1@other\.test\s.*\s5M", listing), listing
        assert c.patch("/api/v1/users/u1@other.test", json={"quota": 0}).json()["quota"] == 0
        assert c.patch("/api/v1/users/u1@other.test", json={"quota": -1}).status_code == 422
        assert c.patch("/api/v1/users/ghost@other.test", json={"quota": 1}).status_code == 404

        # a domain with users is refused unless forced
        r = c.delete("/api/v1/domains/other.test")
        assert r.status_code == 409 and "still has users" in r.json()["detail"]
        assert c.delete("/api/v1/domains/other.test", params={"force": "true"}
                        ).status_code == 204
        assert c.get("/api/v1/users").json()["total"] == 1
        assert c.delete(f"/api/v1/users/{ALICE}").status_code == 204
        assert c.get(f"/api/v1/users/{ALICE}").status_code == 404
    # the password never reaches the log
    assert PASSWORD not in srv.log_text() and "new-pw-2" not in srv.log_text()
    # the CLI sees what the API did (one service layer)
    assert srv.cli("domain", "list").stdout.decode().split() == ["example.org"]


def test_mailboxes_and_messages(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    srv.add_user(ALICE, PASSWORD)
    srv.deliver(ALICE, message("first"))
    srv.deliver(ALICE, message("second", "plain part",
                               '<p>rich <img src="https://tracker.example/x.png">'
                               '<script>alert(1)</script><b onclick="x()">text</b></p>'))
    base = f"/api/v1/users/{ALICE}/mailboxes"
    with client(srv, token) as c:
        boxes = {b["name"]: b for b in c.get(base).json()}
        assert set(boxes) >= {"INBOX", "Sent", "Trash"}
        assert boxes["INBOX"]["messages"] == 2 and boxes["INBOX"]["unseen"] == 2
        assert boxes["INBOX"]["bytes"] > 0 and boxes["Sent"]["special_use"] == "\\Sent"
        page = c.get(f"{base}/INBOX/messages", params={"limit": 1}).json()
        assert page["total"] == 2 and page["messages"][0]["subject"] == "second"
        assert page["messages"][0]["uid"] == 2 and "carol@example.net" in page[
            "messages"][0]["sender"]
        raw = c.get(f"{base}/INBOX/messages/1/raw")
        assert raw.headers["content-type"] == "message/rfc822"
        assert raw.content.endswith(message("first")) and b"Return-Path:" in raw.content
        shown = c.get(f"{base}/INBOX/messages/2").json()
        assert ("Subject", "second") in [tuple(h) for h in shown["headers"]]
        assert shown["text"].strip() == "plain part"
        assert "<b>text</b>" in shown["html"]
        for bad in ("<img", "<script", "onclick", "tracker.example"):
            assert bad not in shown["html"]
        assert c.get(f"{base}/INBOX/messages/99").status_code == 404
        assert c.get(f"{base}/Nope/messages").status_code == 404
        assert c.delete(f"{base}/INBOX/messages/1").status_code == 204
        assert c.get(f"{base}/INBOX/messages").json()["total"] == 1
        assert c.delete(f"{base}/INBOX/messages/1").status_code == 404


def test_queue_through_the_shared_service(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    enqueue(srv, "Q1ADMIN")
    enqueue(srv, "Q2ADMIN", "carl@remote.test")
    with client(srv, token) as c:
        listed = c.get("/api/v1/queue").json()
        assert [m["id"] for m in listed] == ["Q1ADMIN", "Q2ADMIN"]
        assert listed[0]["state"] == "pending" and listed[0]["recipients"][0]["address"] == \
            "bob@remote.test"
        shown = c.get("/api/v1/queue/Q1ADMIN").json()
        assert shown["subject"] == "queued Q1ADMIN" and shown["sender"] == ALICE
        before = shown["next_attempt"]
        retried = c.post("/api/v1/queue/Q1ADMIN/retry").json()
        assert retried["next_attempt"] < before
        assert c.delete("/api/v1/queue/Q2ADMIN").status_code == 204
        assert c.get("/api/v1/queue/Q2ADMIN").status_code == 404
        assert c.post("/api/v1/queue/Q2ADMIN/retry").status_code == 404
        status = c.get("/api/v1/status").json()
        assert sum(status["queue"].values()) == 1
    out = srv.cli("queue", "list").stdout.decode()
    assert "Q1ADMIN" in out and "Q2ADMIN" not in out
    gone = srv.cli("queue", "show", "Q2ADMIN", check=False)
    assert gone.returncode == 1 and gone.stderr.decode() == \
        "mailwing: error: no queued message Q2ADMIN\n"


def test_dkim_dns_status_health_openapi(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    srv.add_user(ALICE, PASSWORD)
    with client(srv, token) as c:
        records = c.get("/api/v1/domains/example.org/dns").json()
        kinds = {r["kind"] for r in records}
        assert kinds == {"MX", "SPF", "DMARC", "MTA-STS", "TLS-RPT", "SRV"}  # no DKIM key yet
        key = c.post("/api/v1/domains/example.org/dkim", json={"selector": "s1",
                                                               "algorithm": "ed25519"})
        assert key.status_code == 201 and "s1._domainkey.example.org." in key.json()["record"]
        assert c.post("/api/v1/domains/example.org/dkim", json={"selector": "s1"}
                      ).status_code == 409
        assert c.post("/api/v1/domains/nowhere.test/dkim", json={}).status_code == 404
        records = {(r["kind"], r["name"]): r for r in
                   c.get("/api/v1/domains/example.org/dns").json()}
        dkim = records[("DKIM", "s1._domainkey.example.org.")]
        assert dkim["value"].startswith('"v=DKIM1; k=ed25519; p=')
        assert records[("MX", "example.org.")]["value"] == "10 mail.test."
        imap_srv = records[("SRV", "_imap._tcp.example.org.")]["value"]
        assert imap_srv == f"0 1 {srv.ports['imap']} mail.test."
        assert records[("SRV", "_pop3s._tcp.example.org.")]["value"] == "0 0 0 ."  # disabled
        assert "v=TLSRPTv1; rua=mailto:" in records[("TLS-RPT", "_smtp._tls.example.org.")][
            "value"]
        assert c.get("/api/v1/domains/nowhere.test/dns").status_code == 404
        # the CLI lists the key the API made
        assert "s1\ted25519\tactive" in srv.cli("dkim", "list").stdout.decode()

        status = c.get("/api/v1/status").json()
        names = {(x["name"], x["port"]) for x in status["listeners"]}
        assert ("imap", srv.ports["imap"]) in names and ("admin", srv.ports["admin"]) in names
        assert status["storage"]["backend"] == (
            "postgresql" if srv.database_url.startswith("postgres") else "sqlite")
        assert status["storage"]["database_bytes"] > 0 and status["uptime_seconds"] >= 0
        assert status["version"]

        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        spec = c.get("/api/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        for path in ("/api/v1/users", "/api/v1/queue/{queue_id}/retry",
                     "/api/v1/domains/{name}/dns", "/api/v1/status"):
            assert path in spec["paths"], path
        assert "UserIn" in spec["components"]["schemas"]
        assert c.get("/").status_code in (303, 307)  # the console wants a login first


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_gets_http_errors(server: tuple[MailwingServer, str]) -> None:
    srv, token = server
    with client(srv, token) as c:
        assert c.post("/api/v1/users", content=b"{not json",
                      headers={"Content-Type": "application/json"}).status_code == 422
        assert c.post("/api/v1/users", json={"address": "a@b.c"}).status_code == 422
        assert c.post("/api/v1/users", json={"address": "a@b.c", "password": "x" * 5000}
                      ).status_code == 422
        big = c.post("/api/v1/domains", content=b"x" * (2 * 1024 * 1024),
                     headers={"Content-Type": "application/json"})
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
            for _ in range(40):
                yield b"y" * 65536

        # reading stops past 1 MiB; FastAPI reports the cut body as unparsable
        assert c.post("/api/v1/domains", content=chunks(),
                      headers={"Content-Type": "application/json"}).status_code in (400, 413)
        assert c.get("/api/v1/users", params={"offset": -1}).status_code == 422
        assert c.get(f"/api/v1/users/{ALICE}/mailboxes/INBOX/messages/abc").status_code == 422
        assert c.get("/api/v1/users/%00bad/mailboxes").status_code in (400, 404)
        assert c.get("/api/v1/nothing-here").status_code == 404
        assert c.put("/api/v1/users").status_code == 405
    assert srv.proc is not None and srv.proc.poll() is None  # still serving
    assert "Traceback" not in srv.log_text()
