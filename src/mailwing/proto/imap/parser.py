"""Turn one assembled command into a typed :mod:`commands` value (RFC 3501 section 9).

Why: the reader frames (lines and literals); this module applies the grammar of each
command. :func:`parse_command` raises :class:`~grammar.ParseError` only; :func:`read_tag`
recovers the tag from a line that failed, so the error can be tagged.

Mailbox names (``mailbox`` rule) are modified UTF-7 (section 5.1.3), decoded here; clients
that send raw UTF-8 (not allowed by IMAP4rev1, common in practice) are accepted as UTF-8
text, since 8-bit bytes cannot be mistaken for modified UTF-7. ``INBOX`` is case-insensitive
(section 5.1) and normalised to upper case. In a session that enabled UTF8=ACCEPT or
IMAP4rev2 (``wire.UTF8_NAMES``), names are plain UTF-8: ``&`` is not a shift character.
"""

from __future__ import annotations

from collections.abc import Callable

from mailwing.proto.common.sasl import SaslError, decode_response
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import listext, texts, utf7
from mailwing.proto.imap.fetchitems import parse_fetch_items
from mailwing.proto.imap.grammar import ASTRING_CHARS, Cursor, ParseError, run_pattern
from mailwing.proto.imap.search import parse_search
from mailwing.proto.imap.sortparse import parse_sort, parse_thread
from mailwing.proto.imap.wire import UTF8_NAMES

__all__ = ["UNDECODABLE", "decode_mailbox", "parse_command", "read_tag"]

STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                          "HIGHESTMODSEQ", "SIZE", "MAILBOXID", "APPENDLIMIT"})
_TAG_CHARS = ASTRING_CHARS - {ord("+")}
_MAX_ID_PAIRS = 30  # RFC 2971 section 3.3
_KEYWORD_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TAG_RUN = run_pattern(_TAG_CHARS)


def read_tag(line: bytes) -> str | None:
    """The tag at the start of ``line``, or None if there is no valid one."""
    m = _TAG_RUN.match(line)
    assert m is not None  # ``[...]*`` matches the empty string at least
    end = m.end()
    if end == 0 or end > 64 or (end < len(line) and line[end] != 0x20):
        return None
    return line[:end].decode("ascii")


#: prefixed to a name that is syntactically valid but not decodable (invalid modified UTF-7
#: or UTF-8): the command still parses, so SELECT/EXAMINE/STATUS answer NO and a LIST
#: pattern simply matches nothing (RFC 3501 sections 6.3.1, 6.3.8), not BAD. No stored name
#: can start with it (control characters are refused by the name rules).
UNDECODABLE = "\x00"


def decode_mailbox(raw: bytes, *, normalise: bool = True) -> str:
    if UTF8_NAMES.get():  # RFC 6855 section 3 / RFC 9051: names are UTF-8, "&" is itself
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return UNDECODABLE + raw.decode("latin-1")
        return "INBOX" if normalise and name.upper() == "INBOX" else name
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return UNDECODABLE + raw.decode("latin-1")
    else:
        try:
            name = utf7.decode(text)
        except utf7.Utf7Error:
            return UNDECODABLE + text
    if normalise and name.upper() == "INBOX":
        return "INBOX"
    return name


def _mailbox(cur: Cursor) -> str:
    return decode_mailbox(cur.astring())


def _modifier(cur: Cursor, name: bytes) -> int | None:
    """RFC 7162 ``SP "(" name SP mod-sequence ")"`` (CHANGEDSINCE / UNCHANGEDSINCE)."""
    if bytes(cur.buf[cur.pos:cur.pos + len(name) + 2]).upper() != b" (" + name:
        return None
    cur.pos += len(name) + 2
    cur.sp()
    value = cur.number64()
    cur.expect(b")")
    return value


# -- command bodies: each gets the tag and a cursor just after the command name ---------

def _no_args(cls: type[c.Command]) -> Callable[[str, Cursor], c.Command]:
    return lambda tag, cur: cls(tag)


