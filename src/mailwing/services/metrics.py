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

**The hooks do not touch prometheus-client; a flush publishes.** In multiprocess mode every
``inc``/``observe`` of a prometheus-client metric goes through a ``MultiProcessValue``: a
process-wide lock, an ``os.getpid()`` call (its fork check) and a write into the mmap file,
per value (a histogram observation is two: the sum and one bucket). py-spy on workers under
IMAP, POP3 and SMTP load (issue #9) put that at 6-10 % of worker CPU, because the hooks run
per command and per storage call. So each hook only adds to plain Python structures of its
own process: counters to a dict of deltas keyed by family and labels, histograms to a
:class:`_LocalHistogram` (per-bucket counts found with :func:`bisect.bisect_left` on the same
bounds, ``amount <= bound`` like prometheus-client's own ``observe``, plus the sum). Measured
with ``benchmarks/metrics_hooks_bench.py`` (one core, multiprocess mode): a counted command
~0.3 us instead of ~1.2 us for ``Counter.inc``, a latency ~0.4 us instead of ~2.1 us for
``Histogram.observe`` (a POP3 session of 55 commands makes roughly 250 such calls). py-spy
``--gil`` on both workers under ``pop3_bench.py`` (10 clients, five A/B pairs on a loaded
machine): prometheus-client went from ~12 % of the samples (5-21 % per run) to ~1 % (the
flush and the live gauge), all metrics code from ~14 % to ~4 %. :func:`flush` adds the
accumulated deltas to the prometheus-client objects (so the files, and /metrics, stay summed
over the workers). It runs

* every :data:`FLUSH_INTERVAL` seconds from a task on the worker's event loop
  (:func:`start_flushing`), so another worker's figures reach a scrape at most about a
  second late;
* at scrape time in the scraping process (:func:`_collect`), so a single worker
  (``server.workers = 1``) answers exactly, as before;
* when the worker stops (:func:`stop_flushing`, after the sessions have drained, also on a
  supervisor's graceful SIGTERM). A worker that crashes loses at most its last second.

A histogram's deltas are published per bucket with one ``inc(n)`` on each of the child's
bucket values and one on its sum (``Histogram._buckets``/``_sum``, which
``Histogram.observe`` itself updates and which have kept their shape for years):
prometheus-client has no public call to add n observations at once, and replaying
``observe`` in the flush would keep the whole per-observation cost (it only moves it off
the hot path): 10,000 observations flush in ~20 us (one ``inc`` per bucket) against ~25 ms
replayed. The shape is checked when a child is first used (:func:`_bulk_capable`); if a
future prometheus-client changes it, that histogram falls back to direct ``observe`` in the
hook: slower, never wrong. The live-connections gauge stays direct (it changes per connection,
not per command, and must be live for ``livesum``; its children are kept, and the
supervisor still drops a dead worker's gauge file).

Label values are bounded: listener names and protocols come from the configuration,
command names from fixed lists (anything else counts as ``other``), reply codes are three
digits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from bisect import bisect_left
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
    "flush",
    "live_connections",
    "login",
    "prepare_multiprocess_dir",
    "process_exited",
    "recent_activity",
    "render",
    "setup",
    "smtp_message",
    "start_flushing",
    "stop_flushing",
    "watch_write_lock",
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
        self.write_lock = Counter(
            "mailwing_sqlite_write_lock_seconds", "SQLite: seconds the writers' lock was "
            "held (held), and the holding threads' CPU seconds meanwhile (held_cpu)",
            ["part"], registry=r)
        self.write_transactions = Counter(
            "mailwing_sqlite_write_transactions", "SQLite write transactions (all), and "
            "those that first waited for another process's writer (waited)",
            ["kind"], registry=r)


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


#: Seconds between two publications of a worker's figures (:func:`start_flushing`).
FLUSH_INTERVAL = 1.0

_families: _Families | None = None
_registry: Any = None
_multiprocess_dir: Path | None = None
_PROTOCOL_OF: dict[str, str] = {}

# Counter deltas since the last flush: (family attribute of _Families, *label values) -> n.
_pending: dict[tuple[str, ...], float] = {}
_counter_children: dict[tuple[str, ...], Any] = {}  # the same keys -> prometheus child
_histograms: list[_LocalHistogram | _DirectHistogram] = []  # every one, for the flush
#: running totals read at each flush (:func:`watch_write_lock`), and what was published
_watched: list[Callable[[], tuple[int, int, float, float]]] = []
_watched_seen: dict[tuple[Any, ...], float] = {}
_histogram_of: dict[tuple[str, ...], _LocalHistogram | _DirectHistogram] = {}
_command_local: dict[tuple[str, str], tuple[tuple[str, ...], Any]] = {}
_storage_local: dict[str, Any] = {}  # keyed by Storage method names: a fixed set
_gauge_children: dict[str, Any] = {}  # listener name -> live-connections gauge child


class _LocalHistogram:
    """Observations of one labelled histogram child since the last flush: per-bucket counts
    (not cumulative, like prometheus-client's own bucket values) and their sum."""

    __slots__ = ("_child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: the first bound >= amount, i.e. prometheus-client's `amount <= bound`
        self.counts[bisect_left(_LATENCY_BUCKETS, amount)] += 1
        self.total += amount

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        total = self.total
        self.counts = [0] * len(counts)
        self.total = 0.0
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
        self._child._sum.inc(total)


class _DirectHistogram:
    """The fallback when a prometheus-client child lacks the expected bucket values."""

    __slots__ = ("observe",)

    def __init__(self, child: Any) -> None:
        self.observe: Callable[[float], None] = child.observe

    def flush(self) -> None:
        pass


def _bulk_capable(child: Any) -> bool:
    """Whether ``child`` keeps one value per bucket (``_buckets``, bounds ending in +Inf)
    plus ``_sum``, each with ``inc``, as ``Histogram.observe`` updates them."""
    try:
        bounds = [float(b) for b in child._upper_bounds]
        return (bounds == [*_LATENCY_BUCKETS, float("inf")]
                and len(child._buckets) == len(bounds)
                and all(callable(getattr(b, "inc", None)) for b in child._buckets)
                and callable(getattr(child._sum, "inc", None)))
    except (AttributeError, TypeError, ValueError):
        return False


def _histogram(family: str, *labels: str) -> _LocalHistogram | _DirectHistogram:
    key = (family, *labels)
    local = _histogram_of.get(key)
    if local is None:
        assert _families is not None
        child = getattr(_families, family).labels(*labels)
        local = _LocalHistogram(child) if _bulk_capable(child) else _DirectHistogram(child)
        _histogram_of[key] = local
        _histograms.append(local)
    return local


def _count(key: tuple[str, ...], n: float = 1) -> None:
    _pending[key] = _pending.get(key, 0) + n


def flush() -> None:
    """Add every figure recorded in this process since the last flush to the
    prometheus-client metrics (the multiprocess files). Cheap when nothing happened.

    The hooks and the flush run on the worker's event loop thread only (sessions, storage
    calls, the outbound worker and the async admin routes all do), so the structures need
    no lock: that is the point."""
    global _pending
    if _families is None:
        return
    _poll_watched()
    pending, _pending = _pending, {}
    for key, n in pending.items():
        child = _counter_children.get(key)
        if child is None:
            family = getattr(_families, key[0])
            child = _counter_children[key] = family.labels(*key[1:]) if key[1:] else family
        child.inc(n)
    for local in _histograms:
        local.flush()


def watch_write_lock(stats: Callable[[], tuple[int, int, float, float]]) -> None:
    """Publish, at each flush, what ``stats`` adds to its running totals (transactions,
    waited, held seconds, held CPU seconds: ``SqliteStorage.write_lock_stats``). The rate of
    ``held`` summed over a node's workers is the share of time its write lock is taken: near
    1 the writes of all workers queue behind one another, whatever CPU is left."""
    _watched.append(stats)


def _poll_watched() -> None:
    keys = (("write_transactions", "all"), ("write_transactions", "waited"),
            ("write_lock", "held"), ("write_lock", "held_cpu"))
    for i, stats in enumerate(_watched):
        for key, total in zip(keys, stats(), strict=True):
            seen = _watched_seen.get((i, *key), 0)
            if total > seen:
                _watched_seen[(i, *key)] = total
                _count(key, total - seen)


async def _flush_every(interval: float) -> None:
    import asyncio

    while True:
        await asyncio.sleep(interval)
        flush()


def start_flushing(interval: float = FLUSH_INTERVAL) -> Any:
    """Publish this process's figures every ``interval`` seconds from a task on the running
    event loop (None before :func:`setup`); end it with :func:`stop_flushing`."""
    if _families is None:
        return None
    import asyncio

    return asyncio.get_running_loop().create_task(_flush_every(interval))


def stop_flushing(task: Any) -> None:
    """Stop the task of :func:`start_flushing` and publish what is left (worker exit). The
    task is only cancelled, not awaited: it is asleep or between two flushes (a flush never
    awaits), and the event loop's runner collects it."""
    if task is not None:
        task.cancel()
    flush()


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


# -- hooks (no-ops before setup; plain in-process additions, published by flush) -----------

def _live_gauge(listener: str) -> Any:
    """The live-connections gauge child of ``listener``, kept: ``labels()`` validates and
    locks on every call, and this runs twice per connection."""
    child = _gauge_children.get(listener)
    if child is None:
        assert _families is not None
        child = _gauge_children[listener] = _families.connections_current.labels(listener)
    return child


def connection_opened(listener: str) -> None:
    if _families is not None:
        _count(("connections", listener))
        _live_gauge(listener).inc()  # live (livesum): direct, once per connection


def connection_closed(listener: str, result: str) -> None:
    if _families is not None:
        _live_gauge(listener).dec()
        _count(("sessions", listener, result))


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
    local = _command_local.get(key)
    if local is None:  # the hot path below skips the label mapping
        protocol = _PROTOCOL_OF.get(listener, listener)
        label = _command_label(protocol, name)
        local = (("commands", protocol, label), _histogram("command_seconds", protocol, label))
        if len(_command_local) < 4096:  # bounded even if names vary (they map to "other")
            _command_local[key] = local
    if seconds is None:
        _pending[local[0]] = _pending.get(local[0], 0) + 1
    else:
        local[1].observe(seconds)


def login(listener: str, mechanism: str, outcome: str) -> None:
    if _families is not None:
        mech = mechanism.upper() if mechanism.upper() in (
            "PLAIN", "LOGIN", "USER", "APOP", "XOAUTH2", "CRAM-MD5") else "other"
        _count(("logins", _PROTOCOL_OF.get(listener, listener), mech, outcome[:24]))


def smtp_message(listener: str, accepted: bool, code: int | None) -> None:
    if _families is None:
        return
    if accepted:
        _count(("smtp_received", listener))
        _received.add()
    else:
        label = str(code) if code is not None and 200 <= code <= 599 else "none"
        _count(("smtp_refused", listener, label))


def delivered_local(copies: int) -> None:
    if _families is not None and copies:
        _count(("delivered_local",), copies)


def delivery_attempt(result: str) -> None:
    if _families is not None:
        _count(("delivery_attempts", result))
        if result == "delivered":
            _sent.add()


def bounce() -> None:
    if _families is not None:
        _count(("bounces",))


def auth_cache(hit: bool) -> None:
    if _families is not None:
        _count(("auth_cache", "hit" if hit else "miss"))


def storage_op(operation: str, seconds: float) -> None:
    if _families is not None:
        local = _storage_local.get(operation)
        if local is None:
            local = _storage_local[operation] = _histogram("storage_seconds", operation)
        local.observe(seconds)


# -- storage timing --------------------------------------------------------------------------

class TimedStorage:
    """Wraps a storage object: every coroutine method call is timed under its name; other
    attributes (content readers and writers, constants) pass through untouched."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._plain: set[str] = set()  # callables found not to be coroutine functions

    def __getattr__(self, name: str) -> Any:
        """A coroutine method's timed wrapper is made on the first use of its name and kept
        as an instance attribute, so later calls (every storage call of every session) find
        it directly, without this lookup or ``inspect``. Other names are looked up on the
        inner object every time (a value may change), but a callable's verdict is kept:
        ``open_content`` is fetched per POP3 RETR and IMAP body fetch, and
        ``inspect.iscoroutinefunction`` showed in worker profiles."""
        value = getattr(self._inner, name)
        if name in self._plain:
            return value
        if name.startswith("_") or not callable(value) or not _is_coroutine(value):
            if callable(value):
                self._plain.add(name)
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
    flush()  # this process's figures are exact; the other workers' at most a flush old
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
