"""IMAP4rev1 protocol core, sans-IO (RFC 3501; syntax of RFC 2177 IDLE, 2342 NAMESPACE,
2971 ID, 3691 UNSELECT, 4315 UIDPLUS, 4959 SASL-IR, 5161 ENABLE, 6154 SPECIAL-USE,
6851 MOVE, 7888 LITERAL+; RFC 7162 CONDSTORE modifiers parsed only).

Bytes in, typed commands out; typed responses in, bytes out. No I/O, no storage.

Input (``reader``, ``events``)::

    reader = ImapReader(max_line=65536, max_literal=65536, max_message=limits.max_message_size)
    reader.receive_data(data)
    while not isinstance(ev := reader.next_event(), NeedData):
        CommandReceived(command)   -> check states.allowed(state, command), run it
        SendContinuation(text)     -> write ev.response() ("+ Ready for literal data") now
        ProtocolError(tag, text, too_big, code, close)
                                   -> write ev.response() (tag BAD / NO [TOOBIG] / NO [code],
                                      untagged when tag is None); if ev.close: BYE and close
        LineReceived(line)         -> only after reader.expect_line(): AUTHENTICATE
                                      response line ("*" cancels) or IDLE "DONE"
    reader.clear()                 -> after STARTTLS, drop buffered plaintext

Commands (``commands``, frozen dataclasses with ``tag`` and class attribute ``name``):
Capability Noop Logout StartTls Authenticate(mechanism, initial_response: bytes|None)
Login(username, password) Select(mailbox, readonly, condstore) (EXAMINE: readonly=True)
Create(mailbox, special_use) Delete Rename(old, new) Subscribe Unsubscribe
List(reference, patterns, select_options, return_options) Lsub(reference, pattern)
Status(mailbox, items) Append(mailbox, flags, internal_date, message) Check Close Unselect
Expunge(uid_set|None) Search(criteria, charset, uid, return_options)
Fetch(sequence_set, items, uid, changed_since) Store(sequence_set, mode "+"/"-"/"",
silent, flags, uid, unchanged_since) Copy/Move(sequence_set, mailbox, uid) Idle Namespace
Enable(capabilities) Id(params). Mailbox names are decoded (modified UTF-7), INBOX
normalised. System flags come capitalised (``\\Seen``).

Values: ``SequenceSet`` (parse, resolve(max), contains(n, max), exceeds(max), format(ints));
``FetchItem(name, section, partial, peek)`` with ``response_name``/``sets_seen``/
``is_section`` and ``Section(part, text, fields)``; search keys in ``search`` (All, Flag,
Keyword, New, Old, Recent, Sequence, Uid, Header, Contains, Date, Size, ModSeq, Not, Or, And).

Output: ``wire`` (quoted, literal, astring, nstring, encode_sexp, Atom, Raw, encode_mailbox,
flag_list, format_datetime), ``responses`` (ok/no/bad/bye/continuation/untagged, exists,
expunge, recent, flags, list_response, status, search, capability, namespace, enabled,
id_response, fetch, fetch_segments + LiteralBody for streaming, ``Code`` for response
codes), ``texts`` (every human-readable text), ``states`` (State, allowed),
``capabilities.capabilities(tls_active, plaintext_allowed, authenticated)``.
"""

from __future__ import annotations

from mailwing.proto.imap import commands, responses, search, texts, wire
from mailwing.proto.imap.capabilities import capabilities
from mailwing.proto.imap.events import (
    NEED_DATA,
    CommandReceived,
    Event,
    LineReceived,
    NeedData,
    ProtocolError,
    SendContinuation,
)
from mailwing.proto.imap.fetchitems import FetchItem, Section
from mailwing.proto.imap.reader import ImapReader
from mailwing.proto.imap.responses import Code, LiteralBody
from mailwing.proto.imap.seqset import SequenceSet
from mailwing.proto.imap.states import State, allowed
from mailwing.proto.imap.utf7 import Utf7Error
from mailwing.proto.imap.utf7 import decode as utf7_decode
from mailwing.proto.imap.utf7 import encode as utf7_encode

__all__ = [
    "NEED_DATA", "Code", "CommandReceived", "Event", "FetchItem", "ImapReader",
    "LineReceived", "LiteralBody", "NeedData", "ProtocolError", "Section",
    "SendContinuation", "SequenceSet", "State", "Utf7Error", "allowed", "capabilities",
    "commands", "responses", "search", "texts", "utf7_decode", "utf7_encode", "wire",
]
