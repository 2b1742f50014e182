"""The throwaway Dovecot the differential tests compare against.

It is the benchmarks' launcher (``benchmarks/imap_dovecot.py`` over
``benchmarks/dovecot_harness.py``: private config, Maildir and passwd-file in a temp folder,
``dovecot -F -c FILE``, process-group clean-up), configured to look like a fresh mailwing
account: the same special-use mailboxes, created and subscribed at first login, ``/`` as
the hierarchy delimiter, a filesystem-like Maildir layout (so names may contain dots), and
``{PLAIN}`` passwords (cheap; the password scheme is not what is compared).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from imap_dovecot import DovecotImap, dovecot_available  # noqa: E402

__all__ = ["DifferentialDovecot", "dovecot_available"]

#: mailwing's default mailboxes for a new user (storage creates them with the account)
SPECIAL = {"Archive": "\\Archive", "Drafts": "\\Drafts", "Junk": "\\Junk", "Sent": "\\Sent",
           "Trash": "\\Trash"}


def _mailboxes() -> str:
    blocks = [f'  mailbox "{name}" {{\n    auto = subscribe\n    special_use = {use}\n  }}'
              for name, use in SPECIAL.items()]
    blocks.append('  mailbox INBOX {\n    auto = subscribe\n  }')
    return "\n".join(blocks)


class DifferentialDovecot(DovecotImap):
    """Dovecot for comparisons: few processes, plain passwords, mailwing-like mailboxes."""

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root, port, clients=8, scheme="PLAIN", layout=":LAYOUT=fs",
                         namespace_extra=_mailboxes(),
                         extra="imap_idle_notify_interval = 1 mins\n")

    def set_plain_users(self, users: dict[str, str]) -> None:
        self.set_users({u: "{PLAIN}" + p for u, p in users.items()})
