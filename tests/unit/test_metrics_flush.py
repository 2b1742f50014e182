"""The metrics hooks record in-process and :func:`metrics.flush` publishes: the published
figures equal what direct prometheus-client calls would have produced (counters, histogram
buckets, sum and count), a flush never publishes twice, and a worker's exit flush (and its
periodic one) leaves everything in the multiprocess files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from mailwing.services import metrics

LISTENERS = {"imap": "imap", "pop3": "pop3", "smtp": "smtp", "submission": "smtp"}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """Metrics switched on in this process (single-process values) with fresh state; the
    module's globals are put back afterwards."""
    reg = CollectorRegistry()
    monkeypatch.setattr(metrics, "_families", metrics._Families(reg))
    monkeypatch.setattr(metrics, "_registry", reg)
    monkeypatch.setattr(metrics, "_multiprocess_dir", None)
    monkeypatch.setattr(metrics, "_PROTOCOL_OF", dict(LISTENERS))
    for name in ("_pending", "_counter_children", "_histogram_of", "_command_local",
                 "_storage_local", "_gauge_children"):
        monkeypatch.setattr(metrics, name, {})
    monkeypatch.setattr(metrics, "_histograms", [])
    monkeypatch.setattr(metrics, "_watched", [])
    monkeypatch.setattr(metrics, "_watched_seen", {})
    return reg


def samples(reg: CollectorRegistry, family: str) -> dict[tuple[Any, ...], float]:
    out = {}
    for fam in reg.collect():
        if fam.name == family:
            for s in fam.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_are_published_by_the_flush_once(registry: CollectorRegistry) -> None:
    for _ in range(3):
        metrics.command("imap", "select", None)
    metrics.command("pop3", "RETR", None)
    metrics.command("pop3", "XYZZY", None)
    metrics.login("imap", "plain", "ok")
    metrics.smtp_message("smtp", True, 250)
    metrics.smtp_message("smtp", False, 552)
    metrics.delivered_local(3)
    metrics.delivery_attempt("deferred")
    metrics.bounce()
    metrics.auth_cache(True)
    metrics.auth_cache(False)
    metrics.connection_opened("imap")
    metrics.connection_closed("imap", "ok")
    cmds = ("mailwing_commands_total",)
    assert not any(v for v in samples(registry, "mailwing_commands").values())
    metrics.flush()
    m = samples(registry, "mailwing_commands")
    assert m == {(*cmds, (("command", "SELECT"), ("protocol", "imap"))): 3.0,
                 (*cmds, (("command", "RETR"), ("protocol", "pop3"))): 1.0,
                 (*cmds, (("command", "other"), ("protocol", "pop3"))): 1.0}
    metrics.flush()  # nothing new: nothing added
    assert samples(registry, "mailwing_commands") == m
    metrics.command("imap", "SELECT", None)
    metrics.flush()
    assert samples(registry, "mailwing_commands")[
        (*cmds, (("command", "SELECT"), ("protocol", "imap")))] == 4.0

    def one(family: str, **labels: str) -> float:
        got = samples(registry, family)
        return got[(family + "_total", tuple(sorted(labels.items())))]

    assert one("mailwing_logins", protocol="imap", mechanism="PLAIN", outcome="ok") == 1
    assert one("mailwing_smtp_messages_received", listener="smtp") == 1
    assert one("mailwing_smtp_messages_refused", listener="smtp", code="552") == 1
    assert one("mailwing_smtp_delivered_local") == 3
    assert one("mailwing_outbound_delivery_attempts", result="deferred") == 1
    assert one("mailwing_outbound_delivery_attempts", result="delivered") == 0
    assert one("mailwing_outbound_bounces") == 1
    assert one("mailwing_auth_cache_lookups", result="hit") == 1
    assert one("mailwing_auth_cache_lookups", result="miss") == 1
    assert one("mailwing_connections", listener="imap") == 1
    assert one("mailwing_sessions", listener="imap", result="ok") == 1
    assert samples(registry, "mailwing_connections_current")[
        ("mailwing_connections_current", (("listener", "imap"),))] == 0


