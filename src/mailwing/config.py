"""Typed settings, read once from a TOML file and ``MAILWING_<SECTION>_<KEY>`` variables.

Precedence: built-in defaults < the TOML file < the environment. Every key is checked when the
configuration is loaded; an unknown key or a value of the wrong type raises :class:`ConfigError`
naming the key and where it came from, so ``mailwing serve`` stops before binding any port.

The sections are :class:`~mailwing.sections.Section` classes: dataclass-like (type-checked
keyword construction through :func:`typing.dataclass_transform`, ``==`` and ``repr`` by
field), but built without
:mod:`dataclasses`, whose import (it brings :mod:`inspect` and :mod:`ast`) and per-class code
generation cost more than the rest of ``mailwing deliver``'s configuration (an MTA runs it
once per message, issue #9). Every command, deliver included, loads and validates the whole
configuration the same way.
"""

from __future__ import annotations

import ipaddress
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailwing.sections import Section, setting

__all__ = [
    "LISTENERS",
    "AdminSettings",
    "AuthSettings",
    "CaptureSettings",
    "ConfigError",
    "DatabaseSettings",
    "DkimSettings",
    "LimitsSettings",
    "ListenerSettings",
    "LmtpSettings",
    "MailSettings",
    "OutboundSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "TlsSettings",
    "config_path",
    "load_settings",
    "parse_duration",
]


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


class ServerSettings(Section):
    hostname: str = "localhost"
    listen: list[str] = setting(default_factory=lambda: ["127.0.0.1"])
    data_dir: Path = Path("data")
    workers: int = 1
    max_connections: int = 2000  # per worker process
    max_connections_per_ip: int = 100  # one client IP, across every worker and node
    max_line_length: int = 65536  # bound on an IMAP command line (literals apart; RFC 7162 3.2.1)
    log_level: str = "info"
    log_format: str = "text"  # "text" or "json"
    shutdown_grace: float = 10.0  # seconds to let sessions finish their command on SIGTERM
    #: CIDRs of load balancers allowed to send a PROXY protocol header (listeners that turn
    #: ``proxy_protocol`` on); a header from any other address is refused.
    proxy_trusted: list[str] = setting(default_factory=list)
    #: "redis://host:port/db": failed-login counts and per-IP connection counts shared
    #: through Redis; empty: through PostgreSQL, or a file shared by this host's workers.
    redis_url: str = ""
    #: Name of this node in logs and leases; empty: the host name and the parent's pid.
    node_name: str = ""
    #: How often a worker tries the garbage-collection lease (one node collects); "0": never.
    gc_interval: str = "10m"
    gc_min_age: str = "1h"  # only what has been unreferenced for this long is removed


class DatabaseSettings(Section):
    url: str = ""  # empty: sqlite:///<data_dir>/mailwing.db


class StorageSettings(Section):
    """Durability policy of the storage (either backend)."""

    #: False (like Dovecot's default ``fsync_mode = optimized``): transactions that only
    #: change flags or keywords, expunge messages or claim IMAP \Recent commit without
    #: waiting for the disk (SQLite ``synchronous=NORMAL`` for those commits, PostgreSQL
    #: ``synchronous_commit = off``). A crash or kill of mailwing loses none of them; a power
    #: cut or OS crash may lose the last few (flags come back, expunged messages reappear),
    #: never a message, a mailbox or a user: deliveries, APPEND, COPY/MOVE and everything
    #: else always wait for the disk, and their commit makes every earlier one durable too.
    #: True: every commit waits for the disk.
    fsync_flag_changes: bool = False
    #: Octets of message contents each process keeps in memory by digest, PostgreSQL only
    #: (:mod:`mailwing.storage.contentcache`: contents never change, so nothing to
    #: invalidate; SQLite's reads come from the OS page cache instead). 0: none.
    content_cache_size: int = 33_554_432


class TlsSettings(Section):
    cert_file: str = ""  # empty: a self-signed certificate is generated into data_dir/tls
    key_file: str = ""


