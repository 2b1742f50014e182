"""Wall time of ``mailwing deliver`` per message, as an MTA runs it (one process per message).

Run ``make bench-deliver`` or ``.venv/bin/python benchmarks/deliver_bench.py --help``.

What is measured: a throw-away data folder with a SQLite database (or a throw-away PostgreSQL
database) and one user; then ``--runs`` times ``mailwing deliver --to USER`` with a 4 KB
message on standard input, each a new process, timed from spawn to exit. Beside it, in the
same run and alternating with it, the same number of ``python -c pass`` (the interpreter's own
start-up, which no change to mailwing can remove), so a loaded machine shows in both figures.
The target of issue #9 is <= 60 ms per message.

``--modes direct,lmtp`` times two ways in the same loop, alternating: ``direct`` is the
process opening the storage itself (``lmtp.socket`` set empty, so it never tries the
socket), ``lmtp`` hands the message to a running ``mailwing serve`` (started here on the same
data, ``--workers`` processes, every TCP listener off) through its LMTP socket, as
``mailwing deliver`` does by default when a server runs. The default is ``direct`` alone.

``--compare-src DIR`` adds, in the same loop, ``mailwing deliver`` run from another source
tree (``DIR`` is its ``src`` folder, put first on ``PYTHONPATH``; e.g. ``git archive`` of an
older commit), so that a change is measured against the code before it under the same load.

Bytecode: a packaged install has its ``.pyc`` files compiled at install time; an editable
install with ``PYTHONDONTWRITEBYTECODE`` set (as in CI) would compile every module from source
on every run (~30 ms here). The script therefore compiles the package once first
(``compileall``), which is what ``pip install`` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
MESSAGE = (b"From: a@example.org\r\nTo: bob@bench.test\r\nSubject: deliver bench\r\n\r\n"
           + b"x" * 72 + b"\r\n") * 1 + (b"y" * 76 + b"\r\n") * 50


def _timed(cmd: list[str], env: dict[str, str], data: bytes, *, expect: str = "") -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, input=data, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()}")
    if expect and expect not in done.stderr.decode():
        raise SystemExit(f"{cmd[0]} did not go the expected way: {done.stderr.decode()}")
    return elapsed


_LISTENERS = ("SMTP", "SUBMISSION", "SMTPS", "POP3", "POP3S", "IMAP", "IMAPS", "ADMIN")


def _start_server(mw: str, env: dict[str, str], workers: int, root: Path
                  ) -> subprocess.Popen[bytes]:
    """``mailwing serve`` with only its LMTP socket; returns once the socket answers."""
    import socket

    serve_env = dict(env, MAILWING_SERVER_WORKERS=str(workers),
                     MAILWING_AUTH_CHECK_SPF="false", MAILWING_AUTH_CHECK_DKIM="false",
                     MAILWING_AUTH_CHECK_DMARC="false",
                     **{f"MAILWING_{name}_PORT": "0" for name in _LISTENERS})
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - the server's, closed with it
    proc = subprocess.Popen([mw, "serve"], env=serve_env, stdout=log, stderr=log)
    path = root / "data" / "lmtp.sock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mailwing serve exited: {(root / 'serve.log').read_text()}")
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(path))
                if probe.recv(3) == b"220":
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("mailwing serve did not open its LMTP socket in 30 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--postgres-url", default=os.environ.get(
        "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--modes", default="direct",
                    help="comma-separated: direct, lmtp (through a running server; see above)")
    ap.add_argument("--workers", type=int, default=2,
                    help="server.workers of the server the lmtp mode starts")
    ap.add_argument("--compare-src", type=Path, metavar="DIR",
                    help="also time deliver from this source tree (its src folder), "
                         "interleaved")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"direct", "lmtp"}:
        ap.error("--modes: direct, lmtp or both")
    root = Path(tempfile.mkdtemp(prefix="mw-deliver-bench-"))
    env = dict(os.environ, MAILWING_SERVER_DATA_DIR=str(root / "data"))
    env.pop("MAILWING_CONFIG", None)
    dbname = ""
    server: subprocess.Popen[bytes] | None = None
    try:
        if args.backend == "sqlite":
            env["MAILWING_DATABASE_URL"] = f"sqlite:///{root / 'data' / 'm.db'}"
        else:
            dbname = f"mw_deliver_{uuid.uuid4().hex[:8]}"
            subprocess.run(["psql", args.postgres_url, "-qc", f"CREATE DATABASE {dbname}"],
                           check=True)
            env["MAILWING_DATABASE_URL"] = args.postgres_url.rsplit("/", 1)[0] + "/" + dbname
        import compileall

        import mailwing

        compileall.compile_dir(str(Path(mailwing.__file__).parent), quiet=1)
        other_env = None
        if args.compare_src is not None:
            compileall.compile_dir(str(args.compare_src / "mailwing"), quiet=1)
            other_env = dict(env, PYTHONPATH=str(args.compare_src.resolve()))
        mw = str(BIN / "mailwing")
        subprocess.run([mw, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([mw, "user", "add", "bob@bench.test", "--password-stdin"], env=env,
                       input=b"pw\n", check=True, capture_output=True)
        deliver = [mw, "deliver", "--to", "bob@bench.test"]
        baseline = [sys.executable, "-c", "pass"]
        if "lmtp" in modes:
            server = _start_server(mw, env, args.workers, root)
        # direct: never the socket (as without a server); lmtp: the socket must be used
        envs = {"direct": dict(env, MAILWING_LMTP_SOCKET=""), "lmtp": env}
        expect = {"direct": "", "lmtp": "over LMTP"}
        ours: dict[str, list[float]] = {mode: [] for mode in modes}
        python: list[float] = []
        other: list[float] = []
        for _ in range(3):  # warm the page cache
            for mode in modes:
                _timed(deliver, envs[mode], MESSAGE, expect=expect[mode])
            if other_env is not None:
                _timed(deliver, other_env, MESSAGE)
        for _ in range(args.runs):
            for mode in modes:
                ours[mode].append(_timed(deliver, envs[mode], MESSAGE, expect=expect[mode]))
            if other_env is not None:
                other.append(_timed(deliver, other_env, MESSAGE))
            python.append(_timed(baseline, env, b""))
        base = [x * 1000 for x in python]
        medians = {}
        for mode in modes:
            ms = [x * 1000 for x in ours[mode]]
            medians[mode] = statistics.median(ms)
            where = (f"through the LMTP socket of a running server ({args.workers} workers)"
                     if mode == "lmtp" else "direct")
            print(f"mailwing deliver ({args.backend}, {where}), {args.runs} messages of "
                  f"{len(MESSAGE)} B, one process each:")
            print(f"  median {medians[mode]:6.1f} ms   p90 "
                  f"{statistics.quantiles(ms, n=10)[-1]:6.1f} ms   min {min(ms):6.1f} ms")
        if len(modes) == 2:
            print(f"lmtp / direct (medians): {medians['lmtp'] / medians['direct']:.2f}")
        if other:
            cmp = [x * 1000 for x in other]
            print(f"{args.compare_src} (same run, interleaved): median "
                  f"{statistics.median(cmp):6.1f} ms   p90 "
                  f"{statistics.quantiles(cmp, n=10)[-1]:6.1f} ms   min {min(cmp):6.1f} ms")
        print(f"python -c pass (same run, alternating): median {statistics.median(base):6.1f}"
              f" ms   min {min(base):6.1f} ms")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for mode in modes:
            print(f"target <= 60 ms per message ({mode}): "
                  f"{'met' if medians[mode] <= 60 else 'NOT met'} (median)")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if dbname:
            subprocess.run(["psql", args.postgres_url, "-qc", f"DROP DATABASE {dbname}"],
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