# on, just below and just above bucket bounds, zero, past the last bound (+Inf)
AMOUNTS = [0.0, 0.0001, 0.0005, 0.00050001, 0.001, 0.0024999, 0.0025, 0.003, 0.0099, 0.05,
           0.2, 0.5, 0.75, 1.0, 2.5, 4.0, 10.0, 10.000001, 42.0, 0.0005, 0.0005]


def direct(amounts: list[float]) -> dict[tuple[Any, ...], float]:
    """What observing every amount on a prometheus-client histogram gives."""
    reg = CollectorRegistry()
    h = Histogram("mailwing_command_duration_seconds", "x", ["protocol", "command"],
                  buckets=metrics._LATENCY_BUCKETS, registry=reg)
    for a in amounts:
        h.labels("imap", "NOOP").observe(a)
    return samples(reg, "mailwing_command_duration_seconds")


def test_histograms_equal_direct_observation(registry: CollectorRegistry) -> None:
    for a in AMOUNTS:
        metrics.command("imap", "NOOP", a)
    metrics.flush()
    assert samples(registry, "mailwing_command_duration_seconds") == direct(AMOUNTS)
    more = [0.004, 0.0005, 99.0, 0.02]
    for a in more:
        metrics.command("imap", "noop", a)  # the same child through another cached key
    metrics.flush()
    metrics.flush()
    got = samples(registry, "mailwing_command_duration_seconds")
    want = direct(AMOUNTS + more)
    assert got.keys() == want.keys()
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-12)  # the sum: another addition order
    count = ("mailwing_command_duration_seconds_count",
             (("command", "NOOP"), ("protocol", "imap")))
    assert got[count] == len(AMOUNTS) + len(more)


def test_storage_timings_are_histograms_too(registry: CollectorRegistry) -> None:
    for a in AMOUNTS:
        metrics.storage_op("get_user", a)
    metrics.flush()
    got = samples(registry, "mailwing_storage_operation_duration_seconds")
    want = {(name.replace("mailwing_command_duration_seconds",
                          "mailwing_storage_operation_duration_seconds"),
             tuple(sorted({**{k: v for k, v in labels if k == "le"},
                           "operation": "get_user"}.items()))): v
            for (name, labels), v in direct(AMOUNTS).items()}
    assert got == want


def test_an_unexpected_histogram_shape_observes_directly(registry: CollectorRegistry) -> None:
    class Child:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    assert not metrics._bulk_capable(Child())
    local = metrics._DirectHistogram(Child())
    local.observe(0.5)
    local.flush()
    assert local.observe.__self__.seen == [0.5]  # type: ignore[attr-defined]
    real = metrics._histogram("storage_seconds", "x")
    assert isinstance(real, metrics._LocalHistogram)  # the installed version is bulk-capable


def test_no_hook_records_before_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_families", None)
    monkeypatch.setattr(metrics, "_pending", {})
    metrics.command("imap", "NOOP", None)
    metrics.storage_op("get_user", 0.1)
    metrics.flush()
    assert metrics._pending == {}
    assert metrics.start_flushing() is None


WORKER = r"""
import asyncio, json, os, sys
from pathlib import Path
from mailwing.services import metrics

folder = Path(sys.argv[1])
metrics.setup({"imap": "imap"}, folder)  # before prometheus-client's values module loads
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

def files():
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(folder))
    return {s.name + json.dumps(s.labels, sort_keys=True): s.value
            for fam in reg.collect() for s in fam.samples}

async def main():
    out = {}
    task = metrics.start_flushing(0.05)
    metrics.command("imap", "NOOP", None)
    metrics.command("imap", "NOOP", 0.003)
    for _ in range(200):  # the periodic flush publishes without help
        await asyncio.sleep(0.05)
        if files().get('mailwing_commands_total{"command": "NOOP", "protocol": "imap"}'):
            break
    out["periodic"] = files()
    metrics.stop_flushing(task)
    task = metrics.start_flushing(3600)  # never fires: only the exit flush publishes
    for i in range(1000):
        metrics.command("imap", "LOGOUT", None)
        metrics.storage_op("get_user", i / 1000)
    metrics.login("imap", "LOGIN", "ok")
    out["before exit"] = files()
    metrics.stop_flushing(task)
    out["after exit"] = files()
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # like a forked worker: no interpreter clean-up, no atexit

asyncio.run(main())
"""


