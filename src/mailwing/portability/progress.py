"""Progress of a long import or copy: a bar with messages/s and ETA on a terminal, plain
lines otherwise (a log file or a pipe gets a line per folder, not a screen of ``\\r``).

It only formats and prints; the numbers come from the caller, and the clock is injectable so
the output can be tested without waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Counts messages and bytes against a known total."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self.bytes = 0
        self.started = clock()
        self._last_draw = 0.0

    def start(self, total: int) -> None:
        self.total = total
        self.started = self.clock()

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.done}/{self.total} messages ({pct:.0f}%), {self.bytes / 1e6:.1f} MB, "
                f"{rate:.0f} msg/s, ETA {format_duration(eta)}")

    def advance(self, messages: int = 1, size: int = 0) -> None:
        self.done += messages
        self.bytes += size
        if self.quiet or not self.tty:
            return
        now = self.clock()
        if now - self._last_draw < 0.1 and self.done < self.total:
            return
        self._last_draw = now
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {self.line()}\x1b[K")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (a folder finished, an item skipped)."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
