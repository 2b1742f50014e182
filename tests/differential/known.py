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
    Known("qresync.txt", r"^FETCH \d+ \(BODY\[TEXT\]\)$",
          "A FETCH that sets \\Seen with QRESYNC on: mailwing puts UID (and MODSEQ) into the "
          "same FETCH response as the body and FLAGS; Dovecot sends them in a second FETCH "
          "response for the message. RFC 3501 section 7.4.2 lets a server split a message's "
          "data items over several FETCH responses or send them in one; RFC 7162 only asks "
          "that UID and MODSEQ be reported once QRESYNC is on."),
    Known("esearch_searchres.txt", r"^EXPUNGE$",
          "RFC 3501 7.3.2/7.4.1: after EXPUNGE Dovecot re-announces RECENT although the "
          "client can derive it; mailwing sends RECENT only with EXISTS. Both are allowed."),
    Known("list_extended.txt", r'^LIST "" "V',
          "RFC 5258 section 3: a deleted mailbox kept only as the parent of its children is "
          "not a mailbox, so it is \\NonExistent (which implies \\Noselect); Dovecot keeps "
          "its Maildir folder and calls it \\Noselect."),
    Known("binary.txt", r"^FETCH \d+ BINARY\S*\[1\]$",
          "Dovecot sends an untagged FETCH carrying only UID before its tagged NO "
          "[UNKNOWN-CTE]; RFC 3516 section 4.3 asks only for the NO [UNKNOWN-CTE], and a FETCH "
          "response without the requested data tells the client nothing."),
]


def known_difference(script: str, command: str) -> Known | None:
    return next((k for k in KNOWN if k.covers(script, command)), None)
