"""``storage.writer_nice``: the SQLite writer thread's nice value is lowered by the configured
amount (:func:`mailwing.storage.sqlite.runner.renice_this_thread`), only that thread's, from
the configuration down to a running storage; without the privilege to lower it (not root,
no CAP_SYS_NICE) it stays as it was and nothing fails. Read back with ``getpriority`` on
the thread's own id."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from mailwing.config import ConfigError, Settings, load_settings
from mailwing.runtime import open_store
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.runner import renice_this_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a thread has a nice value of its own on Linux only")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _privileged() -> bool:
    return os.geteuid() == 0


async def test_the_writer_thread_alone_is_reniced(tmp_path: Path) -> None:
    here = _nice(threading.get_native_id())
    store = await SqliteStorage.open(tmp_path / "m.db", tmp_path / "data", writer_nice=-3)
    try:
        await store.upgrade()
        await store.add_domain("nice.test")  # the writer thread has started and written
        writer = store._runner._thread.native_id
        reader = store._runner._reader_thread.native_id
        assert writer is not None and reader is not None
        expected = max(-20, here - 3) if _privileged() else here
        assert _nice(writer) == expected
        assert _nice(reader) == here
        assert _nice(threading.get_native_id()) == here
    finally:
        await store.close()


def test_raising_the_value_needs_no_privilege() -> None:
    """Upwards (less CPU) is always allowed: shown in a thread of its own, which ends."""
    seen: list[tuple[bool, int, int]] = []

    def work() -> None:
        tid = threading.get_native_id()
        before = _nice(tid)
        seen.append((renice_this_thread(2), before, _nice(tid)))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    [(changed, before, after)] = seen
    assert changed and after == min(19, before + 2)
    assert not renice_this_thread(0)


async def test_the_setting_reaches_the_server_storage(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().storage.writer_nice == -10
    monkeypatch.setenv("MAILWING_STORAGE_WRITER_NICE", "-2")
    monkeypatch.setenv("MAILWING_SERVER_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(None)
    assert settings.storage.writer_nice == -2
    here = _nice(threading.get_native_id())
    store = await open_store(settings)
    try:
        assert isinstance(store, SqliteStorage)
        await store.upgrade()
        writer = store._runner._thread.native_id
        assert writer is not None
        assert _nice(writer) == (max(-20, here - 2) if _privileged() else here)
    finally:
        await store.close()


@pytest.mark.parametrize("value", ["-21", "20"])
def test_out_of_range_values_are_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILWING_STORAGE_WRITER_NICE", value)
    with pytest.raises(ConfigError, match=r"storage\.writer_nice"):
        load_settings(None)
