"""Pure parts of the admin listener: settings, DNS records, MTA-STS, autoconfig documents,
metric label bounds, the HTML sanitiser."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mailwing.admin import autoconfig
from mailwing.config import ConfigError, load_settings
from mailwing.services import metrics
from mailwing.services.dnsrecords import domain_records, mta_sts_id, mta_sts_policy
from mailwing.services.mailview import sanitize_html


def test_admin_settings_and_tls_rule() -> None:
    s = load_settings(environ={})
    assert s.admin.listen == ["127.0.0.1"] and s.admin.port == 8025
    assert s.admin.tls_enabled is False  # loopback only
    s = load_settings(environ={"MAILWING_ADMIN_LISTEN": "127.0.0.1,192.0.2.10"})
    assert s.admin.tls_enabled is True  # any non-loopback address needs TLS ...
    s = load_settings(environ={"MAILWING_ADMIN_LISTEN": "192.0.2.10",
                               "MAILWING_ADMIN_TLS": "off"})
    assert s.admin.tls_enabled is False  # ... unless configured otherwise
    for var, value in (("MAILWING_ADMIN_TLS", "maybe"), ("MAILWING_ADMIN_LISTEN", "nope"),
                       ("MAILWING_ADMIN_MTA_STS_MODE", "strict"),
                       ("MAILWING_ADMIN_SESSION_TTL", "10s")):
        with pytest.raises(ConfigError, match="admin"):
            load_settings(environ={var: value})


def test_dns_records(tmp_path: Path) -> None:
    s = load_settings(environ={"MAILWING_SERVER_HOSTNAME": "mx.example.org",
                               "MAILWING_SERVER_DATA_DIR": str(tmp_path),
                               "MAILWING_POP3_PORT": "0"})
    records = {(r.kind, r.name): r for r in domain_records(s, "Example.ORG.")}
    assert records[("MX", "example.org.")].zone_line == "example.org. IN MX 10 mx.example.org."
    assert records[("SPF", "example.org.")].value == '"v=spf1 mx -all"'
    assert records[("DMARC", "_dmarc.example.org.")].value.startswith('"v=DMARC1; p=')
    assert records[("SRV", "_submission._tcp.example.org.")].value == \
        "0 1 2587 mx.example.org."
    assert records[("SRV", "_pop3._tcp.example.org.")].value == "0 0 0 ."
    assert ("DKIM", "x") not in records
    from mailwing.mailauth.dkimkeys import generate_key

    generate_key(tmp_path, "example.org", "sel", "ed25519")
    records = {(r.kind, r.name): r for r in domain_records(s, "example.org")}
    assert records[("DKIM", "sel._domainkey.example.org.")].value.startswith(
        '"v=DKIM1; k=ed25519; p=')


def test_mta_sts_policy_and_id_change_together() -> None:
    s = load_settings(environ={"MAILWING_SERVER_HOSTNAME": "mx.example.org"})
    policy = mta_sts_policy(s)
    assert policy == ("version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\n"
                      "max_age: 604800\r\n")
    first = mta_sts_id(s)
    s.admin.mta_sts_mode = "enforce"
    assert mta_sts_id(s) != first and first.isalnum() and len(first) <= 32


def test_autoconfig_documents_parse() -> None:
    s = load_settings(environ={"MAILWING_SERVER_HOSTNAME": "mx.example.org"})
    root = ET.fromstring(autoconfig.thunderbird_config(s, "ex<ample>.org"))
    assert root.find("emailProvider/domain").text == "ex<ample>.org"  # type: ignore[union-attr]
    profile = plistlib.loads(autoconfig.apple_profile(s, "a@example.org"))
    assert profile["PayloadContent"][0]["IncomingMailServerHostName"] == "mx.example.org"
    ET.fromstring(autoconfig.autodiscover_response(s, "a&b@example.org"))
    assert autoconfig.autodiscover_address(
        b"<a:EMailAddress> x@example.org </a:EMailAddress>") == "x@example.org"
    assert autoconfig.autodiscover_address(b"<EMailAddress>nobody</EMailAddress>") is None
    assert autoconfig.autodiscover_address(b"<!DOCTYPE x [<!ENTITY a 'b'>]>&a;") is None


def test_command_labels_are_bounded() -> None:
    label = metrics._command_label
    assert label("smtp", "ehlo") == "EHLO" and label("smtp", "XYZZY") == "other"
    assert label("pop3", "retr") == "RETR" and label("pop3", "A" * 100) == "other"
    assert label("imap", "UID FETCH".replace(" ", "")) == "UIDFETCH"
    assert label("imap", "x" * 40) == "other" and label("imap", "a;b") == "other"


def test_sanitiser_drops_active_and_remote_content() -> None:
    dirty = ('<p onclick="x()">hi<img src="https://t.example/p.gif"><script>x()</script>'
             '<iframe src="https://e.example"></iframe><a href="javascript:x()">j</a>'
             '<a href="https://ok.example/">ok</a><style>p{}</style>'
             '<svg><image href="https://t.example/s.png"/></svg></p>')
    clean = sanitize_html(dirty)
    for bad in ("onclick", "<img", "<script", "<iframe", "javascript:", "<style", "<svg",
                "t.example"):
        assert bad not in clean
    assert 'href="https://ok.example/"' in clean and 'rel="noopener noreferrer nofollow"' in clean


def test_a_dead_workers_live_gauges_are_dropped(tmp_path: Path) -> None:
    for name in ("gauge_livesum_41.db", "counter_41.db", "gauge_livesum_42.db"):
        (tmp_path / name).write_bytes(b"x")
    metrics.process_exited(tmp_path, 41)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_41.db",
                                                          "gauge_livesum_42.db"]
    metrics.process_exited(tmp_path, 41)  # twice is harmless
