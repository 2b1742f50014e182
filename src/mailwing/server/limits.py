"""Connection caps and the refusal line each protocol sends over them.

``server.max_connections`` caps one worker process; ``server.max_connections_per_ip`` caps
one client address across every worker and node (the other workers' counts come from
:mod:`mailwing.shared.limits`). A client over either gets one line in its own protocol, so
that its software shows a sensible error and retries later, and is then disconnected. The
lines live in one table here rather than in each session, since the sessions never see
refused connections.
"""

from __future__ import annotations

from collections import Counter

from mailwing.shared.limits import ConnectionCounts, NoConnections

__all__ = ["REFUSALS", "ConnectionLimiter", "refusal_line"]

#: protocol -> line sent to a client refused for too many connections ({host}: our hostname).
REFUSALS: dict[str, str] = {
    "pop3": "-ERR [SYS/TEMP] too many connections, try again later\r\n",  # RFC 3206
    "smtp": "421 4.7.0 {host} too many connections, try again later\r\n",  # RFC 5321 3.8
    "imap": "* BYE [UNAVAILABLE] too many connections, try again later\r\n",  # RFC 5530
    "http": "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
}


def refusal_line(protocol: str, hostname: str) -> bytes:
    return REFUSALS.get(protocol, "").format(host=hostname).encode("ascii")


class ConnectionLimiter:
    """Counts live connections in total and per client IP."""

    def __init__(self, max_total: int, max_per_ip: int,
                 shared: ConnectionCounts | None = None) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self._per_ip: Counter[str] = Counter()
        self.shared: ConnectionCounts = shared or NoConnections()

    def acquire(self, ip: str) -> bool:
        """Take a slot for ``ip``; False (nothing taken) when a cap is reached."""
        if self.total >= self.max_total or self.count(ip) >= self.max_per_ip:
            return False
        self.total += 1
        self._per_ip[ip] += 1
        self.shared.changed(ip, 1)
        return True

    def release(self, ip: str) -> None:
        self.total -= 1
        self._per_ip[ip] -= 1
        self.shared.changed(ip, -1)
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]

    def count(self, ip: str) -> int:
        """Connections from ``ip`` here and, as last published, on other workers and nodes."""
        return self._per_ip.get(ip, 0) + self.shared.others(ip)

    def snapshot(self) -> dict[str, int]:
        return dict(self._per_ip)
