"""Wall time of ``mailwing deliver`` per message, as an MTA runs it (one process per message).

Run ``make bench-deliver`` or ``.venv/bin/python benchmarks/deliver_bench.py --help``.

What is measured: a throw-away data folder with a SQLite database (or a throw-away PostgreSQL
database) and one user; then ``--runs`` times ``mailwing deliver --to USER`` with a 4 KB
message on standard input, each a new process, timed from spawn to exit. Beside it, in the
same run and alternating with it, the same number of ``python -c pass`` (the interpreter's own
start-up, which no change to mailwing can remove), so a loaded machine shows in both figures.
The target of issue #9 is <= 60 ms per message.

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


def _timed(cmd: list[str], env: dict[str, str], data: bytes) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, input=data, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--postgres-url", default=os.environ.get(
        "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--compare-src", type=Path, metavar="DIR",
                    help="also time deliver from this source tree (its src folder), "
                         "interleaved")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mw-deliver-bench-"))
    env = dict(os.environ, MAILWING_SERVER_DATA_DIR=str(root / "data"))
    dbname = ""
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
        ours: list[float] = []
        python: list[float] = []
        other: list[float] = []
        for _ in range(3):  # warm the page cache
            _timed(deliver, env, MESSAGE)
            if other_env is not None:
                _timed(deliver, other_env, MESSAGE)
        for _ in range(args.runs):
            ours.append(_timed(deliver, env, MESSAGE))
            if other_env is not None:
                other.append(_timed(deliver, other_env, MESSAGE))
            python.append(_timed(baseline, env, b""))
        ms = [x * 1000 for x in ours]
        base = [x * 1000 for x in python]
        print(f"mailwing deliver ({args.backend}), {args.runs} messages of {len(MESSAGE)} B, "
              f"one process each:")
        print(f"  median {statistics.median(ms):6.1f} ms   p90 "
              f"{statistics.quantiles(ms, n=10)[-1]:6.1f} ms   min {min(ms):6.1f} ms")
        if other:
            cmp = [x * 1000 for x in other]
            print(f"{args.compare_src} (same run, interleaved): median "
                  f"{statistics.median(cmp):6.1f} ms   p90 "
                  f"{statistics.quantiles(cmp, n=10)[-1]:6.1f} ms   min {min(cmp):6.1f} ms")
        print(f"python -c pass (same run, alternating): median {statistics.median(base):6.1f}"
              f" ms   min {min(base):6.1f} ms")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"target <= 60 ms per message: "
              f"{'met' if statistics.median(ms) <= 60 else 'NOT met'} (median)")
        return 0
    finally:
        if dbname:
            subprocess.run(["psql", args.postgres_url, "-qc", f"DROP DATABASE {dbname}"],
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
