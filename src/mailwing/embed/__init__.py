"""The embeddable server: a whole mailwing inside a Python program or a test suite.

See :mod:`mailwing.embed.server`; the pytest fixtures built on it are in
:mod:`mailwing.testing`.
"""

from mailwing.embed.server import AsyncMailServer, MailServer, StoredMessage

__all__ = ["AsyncMailServer", "MailServer", "StoredMessage"]
