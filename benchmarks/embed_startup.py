"""Start-up time of the embeddable server: from ``start()`` to every listener accepting.

Each round is a fresh Python process (so nothing is cached between rounds) that measures:

* ``import``: ``from mailwing import MailServer`` plus the first use of the package;
* ``cold start``: the first ``AsyncMailServer.start()`` of the process (new temporary SQLite
  database, schema created, SMTP/submission/IMAP/POP3 bound), which also imports the session
  and storage modules on first use;
* ``warm start``: a second server started in the same process, as a pytest session that
  starts one server per test sees from its second test on.

Printed: median, 90th percentile and worst of each over ``--rounds`` processes. Target (issue
12): all listeners ready within 150 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import asyncio, json, socket, time
t0 = time.perf_counter()
from mailwing import AsyncMailServer
AsyncMailServer  # resolve the lazy attribute
t1 = time.perf_counter()

async def one():
    server = AsyncMailServer()
    t = time.perf_counter()
    await server.start()
    for port in server.ports.values():  # every listener accepts
        socket.create_connection(("127.0.0.1", port), 2).close()
    took = time.perf_counter() - t
    await server.stop()
    return took

async def main():
    cold = await one()
    warm = await one()
    print(json.dumps({"import": t1 - t0, "cold": cold, "warm": warm}))

asyncio.run(main())
"""


def _summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   worst {ms[-1]:6.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="fresh processes (default 10)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"import": [], "cold": [], "warm": []}
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, check=True,
                             text=True).stdout
        for key, value in json.loads(out.strip().splitlines()[-1]).items():
            results[key].append(value)
    print(f"embedded server start-up, {args.rounds} fresh processes "
          "(SMTP, submission, IMAP, POP3 on loopback, temporary SQLite)")
    print(f"  import      {_summary(results['import'])}")
    print(f"  cold start  {_summary(results['cold'])}")
    print(f"  warm start  {_summary(results['warm'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
