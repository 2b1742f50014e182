"""Settings: defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwing.config import (
    LISTENERS,
    AdminSettings,
    AuthSettings,
    ConfigError,
    ListenerSettings,
    ServerSettings,
    Settings,
    config_path,
    load_settings,
)
from mailwing.sections import Section, setting


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailwing.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings(environ={})
    assert s.server.listen == ["127.0.0.1"]
    assert s.server.workers == 1
    assert s.database_url == f"sqlite:///{Path('data') / 'mailwing.db'}"
    for name, (_, _, port, idle) in LISTENERS.items():
        assert s.listener(name).port == port
        assert s.listener(name).idle_timeout == idle
    assert s.auth.cache_ttl == 3600.0  # one hour, as Dovecot deployments use


def test_toml_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
hostname = "mx.example.org"
listen = ["127.0.0.1", "::1"]
workers = 3
shutdown_grace = 2
[pop3]
port = 1110
idle_timeout = 5
[database]
url = "postgresql://postgres@127.0.0.1/x"
""")
    s = load_settings(path, environ={})
    assert s.server.hostname == "mx.example.org"
    assert s.server.listen == ["127.0.0.1", "::1"]
    assert s.server.workers == 3
    assert s.server.shutdown_grace == 2.0
    assert s.pop3.port == 1110 and s.pop3.idle_timeout == 5.0
    assert s.database_url == "postgresql://postgres@127.0.0.1/x"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhostname = "file.example"\nworkers = 2\n')
    env = {
        "MAILWING_SERVER_HOSTNAME": "env.example",
        "MAILWING_SERVER_LISTEN": "127.0.0.1, ::1",
        "MAILWING_AUTH_ALLOW_PLAINTEXT": "no",
        "MAILWING_POP3S_PORT": "0",
        "MAILWING_AUTH_CACHE_TTL": "1.5",
        "MAILWING_CONFIG": "ignored-here",
    }
    s = load_settings(path, environ=env)
    assert s.server.hostname == "env.example"
    assert s.server.workers == 2
    assert s.server.listen == ["127.0.0.1", "::1"]
    assert s.auth.allow_plaintext is False
    assert s.pop3s.port == 0
    assert s.auth.cache_ttl == 1.5


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nhostnme = 'x'\n")
    with pytest.raises(ConfigError, match=r"server\.hostnme"):
        load_settings(path, environ={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[pop4\]"):
        load_settings(write(tmp_path, "[pop4]\nport = 1\n"), environ={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.workers.*whole number"):
        load_settings(write(tmp_path, "[server]\nworkers = 'many'\n"), environ={})
    with pytest.raises(ConfigError, match="MAILWING_AUTH_ALLOW_PLAINTEXT"):
        load_settings(environ={"MAILWING_AUTH_ALLOW_PLAINTEXT": "perhaps"})
    with pytest.raises(ConfigError, match="MAILWING_SERVER_NOPE"):
        load_settings(environ={"MAILWING_SERVER_NOPE": "1"})


def test_invalid_values(tmp_path: Path) -> None:
    for text, key in [
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[server]\nlisten = ['not-an-ip']\n", "server.listen"),
        ("[pop3]\nport = 70000\n", "pop3.port"),
        ("[server]\nlog_format = 'xml'\n", "server.log_format"),
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
        ("[tls]\ncert_file = 'a.pem'\n", "tls.cert_file"),
        ("[auth]\nmax_failures_per_ip = 0\n", "auth.max_failures_per_ip"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(write(tmp_path, text), environ={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\n"), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_plaintext_allowed_only_on_loopback() -> None:
    assert load_settings(environ={}).plaintext_allowed is True
    env = {"MAILWING_SERVER_LISTEN": "127.0.0.1,::1"}
    assert load_settings(environ=env).plaintext_allowed is True
    env = {"MAILWING_SERVER_LISTEN": "127.0.0.1,192.0.2.10"}
    assert load_settings(environ=env).plaintext_allowed is False
    env["MAILWING_AUTH_ALLOW_PLAINTEXT"] = "true"
    assert load_settings(environ=env).plaintext_allowed is True


def test_config_path_resolution(tmp_path: Path) -> None:
    assert config_path(None, {}) is None
    assert config_path(None, {"MAILWING_CONFIG": "/etc/m.toml"}) == Path("/etc/m.toml")
    assert config_path("given.toml", {"MAILWING_CONFIG": "/etc/m.toml"}) == Path("given.toml")


def test_cluster_settings(tmp_path: Path) -> None:
    env = {"MAILWING_SERVER_PROXY_TRUSTED": "10.0.0.5/32, 2001:db8::/64",
           "MAILWING_IMAP_PROXY_PROTOCOL": "true",
           "MAILWING_SERVER_REDIS_URL": "redis://127.0.0.1:6379/0"}
    s = load_settings(None, env)
    assert s.server.proxy_trusted == ["10.0.0.5/32", "2001:db8::/64"]
    assert s.imap.proxy_protocol and not s.smtp.proxy_protocol
    assert s.auth.cache_ttl == 3600.0
    for key, value, named in (("MAILWING_SERVER_PROXY_TRUSTED", "10.0.0.300/8", "proxy_trusted"),
                              ("MAILWING_SERVER_REDIS_URL", "http://x", "redis_url"),
                              ("MAILWING_SERVER_GC_INTERVAL", "often", "gc_interval")):
        with pytest.raises(ConfigError, match=named):
            load_settings(None, {key: value})


def test_storage_durability_policy(tmp_path: Path) -> None:
    """``storage.fsync_flag_changes``: false by default (Dovecot's ``fsync_mode =
    optimized``), from the file or the environment like every key, and a bool only."""
    assert load_settings(environ={}).storage.fsync_flag_changes is False
    path = write(tmp_path, "[storage]\nfsync_flag_changes = true\n")
    assert load_settings(path, environ={}).storage.fsync_flag_changes is True
    env = {"MAILWING_STORAGE_FSYNC_FLAG_CHANGES": "no"}
    assert load_settings(path, environ=env).storage.fsync_flag_changes is False
    with pytest.raises(ConfigError, match=r"storage\.fsync_flag_changes"):
        load_settings(write(tmp_path, '[storage]\nfsync_flag_changes = "always"\n'), environ={})


def test_sections_behave_like_dataclasses() -> None:
    """Sections are built without :mod:`dataclasses` (issue #9); construction, defaults,
    equality and repr are a dataclass's."""
    a, b = Settings(), Settings()
    assert a == b and a is not b
    assert a.server.listen == ["127.0.0.1"] and a.server.listen is not b.server.listen
    assert a.smtp == ListenerSettings(port=2525, idle_timeout=300.0)
    assert a.admin.port == 8025 and isinstance(a.admin, AdminSettings)
    assert a.admin.listen is not b.admin.listen
    assert [n for n, _ in AdminSettings._fields][:4] == ["port", "idle_timeout",
                                                        "proxy_protocol", "listen"]
    a.auth.cache_ttl = 1.0
    assert a != b and a.auth == AuthSettings(cache_ttl=1.0)
    assert ServerSettings("mx.example").hostname == "mx.example"
    assert repr(ListenerSettings(port=1)) == (
        "ListenerSettings(port=1, idle_timeout=600.0, proxy_protocol=False)")
    assert ServerSettings().__eq__(ListenerSettings()) is NotImplemented
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        ServerSettings(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        ServerSettings("a", hostname="b")  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(a.server)  # mutable, compared by value: unhashable, as a dataclass with eq
    assert "listen" not in vars(ServerSettings)  # factories leave no class attribute


def test_section_rules() -> None:
    with pytest.raises(TypeError, match="setting\\(default_factory"):
        class Bad(Section):
            items: list[str] = []
    with pytest.raises(TypeError, match="needs a default"):
        class NoDefault(Section):
            name: str

    class Sub(Section):
        names: list[str] = setting(default_factory=lambda: ["x"])
        count: int = 1

    one, two = Sub(), Sub(count=2)
    one.names.append("y")
    assert two.names == ["x"] and two.count == 2


def test_every_field_is_a_loadable_key() -> None:
    """Each section's fields are exactly its annotated keys, and each can be set."""
    import typing

    names = [n for n, _ in Settings._fields]
    assert names[:4] == ["server", "database", "storage", "tls"] and "admin" in names
    for name in names:
        section = getattr(Settings(), name)
        hints = typing.get_type_hints(type(section))
        fields = [n for n, _ in type(section)._fields]
        assert set(fields) == {k for k in hints if k != "_fields"}


def test_lmtp_settings(tmp_path: Path) -> None:
    """The LMTP socket is on by default in the data folder, TCP off; both can be changed by
    file and environment; TCP never leaves loopback, and the mode must be octal."""
    s = load_settings(environ={"MAILWING_SERVER_DATA_DIR": "/srv/mw"})
    assert s.lmtp_socket_path == Path("/srv/mw/lmtp.sock")
    assert s.lmtp.port == 0 and s.lmtp.socket_mode == "0660"
    path = write(tmp_path, '[lmtp]\nsocket = "/run/mailwing/lmtp"\nport = 2024\n'
                           'socket_mode = "0600"\nlisten = ["127.0.0.1", "::1"]\n')
    s = load_settings(path, environ={})
    assert s.lmtp_socket_path == Path("/run/mailwing/lmtp") and s.lmtp.port == 2024
    s = load_settings(path, environ={"MAILWING_LMTP_SOCKET": "", "MAILWING_LMTP_PORT": "0"})
    assert s.lmtp_socket_path is None and s.lmtp.port == 0
    for env, named in (({"MAILWING_LMTP_LISTEN": "0.0.0.0"}, r"lmtp\.listen.*loopback"),
                       ({"MAILWING_LMTP_SOCKET_MODE": "660x"}, r"lmtp\.socket_mode"),
                       ({"MAILWING_LMTP_SOCKET_MODE": "1777"}, r"lmtp\.socket_mode"),
                       ({"MAILWING_LMTP_PROXY_PROTOCOL": "true"}, r"lmtp\.proxy_protocol")):
        with pytest.raises(ConfigError, match=named):
            load_settings(environ=env)
