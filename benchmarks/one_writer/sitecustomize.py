"""Switches a ``mailwing serve`` started with this folder on ``PYTHONPATH`` to one writer
process per node (the experiment of :mod:`writer_process`); does nothing unless
``MAILWING_EXPERIMENT_WRITER`` names the socket to use.

Python imports ``sitecustomize`` at start-up, so the benchmarks run unchanged and start the
server as usual. Three functions of mailwing are wrapped, none edited:

* ``mailwing.app.supervise`` (the parent, before it forks the workers) first forks the writer
  process, which dies with the parent;
* ``mailwing.app.open_store``, in a worker, connects the storage's runner to it;
* ``SqliteRunner.run`` and ``SqliteRunner.post`` send writes, and reads that must queue behind
  posted content, to it; everything else (short reads, the reader thread) stays as it is.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

ADDRESS = os.environ.get("MAILWING_EXPERIMENT_WRITER")


def _install() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import writer_process as wp

    import mailwing.app as app
    from mailwing.storage.sqlite.runner import SqliteRunner

    assert ADDRESS is not None
    address = ADDRESS
    in_worker = False
    supervise, open_store = app.supervise, app.open_store
    run, post = SqliteRunner.run, SqliteRunner.post

    def start_writer(settings: Any) -> None:
        from mailwing.server.workers import _die_with_parent
        from mailwing.storage import _sqlite_path

        database = _sqlite_path(settings.database_url)
        if database is None:
            return  # PostgreSQL: nothing to do
        parent = os.getpid()
        if os.fork() == 0:
            code = 1
            try:
                import signal

                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _die_with_parent(parent)
                nice = int(os.environ.get("MAILWING_EXPERIMENT_WRITER_NICE", "0"))
                if nice:
                    os.setpriority(os.PRIO_PROCESS, 0, nice)
                wp.serve(database, settings.server.data_dir, address)
                code = 0
            finally:
                os._exit(code)

    settings_seen: list[Any] = []

    def patched_open_store(settings: Any) -> Any:
        settings_seen.append(settings)

        async def opened() -> Any:
            store = await open_store(settings)
            runner = getattr(store, "_runner", None)
            if in_worker and isinstance(runner, SqliteRunner):
                client = wp.WriterClient(address, runner._done_posting_x)  # type: ignore[attr-defined]
                await client.connect()
                runner._remote_x = client  # type: ignore[attr-defined]
            return store

        return opened()

    def patched_supervise(workers: int, run_worker: Any, *args: Any, **kwargs: Any) -> Any:
        def worker(index: int) -> int:
            nonlocal in_worker
            in_worker = True
            return int(run_worker(index))

        if settings_seen:
            start_writer(settings_seen[-1])
        return supervise(workers, worker, *args, **kwargs)

    def done_posting(self: Any, key: str) -> None:
        # the runner's own bookkeeping of posted contents, given a stand-in for a job
        self._committed([types.SimpleNamespace(key=key)])

    async def patched_run(self: Any, script: Any, *, write: bool, after: Any = ()) -> Any:
        client = getattr(self, "_remote_x", None)
        if client is not None and (write or self._behind_posted(after)):
            described = wp.describe(script)
            if described is not None:
                wp.close_described(script)
                return await client.run(described, write)
            print(f"one_writer: not described, run locally: {script!r}", file=sys.stderr)
        return await run(self, script, write=write, after=after)

    def patched_post(self: Any, script: Any, key: str) -> None:
        client = getattr(self, "_remote_x", None)
        described = wp.describe(script) if client is not None else None
        if described is None:
            post(self, script, key)
            return
        wp.close_described(script)
        with self._posted_lock:
            self._posted[key] = self._posted.get(key, 0) + 1
        try:
            client.post(described, key)  # type: ignore[union-attr]
        except BaseException:
            done_posting(self, key)
            raise

    app.supervise = patched_supervise  # type: ignore[assignment]
    app.open_store = patched_open_store
    SqliteRunner.run = patched_run  # type: ignore[method-assign]
    SqliteRunner.post = patched_post  # type: ignore[method-assign]
    SqliteRunner._done_posting_x = done_posting  # type: ignore[attr-defined]


if ADDRESS:
    _install()
