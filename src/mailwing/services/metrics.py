"""Prometheus metrics: the families, the hooks the server layer calls, and the scrape text.

Figures are recorded through a handful of hook functions called from central places only:
the listener layer (connections, session results), :class:`~mailwing.server.connection.
Connection` (commands and their latency, logins, SMTP message results: every session already
reports those through ``Connection.command``/``Connection.log``), the inbound commit (local
deliveries), the outbound worker's settle step (attempts, bounces), a timing proxy around the
storage object (:class:`TimedStorage`) and the authenticator's cache. Before :func:`setup`
every hook is a no-op, so tests and CLI commands pay nothing and never import
prometheus-client.

Several workers (``server.workers > 1``) are summed with prometheus-client's *multiprocess
mode*: each process writes its values into memory-mapped files in a per-run folder under
``data_dir/metrics`` (emptied at start-up), and a scrape, answered by whichever worker the
kernel hands the connection to, merges every process's files. Counters and histograms add
up; the live-connections gauge uses ``livesum``. This was chosen over asking each worker
over a socket because it needs no extra channel and still answers when a worker is busy.
The queue depth is read from the database at scrape time (one answer for all workers).

Label values are bounded: listener names and protocols come from the configuration,
command names from fixed lists (anything else counts as ``other``), reply codes are three
digits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "TimedStorage",
    "auth_cache",
    "bounce",
    "command",
    "connection_closed",
    "connection_opened",
    "delivered_local",
    "delivery_attempt",
    "enabled",
    "live_connections",
    "login",
    "prepare_multiprocess_dir",
    "process_exited",
    "recent_activity",
    "render",
    "setup",
    "smtp_message",
]

_KNOWN_COMMANDS = {
    "smtp": {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP",
             "NOOP", "QUIT", "STARTTLS", "AUTH"},
    "pop3": {"USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT",
             "TOP", "UIDL", "CAPA", "STLS", "AUTH", "UTF8", "LANG"},
}
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)


class _Families:
    """Every metric family of one process."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        r = registry
        self.connections_current = Gauge(
            "mailwing_connections_current", "Open connections per listener", ["listener"],
            registry=r, multiprocess_mode="livesum")
        self.connections = Counter(
            "mailwing_connections", "Connections accepted per listener", ["listener"],
            registry=r)
        self.sessions = Counter(
            "mailwing_sessions", "Sessions ended, by listener and result",
            ["listener", "result"], registry=r)
        self.logins = Counter(
            "mailwing_logins", "Login attempts by protocol, mechanism and outcome",
            ["protocol", "mechanism", "outcome"], registry=r)
        self.smtp_received = Counter(
            "mailwing_smtp_messages_received", "SMTP messages accepted (250 after DATA/BDAT)",
            ["listener"], registry=r)
        self.smtp_refused = Counter(
            "mailwing_smtp_messages_refused", "SMTP messages refused, by reply code",
            ["listener", "code"], registry=r)
        self.delivered_local = Counter(
            "mailwing_smtp_delivered_local", "Message copies delivered to local mailboxes",
            registry=r)
        self.delivery_attempts = Counter(
            "mailwing_outbound_delivery_attempts", "Outbound attempts per recipient, by result",
            ["result"], registry=r)
        for result in ("delivered", "deferred", "failed"):
            self.delivery_attempts.labels(result)  # present at 0 from the start
        self.bounces = Counter(
            "mailwing_outbound_bounces", "Delivery status notifications generated", registry=r)
        self.commands = Counter(
            "mailwing_commands", "Protocol commands by protocol and name",
            ["protocol", "command"], registry=r)
        self.command_seconds = Histogram(
            "mailwing_command_duration_seconds", "Time from a command to the next read",
            ["protocol", "command"], buckets=_LATENCY_BUCKETS, registry=r)
        self.storage_seconds = Histogram(
            "mailwing_storage_operation_duration_seconds", "Storage call latency",
            ["operation"], buckets=_LATENCY_BUCKETS, registry=r)
        self.auth_cache = Counter(
            "mailwing_auth_cache_lookups", "Password verification cache lookups",
            ["result"], registry=r)


class _Recent:
    """Events per minute over the last hour, in this process (for the console dashboard)."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}

    def add(self, n: int = 1) -> None:
        minute = int(time.time() // 60)
        self._buckets[minute] = self._buckets.get(minute, 0) + n
        if len(self._buckets) > 70:
            for key in [k for k in self._buckets if k <= minute - 60]:
                del self._buckets[key]

    def last_hour(self) -> int:
        since = int(time.time() // 60) - 59
        return sum(v for k, v in self._buckets.items() if k >= since)


_received = _Recent()
_sent = _Recent()


def recent_activity() -> tuple[int, int]:
    """(messages received, messages delivered out) in the last hour, by this process."""
    return _received.last_hour(), _sent.last_hour()


_families: _Families | None = None
_command_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_storage_children: dict[str, Any] = {}  # keyed by Storage method names: a fixed set
_registry: Any = None
_multiprocess_dir: Path | None = None
_PROTOCOL_OF: dict[str, str] = {}


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """A fresh, empty folder for this run's multiprocess files (called before forking)."""
    path = Path(data_dir) / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def process_exited(multiprocess_dir: Path, pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay: they happened). Called by the
    supervising parent, which never imports prometheus-client; the files are named by
    prometheus-client's multiprocess layout (``gauge_livesum_<pid>.db``)."""
    for kind in ("livesum", "liveall", "livemax", "livemin", "livemostrecent"):
        with contextlib.suppress(OSError):
            (Path(multiprocess_dir) / f"gauge_{kind}_{pid}.db").unlink()


