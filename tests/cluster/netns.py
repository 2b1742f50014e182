"""The cluster tier's network: namespaces on one host bridge, in a /24 that exists only here.

    host (test process, PostgreSQL relay)  10.213.7.1   on bridge mwbr0
    lb    (HAProxy)                        10.213.7.10
    node1 (mailwing serve)                 10.213.7.11
    node2 (mailwing serve)                 10.213.7.12
    mx    (remote test MX for outbound)    10.213.7.20

Each namespace is joined to the bridge by a veth pair; nothing is routed beyond the bridge,
so no packet can leave the machine. Set-up failures raise :class:`NetnsError` (the tier
fails loudly rather than skipping); :func:`teardown` removes everything even after a partial
set-up, and stale leftovers of a killed run are removed before a new set-up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess

__all__ = ["ADDRESSES", "BRIDGE", "HOST", "NetnsError", "setup", "teardown"]

BRIDGE = "mwbr0"
HOST = "10.213.7.1"
ADDRESSES = {"lb": "10.213.7.10", "node1": "10.213.7.11", "node2": "10.213.7.12",
             "mx": "10.213.7.20"}


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip")
    if ip is None:
        raise NetnsError("the ip command (iproute2) is not installed")
    result = subprocess.run([ip, *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def teardown() -> None:
    """Remove the namespaces, their links and the bridge; processes still running inside a
    namespace (left by a run that was itself killed) are killed first, or the namespace
    would live on with them."""
    for name in ADDRESSES:
        pids = _ip("netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name, check=False)
        _ip("link", "del", f"mw-{name}", check=False)
    _ip("link", "del", BRIDGE, check=False)


def setup() -> None:
    teardown()
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{HOST}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for name, addr in ADDRESSES.items():
        _ip("netns", "add", name)
        _ip("link", "add", f"mw-{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("link", "set", f"mw-{name}", "master", BRIDGE)
        _ip("link", "set", f"mw-{name}", "up")
        _ip("-n", name, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")


def exec_prefix(name: str) -> list[str]:
    """Prefix for running a command inside namespace ``name``."""
    ip = shutil.which("ip") or "ip"
    return [ip, "netns", "exec", name]
