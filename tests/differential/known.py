"""Known, justified differences between Dovecot and mailwing: the one place they are kept.

Each entry names the script (a glob), the command (a regular expression on the step's
text) and why the difference is right or accepted, with the RFC section. A difference that
no entry covers fails the test. Keep this list short: fix mailwing when it is wrong, and
record an entry only when Dovecot departs from the RFC, or when both answers are allowed and
the difference is a deliberate choice.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

__all__ = ["KNOWN", "Known", "known_difference"]


@dataclass(frozen=True)
class Known:
    script: str
    command: str
    reason: str

    def covers(self, script: str, command: str) -> bool:
        return fnmatch.fnmatch(script, self.script) and re.search(
            self.command, command, re.IGNORECASE) is not None


KNOWN: list[Known] = [
]


def known_difference(script: str, command: str) -> Known | None:
    return next((k for k in KNOWN if k.covers(script, command)), None)