class AuthSettings(Section):
    allow_plaintext: bool | None = None  # None: true only when every listen address is loopback
    cache_ttl: float = 3600.0  # seconds a successful check is remembered (sliding); 0: off
    max_failures_per_ip: int = 20  # within failure_window, then logins from that IP are refused
    max_failures_per_user: int = 10  # within failure_window, then logins to that user are refused
    failure_window: float = 300.0
    failure_delay: float = 0.5  # seconds added per recent failure from the IP before answering
    failure_delay_max: float = 3.0  # cap of that delay
    check_spf: bool = True  # inbound (MX listener) SPF check, RFC 7208
    check_dkim: bool = True  # inbound DKIM signature verification, RFC 6376
    check_dmarc: bool = True  # inbound DMARC policy, RFC 7489 (needs SPF and DKIM results)
    #: Bound on the wait for one message's checks after its DATA (RFC 7208 section 4.6.4 asks
    #: for at least 20 s); a check still waiting then counts as temperror.
    check_timeout: float = 20.0


class LimitsSettings(Section):
    """Bounds shared by the protocols (each protocol's own line limits live in its core)."""

    max_message_size: int = 52_428_800  # octets; SMTP SIZE, IMAP APPEND literal (50 MiB)
    max_recipients: int = 100  # per SMTP transaction (RFC 5321 4.5.3.1.8 minimum)
    max_errors: int = 10  # protocol errors in a row before a session is closed
    max_auth_failures: int = 3  # failed AUTH/LOGIN attempts in one session before it is closed
    #: Expunged UIDs remembered per mailbox for IMAP QRESYNC's VANISHED (RFC 7162); a client
    #: resynchronising from before the oldest one is sent every known UID that is gone.
    expunged_retention: int = 20_000


class MailSettings(Section):
    """Mail-flow policy."""

    #: Submission: the envelope sender and From: must be addresses of the authenticated user.
    enforce_sender: bool = True
    #: Extra domains (besides those in the database) that count as local; usually empty.
    local_domains: list[str] = setting(default_factory=list)


class OutboundSettings(Section):
    """Delivery of mail for other domains (the queue worker inside ``mailwing serve``)."""

    enabled: bool = True  # False: remote recipients are refused at RCPT (550 5.7.1)
    relay_host: str = ""  # "HOST" or "HOST:PORT": send everything through this smarthost
    relay_username: str = ""  # AUTH at the smarthost when set
    relay_password: str = ""
    relay_tls: str = "starttls"  # "starttls" (required), "opportunistic", "implicit", "none"
    relay_ca_file: str = ""  # CA bundle to verify the smarthost with; empty: system's
    dns_resolver: str = ""  # "HOST" or "HOST:PORT" of the DNS server to ask; empty: system's
    mx_port: int = 25  # port used on remote MX hosts (tests point it elsewhere)
    retry_schedule: list[str] = setting(
        default_factory=lambda: ["1m", "5m", "15m", "1h", "4h"]
    )  # delays between attempts; the last one repeats until the lifetime ends
    lifetime: str = "5d"  # how long a message is retried before it bounces
    concurrency: int = 20  # deliveries in flight per worker process
    max_per_destination: int = 4  # of those, towards one destination domain
    connect_timeout: float = 30.0
    command_timeout: float = 300.0  # RFC 5321 4.5.3.2 suggests minutes per step
    lease: str = "10m"  # a worker's hold on a message it sends; renewed while it works
    poll_interval: str = "5s"  # how often a worker looks for due messages (plus wake-ups)


