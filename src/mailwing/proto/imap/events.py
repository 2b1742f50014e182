"""What :class:`~mailwing.proto.imap.reader.ImapReader` hands to the session.

Why: the reader never writes; each event says what arrived or what the session must write
before more input can come (the ``+`` continuation for a synchronising literal, RFC 3501
section 7.5). Errors are events, never exceptions, and know their own wire form
(:meth:`ProtocolError.response`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.proto.imap import responses
from mailwing.proto.imap.commands import Command

__all__ = [
    "NEED_DATA", "CommandReceived", "Event", "LineReceived", "NeedData", "ProtocolError",
    "SendContinuation",
]


@dataclass(frozen=True, slots=True)
class CommandReceived:
    command: Command


@dataclass(frozen=True, slots=True)
class SendContinuation:
    """Write ``+ text`` now (see :func:`responses.continuation`): the client waits for it
    before it sends the literal's bytes."""

    text: str

    def response(self) -> bytes:
        return responses.continuation(self.text)


@dataclass(frozen=True, slots=True)
class LineReceived:
    """The raw line (no CRLF) asked for by :meth:`ImapReader.expect_line`: an AUTHENTICATE
    response (base64 or ``*``) or ``DONE`` ending IDLE (RFC 2177)."""

    line: bytes


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The client sent something the server rejects without running a command.

    ``tag`` is None when no tag could be read (answer untagged). ``too_big`` means
    ``NO [TOOBIG]`` (RFC 7889 / 4469 style limits); ``code`` (e.g. ``BADCHARSET (...)``)
    means ``NO [code]``; otherwise ``BAD``. ``close``: the input cannot be resynchronised
    (an absurd non-synchronising literal): send the response, then ``BYE`` and close."""

    tag: str | None
    text: str
    too_big: bool = False
    code: str | None = None
    close: bool = False
    #: the failed command asked for ``RETURN (... SAVE ...)``: RFC 5182 section 2.1 empties
    #: the saved search result when such a SEARCH (or SORT) fails, syntax errors included
    saves_result: bool = False

    def response(self) -> bytes:
        tag = self.tag or "*"
        if self.too_big:
            return responses.no(tag, self.text, "TOOBIG")
        if self.code is not None:
            return responses.no(tag, self.text, self.code)
        return responses.bad(tag, self.text)


@dataclass(frozen=True, slots=True)
class NeedData:
    """Read more bytes and call ``receive_data``."""


NEED_DATA = NeedData()

Event = CommandReceived | SendContinuation | LineReceived | ProtocolError | NeedData
