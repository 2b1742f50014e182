"""mailwing: a mail server (SMTP, POP3, IMAP) in Python over SQLite or PostgreSQL.

``from mailwing import MailServer`` (or ``AsyncMailServer``) gives the embeddable server of
:mod:`mailwing.embed`. It is imported on first use, so ``mailwing deliver`` and the other
commands do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AsyncMailServer", "MailServer", "StoredMessage", "__version__"]

if TYPE_CHECKING:
    from mailwing.embed import AsyncMailServer, MailServer, StoredMessage


def __getattr__(name: str) -> Any:
    if name in ("AsyncMailServer", "MailServer", "StoredMessage"):
        from mailwing import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'mailwing' has no attribute {name!r}")