def _authenticate(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    mech = cur.keyword()
    initial = None
    if cur.accept(b" "):
        raw = cur.atom("initial response")
        try:
            initial = decode_response(raw, initial=True)
        except SaslError as exc:
            raise ParseError(texts.BAD_BASE64) from exc
    return c.Authenticate(tag, mech, initial)


def _login(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    user = cur.text_string()
    cur.sp()
    return c.Login(tag, user, cur.text_string())


def _qresync_param(cur: Cursor) -> c.QresyncParams:
    """RFC 7162 section 3.2.5: ``"(" uidvalidity SP mod-sequence-value [SP known-uids]
    [SP seq-match-data] ")"``, after ``QRESYNC SP``."""
    cur.expect(b"(")
    uidvalidity = cur.number(nonzero=True)
    cur.sp()
    modseq = cur.number64()
    known = None
    match = None
    more = cur.accept(b" ")
    if more and cur.peek() != ord("("):
        known = cur.sequence_set()
        more = cur.accept(b" ")
    if more:
        if cur.accept(b"("):
            seqs = cur.sequence_set()
            cur.sp()
            uids = cur.sequence_set()
            cur.expect(b")")
            if seqs.has_star or uids.has_star:
                raise ParseError(texts.BAD_SEQ_MATCH)
            match = (seqs, uids)
        else:
            raise ParseError(texts.BAD_SELECT_PARAM)
    cur.expect(b")")
    return c.QresyncParams(uidvalidity, modseq, known, match)


def _select(readonly: bool) -> Callable[[str, Cursor], c.Command]:
    def parse(tag: str, cur: Cursor) -> c.Command:
        cur.sp()
        name = _mailbox(cur)
        condstore = False
        qresync = None
        if cur.accept(b" "):
            cur.expect(b"(")
            while True:
                param = cur.keyword()
                if param == "CONDSTORE" and not condstore:
                    condstore = True
                elif param == "QRESYNC" and qresync is None:
                    cur.sp()
                    qresync = _qresync_param(cur)
                else:
                    raise ParseError(texts.BAD_SELECT_PARAM)
                if cur.accept(b")"):
                    break
                cur.sp()
        return c.Select(tag, name, readonly, condstore, qresync)
    return parse


def _create(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    name = _mailbox(cur)
    uses: tuple[str, ...] = ()
    if cur.accept(b" "):
        cur.expect(b"(")
        if cur.keyword() != "USE":
            raise ParseError(texts.BAD_CREATE_PARAM)
        cur.sp()
        uses = cur.flag_list()
        if not all(u.startswith("\\") for u in uses):
            raise ParseError(texts.BAD_CREATE_PARAM)
        cur.expect(b")")
    return c.Create(tag, name, uses)


def _one_mailbox(cls: type) -> Callable[[str, Cursor], c.Command]:
    def parse(tag: str, cur: Cursor) -> c.Command:
        cur.sp()
        return cls(tag, _mailbox(cur))  # type: ignore[no-any-return]
    return parse


def _rename(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    old = _mailbox(cur)
    cur.sp()
    return c.Rename(tag, old, _mailbox(cur))


def _pattern(cur: Cursor) -> str:
    return decode_mailbox(cur.list_mailbox(), normalise=False)


def _list(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    select: tuple[str, ...] = ()
    if cur.peek() == ord("("):
        select = listext.parse_select_options(cur)
        cur.sp()
    reference = decode_mailbox(cur.astring(), normalise=False)
    cur.sp()
    if cur.accept(b"("):
        pats = [_pattern(cur)]
        while not cur.accept(b")"):
            cur.sp()
            pats.append(_pattern(cur))
        patterns = tuple(pats)
    else:
        patterns = (_pattern(cur),)
    returns: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    if cur.accept(b" "):
        if cur.keyword() != "RETURN":
            raise ParseError(texts.BAD_LIST_OPTION)
        cur.sp()
        returns, status = listext.parse_return_options(cur, STATUS_ITEMS)
    return c.List(tag, reference, patterns, select, returns, status)


def _lsub(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    reference = decode_mailbox(cur.astring(), normalise=False)
    cur.sp()
    return c.Lsub(tag, reference, _pattern(cur))


def _status(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    name = _mailbox(cur)
    cur.sp()
    items = cur.paren_atoms()
    if not items or not STATUS_ITEMS.issuperset(items):
        raise ParseError(texts.BAD_STATUS_ITEM)
    return c.Status(tag, name, tuple(dict.fromkeys(items)))


_SYSTEM_FLAGS = frozenset({"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"})


def _storable(flags: tuple[str, ...]) -> tuple[str, ...]:
    """STORE and APPEND flags: a system flag or a keyword. ``\\Bogus`` is a flag-extension
    (RFC 3501 section 9) that no server defines, and ``\\Recent`` "can not be altered by the
    client" (section 2.3.2): both are client errors (BAD, as Dovecot answers), not keywords."""
    for flag in flags:
        if flag.startswith("\\") and flag not in _SYSTEM_FLAGS:
            raise ParseError(texts.BAD_FLAG)
    return flags


def _append_data(cur: Cursor) -> tuple[bytes, bool]:
    """A ``literal`` or (RFC 3516) ``literal8``; True for the latter."""
    if cur.accept(b"~"):
        if not cur.peek_literal():
            raise ParseError(texts.APPEND_NEEDS_LITERAL)
        return cur.literal(), True
    if not cur.peek_literal():
        raise ParseError(texts.APPEND_NEEDS_LITERAL)
    return cur.literal(), False


def _cat_part(cur: Cursor) -> c.CatPart:
    """RFC 4469 ``cat-part``: ``TEXT SP literal`` (or literal8) / ``URL SP astring``."""
    kind = cur.keyword()
    cur.sp()
    if kind == "TEXT":
        return c.CatPart(text=_append_data(cur)[0])
    if kind == "URL":
        try:
            return c.CatPart(url=cur.astring().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ParseError(texts.NOT_UTF8) from exc
    raise ParseError(texts.BAD_CATENATE)


def _append_message(cur: Cursor) -> c.AppendMessage:
    """``[SP flag-list] [SP date-time] SP append-data`` (RFC 3502 ``append-message``; the
    leading SP is consumed by the caller)."""
    flags: tuple[str, ...] = ()
    when = None
    if cur.peek() == ord("("):
        flags = _storable(cur.flag_list())
        cur.sp()
    if cur.peek() == ord('"'):
        when = cur.date_time()
        cur.sp()
    if cur.peek() in (ord("~"), ord("{")):
        data, binary = _append_data(cur)
        return c.AppendMessage(flags, when, data, None, binary)
    word = cur.keyword() if cur.peek() in _KEYWORD_START else ""
    if word not in ("CATENATE", "UTF8"):
        raise ParseError(texts.APPEND_NEEDS_LITERAL)
    cur.sp()
    if word == "CATENATE":
        parts = cur.paren_list(lambda: _cat_part(cur))
        if not parts:
            raise ParseError(texts.BAD_CATENATE)
        return c.AppendMessage(flags, when, b"", parts)
    if word == "UTF8":  # RFC 6855 section 4: UTF8 SP "(" literal8 ")"
        cur.expect(b"(")
        if not cur.accept(b"~"):
            raise ParseError(texts.APPEND_NEEDS_LITERAL)
        data = cur.literal()
        cur.expect(b")")
        return c.AppendMessage(flags, when, data, None, True, utf8=True)
    raise ParseError(texts.APPEND_NEEDS_LITERAL)


def _append(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    name = _mailbox(cur)
    cur.sp()
    first = _append_message(cur)
    more = []
    while cur.accept(b" "):  # RFC 3502 MULTIAPPEND: further messages
        more.append(_append_message(cur))
    return c.Append(tag, name, first.flags, first.internal_date, first.message, tuple(more),
                    first.parts, first.binary, first.utf8)


def _compress(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    return c.Compress(tag, cur.keyword())


def _quota_root(cur: Cursor) -> str:
    return decode_mailbox(cur.astring(), normalise=False)


def _getquota(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    return c.GetQuota(tag, _quota_root(cur))


def _getquotaroot(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    return c.GetQuotaRoot(tag, _mailbox(cur))


def _setquota(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    root = _quota_root(cur)
    cur.sp()

    def limit() -> tuple[str, int]:
        resource = cur.keyword()
        cur.sp()
        return resource, cur.number64()

    return c.SetQuota(tag, root, cur.paren_list(limit))


def _expunge(tag: str, cur: Cursor, uid: bool) -> c.Command:
    if uid:
        cur.sp()
        return c.Expunge(tag, cur.sequence_set())
    return c.Expunge(tag)


def _search(tag: str, cur: Cursor, uid: bool) -> c.Command:
    cur.sp()
    charset, returns, key = parse_search(cur)
    return c.Search(tag, key, charset, uid, returns)


def _fetch_modifiers(cur: Cursor, uid: bool) -> tuple[int | None, bool]:
    """RFC 7162 ``[SP "(" fetch-modifier *(SP fetch-modifier) ")"]``: CHANGEDSINCE n and
    VANISHED (section 3.2.6: only with UID FETCH and together with CHANGEDSINCE)."""
    if not cur.accept(b" "):
        return None, False
    changed: int | None = None
    vanished = False
    cur.expect(b"(")
    while True:
        word = cur.keyword()
        if word == "CHANGEDSINCE" and changed is None:
            cur.sp()
            changed = cur.number64()
        elif word == "VANISHED" and not vanished:
            vanished = True
        else:
            raise ParseError(texts.BAD_FETCH_MODIFIER)
        if cur.accept(b")"):
            break
        cur.sp()
    if vanished and (not uid or changed is None):
        raise ParseError(texts.BAD_VANISHED)
    return changed, vanished


def _sort(tag: str, cur: Cursor, uid: bool) -> c.Command:
    cur.sp()
    returns, keys, charset, criteria = parse_sort(cur)
    return c.Sort(tag, keys, criteria, charset, uid, returns)


def _thread(tag: str, cur: Cursor, uid: bool) -> c.Command:
    cur.sp()
    algorithm, charset, criteria = parse_thread(cur)
    return c.Thread(tag, algorithm, criteria, charset, uid)


def _fetch(tag: str, cur: Cursor, uid: bool) -> c.Command:
    cur.sp()
    seq = cur.sequence_set()
    cur.sp()
    items = parse_fetch_items(cur)
    changed, vanished = _fetch_modifiers(cur, uid)
    return c.Fetch(tag, seq, items, uid, changed, vanished)


def _store(tag: str, cur: Cursor, uid: bool) -> c.Command:
    cur.sp()
    seq = cur.sequence_set()
    unchanged = _modifier(cur, b"UNCHANGEDSINCE")
    cur.sp()
    mode = ""
    if cur.peek() in (ord("+"), ord("-")):
        mode = chr(cur.peek())
        cur.pos += 1
    base = cur.keyword()
    if base not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError(texts.BAD_STORE_ITEM)
    cur.sp()
    if cur.peek() == ord("("):
        flags = cur.flag_list()
    else:
        items = [cur.flag()]
        while cur.accept(b" "):
            items.append(cur.flag())
        flags = tuple(dict.fromkeys(items))
    return c.Store(tag, seq, mode, base.endswith(".SILENT"), _storable(flags), uid, unchanged)


def _copy_move(cls: type) -> Callable[[str, Cursor, bool], c.Command]:
    def parse(tag: str, cur: Cursor, uid: bool) -> c.Command:
        cur.sp()
        seq = cur.sequence_set()
        cur.sp()
        return cls(tag, seq, _mailbox(cur), uid)  # type: ignore[no-any-return]
    return parse


def _enable(tag: str, cur: Cursor) -> c.Command:
    caps = []
    while cur.accept(b" "):
        caps.append(cur.keyword())
    if not caps:
        raise ParseError(texts.EXPECTED_SP)
    return c.Enable(tag, tuple(caps))


def _id(tag: str, cur: Cursor) -> c.Command:
    cur.sp()
    if not cur.accept(b"("):
        if cur.nstring() is not None:
            raise ParseError(texts.BAD_ID)
        return c.Id(tag, None)
    params: dict[str, str | None] = {}
    if not cur.accept(b")"):
        while True:
            key = cur.string().decode("utf-8", "replace")
            cur.sp()
            value = cur.nstring()
            params[key] = None if value is None else value.decode("utf-8", "replace")
            if len(params) > _MAX_ID_PAIRS:
                raise ParseError(texts.BAD_ID)
            if cur.accept(b")"):
                break
            cur.sp()
    return c.Id(tag, params)


SIMPLE: dict[str, Callable[[str, Cursor], c.Command]] = {
    "CAPABILITY": _no_args(c.Capability), "NOOP": _no_args(c.Noop),
    "LOGOUT": _no_args(c.Logout), "STARTTLS": _no_args(c.StartTls),
    "CHECK": _no_args(c.Check), "CLOSE": _no_args(c.Close),
    "UNSELECT": _no_args(c.Unselect), "IDLE": _no_args(c.Idle),
    "NAMESPACE": _no_args(c.Namespace),
    "AUTHENTICATE": _authenticate, "LOGIN": _login,
    "SELECT": _select(False), "EXAMINE": _select(True), "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete), "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe), "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list, "LSUB": _lsub, "STATUS": _status, "APPEND": _append,
    "ENABLE": _enable, "ID": _id, "COMPRESS": _compress, "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot, "SETQUOTA": _setquota,
}
WITH_UID: dict[str, Callable[[str, Cursor, bool], c.Command]] = {
    "EXPUNGE": _expunge, "SEARCH": _search, "FETCH": _fetch, "STORE": _store,
    "COPY": _copy_move(c.Copy), "MOVE": _copy_move(c.Move),
    "SORT": _sort, "THREAD": _thread,
}


def parse_command(parts: list[bytes]) -> c.Command:
    """Parse ``[text, literal, text, ...]`` (see ``grammar``) into a command."""
    cur = Cursor(parts)
    tag = read_tag(cur.buf)
    if tag is None:
        raise ParseError(texts.BAD_TAG)
    cur.pos = len(tag)
    cur.sp()
    name = cur.keyword()
    if name == "UID":
        cur.sp()
        sub = cur.keyword()
        if sub not in WITH_UID:
            raise ParseError(texts.UNKNOWN_COMMAND)
        command = WITH_UID[sub](tag, cur, True)
    elif name in WITH_UID:
        command = WITH_UID[name](tag, cur, False)
    elif name in SIMPLE:
        command = SIMPLE[name](tag, cur)
    else:
        raise ParseError(texts.UNKNOWN_COMMAND)
    cur.end()
    return command
