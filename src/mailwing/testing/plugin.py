"""The pytest plugin: a real mailwing server per test or per session, users, and captured mail.

Fixtures (all synchronous, so they serve plain and async tests alike; the server runs on its
own thread):

``mailwing_server``
    A fresh :class:`~mailwing.embed.MailServer` for one test. Options come from the
    ``@pytest.mark.mailwing(...)`` marker (``tls=True``, ``capture=True``, ``hostname=...``).
``mailwing_session_server``
    One server for the whole test session (faster; tests share its state).
``mailwing_user``
    A new user with a random address and password on ``mailwing_server``, as a
    :class:`MailUser` (``.address``, ``.password``, ``.messages()``, ``.wait_for()``).
``mailwing_capture``
    A capture-mode server: any recipient at any domain is accepted, with or without AUTH, and
    nothing is ever relayed; ``.captured()`` lists every message, ``.messages(address)`` the
    ones for one address. The usual fixture for testing an application that sends mail.

Why fixtures around the embedded server rather than a container: starting one takes tens of
milliseconds, needs nothing installed but mailwing, and the test can look inside (messages
and flags) without a client.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mailwing.embed import MailServer, StoredMessage

__all__ = ["MailUser"]


@dataclass
class MailUser:
    """A user created on a test server."""

    server: MailServer
    address: str
    password: str

    def messages(self, mailbox: str = "INBOX") -> list[StoredMessage]:
        return self.server.messages(self.address, mailbox)

    def wait_for(self, count: int = 1, *, mailbox: str = "INBOX",
                 timeout: float = 10.0) -> list[StoredMessage]:
        """Wait until ``count`` messages are there (TimeoutError otherwise); them."""
        return self.server.wait_for_messages(self.address, count, mailbox=mailbox,
                                             timeout=timeout)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mailwing(**options): options for the mailwing_server fixture "
                   "(tls=True, capture=True, hostname=...)")


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("mailwing")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def mailwing_server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    """A real mail server (SMTP, submission, IMAP, POP3) for this test."""
    with MailServer(**_options(request)) as server:
        yield server


@pytest.fixture(scope="session")
def mailwing_session_server() -> Iterator[MailServer]:
    """One real mail server shared by the whole test session."""
    with MailServer() as server:
        yield server


@pytest.fixture
def mailwing_user(mailwing_server: MailServer) -> MailUser:
    """A new user on ``mailwing_server`` (domain ``example.test``)."""
    user = MailUser(mailwing_server, f"user-{secrets.token_hex(4)}@example.test",
                    secrets.token_urlsafe(12))
    mailwing_server.add_user(user.address, user.password)
    return user


@pytest.fixture
def mailwing_capture() -> Iterator[MailServer]:
    """A capture-mode server: accepts everything, sends nothing, keeps it all."""
    with MailServer(capture=True) as server:
        yield server
