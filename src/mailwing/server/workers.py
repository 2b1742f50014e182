"""Several worker processes sharing the listening ports (``server.workers = N > 1``).

One event loop uses one core, so the parent forks N workers; each binds the same ports with
``SO_REUSEPORT`` (the kernel balances new connections), runs its own event loop and opens its
own storage connections. The parent only supervises:

* SIGTERM or SIGINT to the parent is forwarded to every worker as SIGTERM (each drains its
  sessions gracefully); a second signal is not escalated, the workers' grace period bounds it;
* a worker that crashes (non-zero exit or killed) while the server is running is restarted,
  so one bad session that takes a process down does not halve capacity for good; but a worker
  that fails within its first few seconds is a start-up problem (port in use, bad database),
  so then every worker is stopped and the parent exits 1 instead of restarting in a loop;
* the parent exits 0 once every worker has exited cleanly after a stop signal;
* a parent that dies without a word (``kill -9``, the OOM killer) takes its workers with it:
  on Linux each worker asks the kernel for SIGTERM when its parent goes (``prctl``'s
  ``PR_SET_PDEATHSIG``), and drains as on a normal stop. Otherwise orphaned workers would
  keep the ports, and a restarted server could not bind them.

The fork happens before any event loop or database connection exists in the parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

__all__ = ["STARTUP_WINDOW", "supervise"]

log = logging.getLogger("mailwing.server")

#: A worker failing sooner than this after being started is treated as a start-up failure.
STARTUP_WINDOW = 5.0


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """SIGTERM to this worker when the parent exits (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only in a worker, once

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _spawn(run_worker: Callable[[int], int], index: int) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            _die_with_parent(parent)
            code = run_worker(index)
        except BaseException:
            log.exception("worker %d crashed", os.getpid())
        finally:
            logging.shutdown()
            sys.stderr.flush()
            os._exit(code)
    log.info("worker %d started (pid %d)", index, pid)
    return pid


def _describe(status: int) -> tuple[int, str]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, f"killed by signal {signal.Signals(sig).name}"
    code = os.WEXITSTATUS(status)
    return code, f"exit code {code}"


def supervise(count: int, run_worker: Callable[[int], int],
              on_exit: Callable[[int], None] | None = None,
              on_stop: Callable[[], None] | None = None) -> int:
    """Fork ``count`` workers running ``run_worker(index)``; return the parent's exit code.
    ``on_exit(pid)`` is called for every worker that ended (e.g. to drop its live gauges),
    ``on_stop()`` once when stopping begins (e.g. to remove the LMTP socket file, so that
    ``mailwing deliver`` goes its direct way instead of waiting on workers that drain)."""
    children: dict[int, tuple[int, float]] = {}  # pid -> (index, start time)
    state = {"stopping": False, "failed": False}

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        if not state["stopping"]:
            log.info("stopping %d worker(s)", len(children))
            if on_stop is not None:
                on_stop()
        state["stopping"] = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            if state["stopping"]:
                break
            children[_spawn(run_worker, index)] = (index, time.monotonic())
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in children:
                continue
            index, started = children.pop(pid)
            if on_exit is not None:
                on_exit(pid)
            code, how = _describe(status)
            if state["stopping"]:
                log.info("worker %d (pid %d) stopped: %s", index, pid, how)
                state["failed"] = state["failed"] or code != 0
            elif time.monotonic() - started < STARTUP_WINDOW:
                log.error("worker %d (pid %d) failed at start-up (%s); stopping", index, pid, how)
                state["failed"] = True
                stop_all()
            else:
                log.error("worker %d (pid %d) died (%s); starting a new one", index, pid, how)
                children[_spawn(run_worker, index)] = (index, time.monotonic())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if state["failed"] else 0