def test_the_periodic_and_the_exit_flush_reach_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    run = subprocess.run([sys.executable, "-c", WORKER, str(folder)], capture_output=True,
                         check=True, timeout=60)
    out = json.loads(run.stdout)
    noop = '{"command": "NOOP", "protocol": "imap"}'
    assert out["periodic"]["mailwing_commands_total" + noop] == 1
    assert out["periodic"]["mailwing_command_duration_seconds_count" + noop] == 1
    logout = '{"command": "LOGOUT", "protocol": "imap"}'
    login = '{"mechanism": "LOGIN", "outcome": "ok", "protocol": "imap"}'
    assert out["before exit"].get("mailwing_commands_total" + logout, 0) == 0
    after = out["after exit"]
    assert after["mailwing_commands_total" + logout] == 1000
    assert after["mailwing_logins_total" + login] == 1
    op = '{"operation": "get_user"}'
    assert after["mailwing_storage_operation_duration_seconds_count" + op] == 1000
    assert after["mailwing_storage_operation_duration_seconds_sum" + op] == pytest.approx(
        sum(i / 1000 for i in range(1000)))
    inf = '{"le": "+Inf", "operation": "get_user"}'
    le_1 = '{"le": "1.0", "operation": "get_user"}'
    le_05 = '{"le": "0.5", "operation": "get_user"}'
    assert after["mailwing_storage_operation_duration_seconds_bucket" + inf] == 1000
    assert after["mailwing_storage_operation_duration_seconds_bucket" + le_1] == 1000
    assert after["mailwing_storage_operation_duration_seconds_bucket" + le_05] == 501


def test_timed_storage_times_coroutines_and_passes_the_rest(
        registry: CollectorRegistry) -> None:
    import asyncio

    class Inner:
        limit = 1

        async def get_user(self, address: str) -> str:
            return address.upper()

        def open_content(self, sha: str) -> str:
            return "reader:" + sha

    inner = Inner()
    timed = metrics.TimedStorage(inner)
    assert asyncio.run(timed.get_user("a@b")) == "A@B"
    assert asyncio.run(timed.get_user("c@d")) == "C@D"
    assert timed.open_content("x") == timed.open_content("x") == "reader:x"
    assert "open_content" in timed._plain
    assert timed.limit == 1
    inner.limit = 2
    assert timed.limit == 2  # values are not kept
    metrics.flush()
    got = samples(registry, "mailwing_storage_operation_duration_seconds")
    assert got[("mailwing_storage_operation_duration_seconds_count",
                (("operation", "get_user"),))] == 2
    assert not any("open_content" in str(key) for key in got)


def test_the_write_lock_totals_are_published_as_they_grow(registry: CollectorRegistry) -> None:
    """A watched source gives running totals (``SqliteStorage.write_lock_stats``); each flush
    publishes what they grew by, so the counters equal the last totals, never twice."""
    totals = [(3, 1, 0.25, 0.125)]
    metrics.watch_write_lock(lambda: totals[-1])

    def figures() -> dict[str, float]:
        got = {**samples(registry, "mailwing_sqlite_write_transactions"),
               **samples(registry, "mailwing_sqlite_write_lock_seconds")}
        return {f"{name}:{dict(labels)}": v for (name, labels), v in got.items()}

    metrics.flush()
    metrics.flush()  # nothing new: nothing added
    totals.append((5, 1, 0.5, 0.25))
    metrics.flush()
    f = figures()
    assert f["mailwing_sqlite_write_transactions_total:{'kind': 'all'}"] == 5
    assert f["mailwing_sqlite_write_transactions_total:{'kind': 'waited'}"] == 1
    assert f["mailwing_sqlite_write_lock_seconds_total:{'part': 'held'}"] == 0.5
    assert f["mailwing_sqlite_write_lock_seconds_total:{'part': 'held_cpu'}"] == 0.25