def setup(listener_protocols: dict[str, str], multiprocess_dir: Path | None = None) -> None:
    """Start recording in this process (once; later calls are ignored)."""
    global _families, _registry, _multiprocess_dir
    if _families is not None:
        return
    if multiprocess_dir is not None:
        # Read by prometheus-client when its value module is first imported: set it first.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiprocess_dir)
        _multiprocess_dir = multiprocess_dir
    from prometheus_client import CollectorRegistry, disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call,unused-ignore]  # *_created: noise
    _registry = CollectorRegistry(auto_describe=True)
    _PROTOCOL_OF.update(listener_protocols)
    _families = _Families(_registry)


def enabled() -> bool:
    return _families is not None


# -- hooks (no-ops before setup) -----------------------------------------------------------

def connection_opened(listener: str) -> None:
    if _families is not None:
        _families.connections.labels(listener).inc()
        _families.connections_current.labels(listener).inc()


def connection_closed(listener: str, result: str) -> None:
    if _families is not None:
        _families.connections_current.labels(listener).dec()
        _families.sessions.labels(listener, result).inc()


def _command_label(protocol: str, name: str) -> str:
    name = name.upper()
    known = _KNOWN_COMMANDS.get(protocol)
    if known is not None:
        return name if name in known else "other"
    return name if len(name) <= 16 and name.isalpha() else "other"


def command(listener: str, name: str, seconds: float | None) -> None:
    """One command finished after ``seconds`` (None: only count it)."""
    if _families is None:
        return
    key = (listener, name)
    children = _command_children.get(key)
    if children is None:  # the hot path below skips label validation and lookup
        protocol = _PROTOCOL_OF.get(listener, listener)
        label = _command_label(protocol, name)
        children = (_families.commands.labels(protocol, label),
                    _families.command_seconds.labels(protocol, label))
        if len(_command_children) < 4096:  # bounded even if names vary (they map to "other")
            _command_children[key] = children
    if seconds is None:
        children[0].inc()
    else:
        children[1].observe(seconds)


def login(listener: str, mechanism: str, outcome: str) -> None:
    if _families is not None:
        mech = mechanism.upper() if mechanism.upper() in (
            "PLAIN", "LOGIN", "USER", "APOP", "XOAUTH2", "CRAM-MD5") else "other"
        _families.logins.labels(_PROTOCOL_OF.get(listener, listener), mech, outcome[:24]).inc()


def smtp_message(listener: str, accepted: bool, code: int | None) -> None:
    if _families is None:
        return
    if accepted:
        _families.smtp_received.labels(listener).inc()
        _received.add()
    else:
        label = str(code) if code is not None and 200 <= code <= 599 else "none"
        _families.smtp_refused.labels(listener, label).inc()


def delivered_local(copies: int) -> None:
    if _families is not None and copies:
        _families.delivered_local.inc(copies)


def delivery_attempt(result: str) -> None:
    if _families is not None:
        _families.delivery_attempts.labels(result).inc()
        if result == "delivered":
            _sent.add()


def bounce() -> None:
    if _families is not None:
        _families.bounces.inc()


def auth_cache(hit: bool) -> None:
    if _families is not None:
        _families.auth_cache.labels("hit" if hit else "miss").inc()


def storage_op(operation: str, seconds: float) -> None:
    if _families is not None:
        child = _storage_children.get(operation)
        if child is None:
            child = _storage_children[operation] = _families.storage_seconds.labels(operation)
        child.observe(seconds)


# -- storage timing --------------------------------------------------------------------------

class TimedStorage:
    """Wraps a storage object: every coroutine method call is timed under its name; other
    attributes (content readers and writers, constants) pass through untouched."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        """Only reached on the first use of a name: a coroutine method's timed wrapper is
        then kept as an instance attribute, so later calls (every storage call of every
        session) find it directly, without this lookup or ``inspect``."""
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value) or not _is_coroutine(value):
            return value
        wrapped = _timed(name, value)
        setattr(self, name, wrapped)
        return wrapped


def _is_coroutine(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await func(*args, **kwargs)
        finally:
            storage_op(name, time.perf_counter() - started)

    call.__name__ = name
    return call


# -- the scrape ------------------------------------------------------------------------------

def _collect() -> list[Any]:
    """Every metric family, merged over all worker processes in multiprocess mode."""
    if _families is None:
        return []
    if _multiprocess_dir is not None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(_multiprocess_dir))  # type: ignore[no-untyped-call,unused-ignore]
        return list(merged.collect())
    return list(_registry.collect())


def live_connections() -> dict[str, int] | None:
    """Open connections per listener over every worker (None before :func:`setup`)."""
    if _families is None:
        return None
    out: dict[str, int] = {}
    for fam in _collect():
        if fam.name == "mailwing_connections_current":
            for sample in fam.samples:
                name = sample.labels.get("listener", "")
                out[name] = out.get(name, 0) + int(sample.value)
    return out


def render(extra: Iterable[Any] = ()) -> bytes:
    """The text exposition of every process's figures plus ``extra`` metric families."""
    from prometheus_client import generate_latest
    from prometheus_client.core import GaugeMetricFamily

    families = _collect()
    hits = total = 0.0
    for fam in families:
        if fam.name == "mailwing_auth_cache_lookups":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    total += s.value
                    if s.labels.get("result") == "hit":
                        hits += s.value
    ratio = GaugeMetricFamily("mailwing_auth_cache_hit_ratio",
                              "Share of password checks answered by the cache")
    ratio.add_metric([], hits / total if total else 0.0)
    everything = [*families, ratio, *extra]

    class _All:
        def collect(self) -> Iterable[Any]:
            return everything

    return bytes(generate_latest(_All()))  # type: ignore[arg-type,unused-ignore]
