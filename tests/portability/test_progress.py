"""Progress output: a redrawn bar with messages/s and ETA on a terminal, plain lines
otherwise (no carriage returns in a log file)."""

from __future__ import annotations

import io

from mailwing.portability.progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_bar_has_rate_and_eta() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=True, clock=clock)
    progress.start(100)
    clock.now += 10
    progress.advance(20, 2_000_000)
    text = out.getvalue()
    assert text.startswith("\r[######------------------------]")
    assert "20/100 messages (20%), 2.0 MB, 2 msg/s, ETA 00:40" in text
    progress.note("INBOX -> INBOX: 20 of 20 imported")
    assert out.getvalue().endswith("\r\x1b[KINBOX -> INBOX: 20 of 20 imported\n")


def test_plain_lines_when_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=False, clock=clock)
    progress.start(3)
    progress.advance(3, 10)
    progress.note("done")
    progress.finish()
    assert out.getvalue() == "done\n"


def test_durations() -> None:
    assert format_duration(59) == "00:59"
    assert format_duration(3725) == "1:02:05"