class DkimSettings(Section):
    """DKIM signing of outbound mail (keys made by ``mailwing dkim keygen``)."""

    sign: bool = True  # sign mail of local domains that have a key in data_dir/dkim/
    headers: list[str] = setting(default_factory=lambda: [
        "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To",
        "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    ])


class CaptureSettings(Section):
    """Capture mode (``mailwing serve --capture``): accept every message for any address and
    keep it for browsing; nothing is ever relayed and no outbound worker runs."""

    enabled: bool = False
    address: str = "capture@localhost"  # the login that sees every captured message
    password: str = ""  # empty: generated once into data_dir/capture-password.txt
    per_recipient: bool = False  # also a login per recipient address that sees only its mail
    max_messages: int = 0  # keep at most this many in the catch-all mailbox (0: no limit)
    max_age: str = ""  # drop captured messages older than this ("7d"; empty: keep)


class ListenerSettings(Section):
    port: int = 0  # 0 disables the listener
    idle_timeout: float = 600.0
    proxy_protocol: bool = False  # expect a PROXY v1/v2 header from server.proxy_trusted peers


class AdminSettings(ListenerSettings):
    """The admin HTTP listener (JSON API, console, /metrics, autoconfig): ``[admin]``."""

    #: Addresses the admin listener binds (its own, not server.listen): loopback by default.
    listen: list[str] = setting(default_factory=lambda: ["127.0.0.1"])
    #: "auto": TLS when any admin.listen address is not loopback; "on"; "off" (e.g. behind a
    #: TLS-terminating proxy). The certificate is the mail listeners' (the [tls] section).
    tls: str = "auto"
    #: A separate plain-HTTP port serving only client autoconfiguration and MTA-STS (clients
    #: fetch those by host name, usually on port 80); 0: off. Binds server.listen.
    autoconfig_port: int = 0
    #: The console's session lifetime.
    session_ttl: str = "12h"
    #: MTA-STS policy (RFC 8461 section 3.2): "testing", "enforce" or "none"; max_age seconds.
    mta_sts_mode: str = "testing"
    mta_sts_max_age: int = 604800
    #: Where TLS reports go (RFC 8460 TLS-RPT record); empty: postmaster@<domain>.
    tlsrpt_address: str = ""

    @property
    def tls_enabled(self) -> bool:
        if self.tls == "auto":
            return not all(_is_loopback(a) for a in self.listen)
        return self.tls == "on"


class LmtpSettings(ListenerSettings):
    """Local delivery from an MTA over LMTP (RFC 2033): ``[lmtp]``.

    The UNIX socket is on by default: ``mailwing deliver`` hands its message to the running
    server through it (no start-up of storage per message), and Postfix can deliver to it
    directly (``mailbox_transport = lmtp:unix:<path>``). Nobody authenticates on it, so its
    file mode is what protects it; the TCP listener (``port``, off by default; 2024 in
    development) binds only ``lmtp.listen``, which must be loopback addresses. Neither ever
    relays: only local users' mailboxes are recipients."""

    #: The socket's path, relative to ``server.data_dir`` unless absolute; empty: no socket.
    socket: str = "lmtp.sock"
    #: Its file mode (octal): 0660 lets the group of the server's user (the MTA's) deliver.
    socket_mode: str = "0660"
    #: Addresses the TCP listener binds when ``port`` is not 0: loopback only.
    listen: list[str] = setting(default_factory=lambda: ["127.0.0.1"])


#: Listener sections: name -> (protocol, implicit TLS, default development port, idle timeout).
#: LMTP's TCP port is off by default (its UNIX socket is on: see :class:`LmtpSettings`).
LISTENERS: dict[str, tuple[str, bool, int, float]] = {
    "smtp": ("smtp", False, 2525, 300.0),
    "submission": ("smtp", False, 2587, 300.0),
    "smtps": ("smtp", True, 2465, 300.0),
    "pop3": ("pop3", False, 2110, 600.0),
    "pop3s": ("pop3", True, 2995, 600.0),
    "imap": ("imap", False, 2143, 1800.0),
    "imaps": ("imap", True, 2993, 1800.0),
    "admin": ("http", False, 8025, 60.0),
    "lmtp": ("lmtp", False, 0, 300.0),
}


def _listener(name: str) -> ListenerSettings:
    _, _, port, idle = LISTENERS[name]
    return setting(default_factory=lambda: ListenerSettings(port=port, idle_timeout=idle))


class Settings(Section):
    server: ServerSettings = setting(default_factory=ServerSettings)
    database: DatabaseSettings = setting(default_factory=DatabaseSettings)
    storage: StorageSettings = setting(default_factory=StorageSettings)
    tls: TlsSettings = setting(default_factory=TlsSettings)
    auth: AuthSettings = setting(default_factory=AuthSettings)
    limits: LimitsSettings = setting(default_factory=LimitsSettings)
    mail: MailSettings = setting(default_factory=MailSettings)
    outbound: OutboundSettings = setting(default_factory=OutboundSettings)
    dkim: DkimSettings = setting(default_factory=DkimSettings)
    capture: CaptureSettings = setting(default_factory=CaptureSettings)
    smtp: ListenerSettings = _listener("smtp")
    submission: ListenerSettings = _listener("submission")
    smtps: ListenerSettings = _listener("smtps")
    pop3: ListenerSettings = _listener("pop3")
    pop3s: ListenerSettings = _listener("pop3s")
    imap: ListenerSettings = _listener("imap")
    imaps: ListenerSettings = _listener("imaps")
    admin: AdminSettings = setting(
        default_factory=lambda: AdminSettings(port=LISTENERS["admin"][2],
                                              idle_timeout=LISTENERS["admin"][3]))
    lmtp: LmtpSettings = setting(
        default_factory=lambda: LmtpSettings(port=LISTENERS["lmtp"][2],
                                             idle_timeout=LISTENERS["lmtp"][3]))

    # -- derived values -------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.server.data_dir / 'mailwing.db'}"

    @property
    def plaintext_allowed(self) -> bool:
        """Whether a password may be sent over a connection without TLS."""
        if self.auth.allow_plaintext is not None:
            return self.auth.allow_plaintext
        return all(_is_loopback(addr) for addr in self.server.listen)

    @property
    def lmtp_socket_path(self) -> Path | None:
        """Where the LMTP UNIX socket is (``lmtp.socket`` under the data folder), or None."""
        if not self.lmtp.socket:
            return None
        return self.server.data_dir / self.lmtp.socket  # an absolute socket path wins

    def listener(self, name: str) -> ListenerSettings:
        return typing.cast(ListenerSettings, getattr(self, name))


#: The section names (``[server]``, ``[imap]``, ...): the fields of :class:`Settings`.
_SECTIONS = frozenset(name for name, _ in Settings._fields)


def _is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


# -- loading -------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: Any, hint: Any, where: str, from_env: bool) -> Any:
    """Check/convert one value to the field's annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _convert(value, args[0], where, from_env)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env:
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if origin is list:
        if from_env and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return list(value)
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover


def _apply(settings: Settings, section: str, key: str, value: Any, where: str, env: bool) -> None:
    if section not in _SECTIONS:
        raise ConfigError(f"{where}: unknown section [{section}]")
    target = getattr(settings, section)
    if key not in dict(target._fields):
        raise ConfigError(f"{where}: unknown key {section}.{key}")
    hints = typing.get_type_hints(type(target))
    if key not in hints:  # pragma: no cover - every field is annotated
        raise ConfigError(f"{where}: unknown key {section}.{key}")
    setattr(target, key, _convert(value, hints[key], where, env))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, where: str = "duration") -> float:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"5d"`` (or a bare number of seconds) -> seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a duration like 30s, 5m, 1h or 5d") from None
    if seconds < 0:
        raise ConfigError(f"{where}: {text!r} must not be negative")
    return seconds


def _validate_outbound(o: OutboundSettings) -> None:
    if not o.retry_schedule:
        raise ConfigError("outbound.retry_schedule: at least one delay is needed")
    for item in o.retry_schedule:
        if parse_duration(item, "outbound.retry_schedule") <= 0:
            raise ConfigError(f"outbound.retry_schedule: {item!r} must be positive")
    if parse_duration(o.lifetime, "outbound.lifetime") <= 0:
        raise ConfigError("outbound.lifetime: must be positive")
    if parse_duration(o.lease, "outbound.lease") < 1:
        raise ConfigError("outbound.lease: must be at least 1s")
    if parse_duration(o.poll_interval, "outbound.poll_interval") <= 0:
        raise ConfigError("outbound.poll_interval: must be positive")
    if o.concurrency < 1 or o.max_per_destination < 1:
        raise ConfigError("outbound.concurrency and max_per_destination: at least 1")
    if o.relay_tls not in ("starttls", "opportunistic", "implicit", "none"):
        raise ConfigError(
            "outbound.relay_tls: must be starttls, opportunistic, implicit or none"
        )
    if not 0 < o.mx_port <= 65535:
        raise ConfigError(f"outbound.mx_port: {o.mx_port} is not a port number")
    if o.concurrency < 1 or o.max_per_destination < 1:
        raise ConfigError("outbound.concurrency and max_per_destination: must be at least 1")
    for name, value in (("relay_host", o.relay_host), ("dns_resolver", o.dns_resolver)):
        port = value.rpartition(":")[2] if value.count(":") == 1 else ""
        if value.count(":") == 1 and not port.isdigit():
            raise ConfigError(f"outbound.{name}: {value!r} must be HOST or HOST:PORT")


def _validate_capture(c: CaptureSettings) -> None:
    if c.max_messages < 0:
        raise ConfigError("capture.max_messages: must not be negative")
    if c.max_age:
        parse_duration(c.max_age, "capture.max_age")
    local, _, domain = c.address.partition("@")
    if not local or not domain:
        raise ConfigError(f"capture.address: {c.address!r} is not an address like "
                          "capture@localhost")


def _validate_admin(a: AdminSettings) -> None:
    if a.tls not in ("auto", "on", "off"):
        raise ConfigError("admin.tls: must be auto, on or off")
    if not a.listen:
        raise ConfigError("admin.listen: at least one address is needed")
    for addr in a.listen:
        if addr != "localhost":
            try:
                ipaddress.ip_address(addr)
            except ValueError as exc:
                raise ConfigError(f"admin.listen: {addr!r} is not an IP address") from exc
    if not 0 <= a.autoconfig_port <= 65535:
        raise ConfigError(f"admin.autoconfig_port: {a.autoconfig_port} is not a port number")
    if parse_duration(a.session_ttl, "admin.session_ttl") < 60:
        raise ConfigError("admin.session_ttl: must be at least 1m")
    if a.mta_sts_mode not in ("testing", "enforce", "none"):
        raise ConfigError("admin.mta_sts_mode: must be testing, enforce or none")
    if not 0 <= a.mta_sts_max_age <= 31557600:
        raise ConfigError("admin.mta_sts_max_age: between 0 and 31557600 seconds")


def _validate_lmtp(lm: LmtpSettings) -> None:
    try:
        mode = int(lm.socket_mode, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"lmtp.socket_mode: {lm.socket_mode!r} is not an octal file mode "
                          "like 0660")
    if lm.proxy_protocol:
        raise ConfigError("lmtp.proxy_protocol: LMTP takes mail from the local MTA only")
    if not lm.listen:
        raise ConfigError("lmtp.listen: at least one address is needed")
    for addr in lm.listen:
        if not _is_loopback(addr):
            raise ConfigError(f"lmtp.listen: {addr!r} is not a loopback address (LMTP has "
                              "no authentication, so it never listens beyond this host)")


def _validate(s: Settings) -> None:
    _validate_outbound(s.outbound)
    _validate_lmtp(s.lmtp)
    _validate_capture(s.capture)
    if s.storage.content_cache_size < 0:
        raise ConfigError("storage.content_cache_size: must be 0 or more octets")
    if s.limits.max_message_size < 1024:
        raise ConfigError("limits.max_message_size: must be at least 1024 octets")
    if not 1 <= s.limits.max_recipients <= 100_000:
        raise ConfigError("limits.max_recipients: must be between 1 and 100000")
    if s.limits.expunged_retention < 0:
        raise ConfigError("limits.expunged_retention: must be 0 or more")
    if s.limits.max_errors < 1 or s.limits.max_auth_failures < 1:
        raise ConfigError("limits.max_errors and limits.max_auth_failures: must be at least 1")
    if s.server.workers < 1 or s.server.workers > 256:
        raise ConfigError("server.workers: must be between 1 and 256")
    if not s.server.listen:
        raise ConfigError("server.listen: at least one address is needed")
    for addr in s.server.listen:
        if addr != "localhost":
            try:
                ipaddress.ip_address(addr)
            except ValueError as exc:
                raise ConfigError(f"server.listen: {addr!r} is not an IP address") from exc
    for name in LISTENERS:
        ls = s.listener(name)
        if not 0 <= ls.port <= 65535:
            raise ConfigError(f"{name}.port: {ls.port} is not a port number (0 disables)")
        if ls.idle_timeout <= 0:
            raise ConfigError(f"{name}.idle_timeout: must be positive")
    for cidr in s.server.proxy_trusted:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ConfigError(f"server.proxy_trusted: {cidr!r} is not an address or CIDR") from exc
    if s.server.redis_url and not s.server.redis_url.startswith(("redis://", "rediss://",
                                                                 "unix://")):
        raise ConfigError("server.redis_url: must start with redis://, rediss:// or unix://")
    parse_duration(s.server.gc_interval, "server.gc_interval")
    parse_duration(s.server.gc_min_age, "server.gc_min_age")
    _validate_admin(s.admin)
    if s.server.log_format not in ("text", "json"):
        raise ConfigError("server.log_format: must be 'text' or 'json'")
    if s.server.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("server.log_level: must be debug, info, warning or error")
    url = s.database_url
    if not (url.startswith("sqlite:///") or url.startswith(("postgresql://", "postgres://"))):
        raise ConfigError(
            f"database.url: {url!r} must start with sqlite:/// or postgresql://"
        )
    if bool(s.tls.cert_file) != bool(s.tls.key_file):
        raise ConfigError("tls.cert_file and tls.key_file: give both or neither")
    if s.auth.cache_ttl < 0:
        raise ConfigError("auth.cache_ttl: must not be negative")
    if s.server.max_line_length < 1024:
        raise ConfigError("server.max_line_length: must be at least 1024")
    for key in ("max_connections", "max_connections_per_ip"):
        if getattr(s.server, key) < 1:
            raise ConfigError(f"server.{key}: must be at least 1")
    if s.server.shutdown_grace < 0:
        raise ConfigError("server.shutdown_grace: must not be negative")
    if not s.server.hostname:
        raise ConfigError("server.hostname: must not be empty")
    for key in ("max_failures_per_ip", "max_failures_per_user"):
        if getattr(s.auth, key) < 1:
            raise ConfigError(f"auth.{key}: must be at least 1")
    if s.auth.check_timeout <= 0:
        raise ConfigError("auth.check_timeout: must be positive")
    for key in ("failure_window", "failure_delay", "failure_delay_max"):
        if getattr(s.auth, key) < 0:
            raise ConfigError(f"auth.{key}: must not be negative")


def config_path(
    given: str | Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The configuration file to read: ``--config`` if given, else ``$MAILWING_CONFIG``,
    else none (built-in defaults and the environment only)."""
    if given:
        return Path(given)
    env = os.environ if environ is None else environ
    value = env.get("MAILWING_CONFIG", "")
    return Path(value) if value else None


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from defaults, then ``path`` (TOML), then ``MAILWING_*`` variables."""
    settings = Settings()
    if path is not None:
        import tomllib  # only with a file: an MTA may run ``mailwing deliver`` on variables

        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: {section} must be a [section]")
            for key, value in table.items():
                _apply(settings, section, key, value, f"{path}: {section}.{key}", env=False)
    env = os.environ if environ is None else environ
    for var, value in env.items():
        if not var.startswith("MAILWING_") or var.startswith("MAILWING_TEST"):
            continue
        rest = var[len("MAILWING_"):].lower()
        env_section = next((n for n in sorted(_SECTIONS, key=len, reverse=True)
                            if rest.startswith(n + "_")), None)
        if env_section is None:
            continue  # not a settings variable (e.g. MAILWING_REQUIRE_CLIENTS)
        key = rest[len(env_section) + 1:]
        _apply(settings, env_section, key, value, f"environment {var}", env=True)
    _validate(settings)
    return settings
