"""RFC 3501 conformance regressions (issue #8 section 1), on SQLite and PostgreSQL: each test
failed before its fix. Raw sockets, so the exact untagged responses and their order are seen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, simple, start
from tests.support import MailwingServer

ODD = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def login(srv: MailwingServer) -> Raw:
    r = Raw(srv.ports["imap"])
    assert r.command(f'l LOGIN {USER} "{PASSWORD}"'.encode())[-1].startswith(b"l OK")
    return r


def tagged(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


def append(r: Raw, mailbox: str, message: bytes, flags: str = "") -> list[bytes]:
    r.send(b'ap APPEND "%s" (%s) {%d+}\r\n' % (mailbox.encode(), flags.encode(), len(message))
           + message + b"\r\n")
    lines = r.until(b"ap")
    assert tagged(lines).startswith(b"OK"), lines
    return lines


def uidvalidity(lines: list[bytes]) -> int:
    for line in lines:
        m = re.search(rb"\[UIDVALIDITY (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def test_delete_with_children_keeps_noselect_name(srv: MailwingServer) -> None:
    r = login(srv)
    assert tagged(r.command(b"c1 CREATE a/b")).startswith(b"OK")
    append(r, "a", simple("old parent mail"))
    first = uidvalidity(r.command(b"s1 EXAMINE a"))
    r.command(b"u UNSELECT")
    assert tagged(r.command(b"d1 DELETE a")).startswith(b"OK")  # RFC 3501 6.3.4
    assert r.command(b'l1 LIST "" a') == [b'* LIST (\\Noselect \\HasChildren) "/" a',
                                          b"l1 OK LIST completed"]
    assert tagged(r.command(b"s2 SELECT a")).startswith(b"NO")
    assert tagged(r.command(b"d2 DELETE a")).startswith(b"NO")  # \Noselect with children
    assert tagged(r.command(b"c2 CREATE a")).startswith(b"OK")
    lines = r.command(b"s3 SELECT a")
    assert b"* 0 EXISTS" in lines, lines  # the old mail is gone
    assert uidvalidity(lines) != first
    assert r.command(b'l2 LIST "" a') == [b'* LIST (\\HasChildren) "/" a',
                                          b"l2 OK LIST completed"]
    r.close()


def test_odd_names_that_do_not_exist_are_no_not_bad(srv: MailwingServer) -> None:
    r = login(srv)
    for name in (b'"' + ODD + b'"', ODD, b'"&Jjo"', b'"a%b"', b'"\x01x"'):
        for cmd in (b"SELECT " + name, b"EXAMINE " + name, b"STATUS " + name + b" (MESSAGES)"):
            assert tagged(r.command(b"t " + cmd)).startswith(b"NO"), cmd
        for cmd in (b'LIST "" ' + name, b'LSUB "" ' + name):
            assert r.command(b"t " + cmd)[-1].startswith(b"t OK"), cmd
    assert r.command(b'x LIST "" "INBOX"')[0] == b'* LIST (\\HasNoChildren) "/" INBOX'
    r.close()


def _flags_line(lines: list[bytes]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS "))


def test_new_keywords_are_announced_before_any_fetch_carrying_them(
        srv: MailwingServer) -> None:
    a, b = login(srv), login(srv)
    append(a, "INBOX", simple("one"))
    a.command(b"s SELECT INBOX")
    assert b"$Old" not in b"".join(b.command(b"s SELECT INBOX"))
    # STORE introduces a keyword: the storing session hears FLAGS before its FETCH
    lines = a.command(b"t STORE 1 +FLAGS ($Fresh)")
    at = _flags_line(lines)
    assert b"$Fresh" in lines[at] and b"$Fresh \\*)]" in lines[at + 1], lines
    assert lines[at + 2].startswith(b"* 1 FETCH") and b"$Fresh" in lines[at + 2]
    # the observing session: FLAGS and PERMANENTFLAGS before the FETCH, RFC 3501 7.2.6
    lines = b.command(b"n NOOP")
    at = _flags_line(lines)
    assert b"$Fresh" in lines[at] and b"PERMANENTFLAGS" in lines[at + 1], lines
    fetch_at = next(i for i, line in enumerate(lines) if b"FETCH" in line)
    assert at < fetch_at
    # APPEND with a new keyword: FLAGS before the FETCH that shows it
    lines = append(a, "INBOX", simple("two"), flags="$Appended")  # a has INBOX selected
    assert _flags_line(lines) < next(i for i, x in enumerate(lines) if x.endswith(b"EXISTS"))
    lines = b.command(b"n2 NOOP") + b.command(b"f FETCH 2 FLAGS")
    assert b"$Appended" in lines[_flags_line(lines)], lines
    assert _flags_line(lines) < next(i for i, line in enumerate(lines) if b"2 FETCH" in line)
    # a new SELECT lists every keyword in use
    lines = b.command(b"s2 EXAMINE INBOX")
    assert b"$Appended" in lines[_flags_line(lines)] and b"$Fresh" in lines[_flags_line(lines)]
    # a flag already listed is not announced again
    lines = a.command(b"n3 NOOP") + a.command(b"t2 STORE 2 +FLAGS ($Fresh)")
    assert not any(line.startswith(b"* FLAGS") for line in lines), lines
    a.close()
    b.close()


def test_examine_reports_recent_without_claiming(srv: MailwingServer) -> None:
    r = login(srv)
    append(r, "INBOX", simple("one"))
    append(r, "INBOX", simple("two"))
    for tag in (b"e1", b"e2"):  # RFC 3501 6.3.2: EXAMINE reports, never claims
        lines = r.command(tag + b" EXAMINE INBOX")
        assert b"* 2 RECENT" in lines, lines
    assert b"\\Recent" in b"".join(r.command(b"f FETCH 1:* FLAGS"))
    assert b"* 2 RECENT" in r.command(b"s SELECT INBOX")  # the claim is still there
    assert b"* 0 RECENT" in r.command(b"e3 EXAMINE INBOX")
    r.close()


def test_copy_and_move_into_the_selected_mailbox(srv: MailwingServer) -> None:
    r = login(srv)
    append(r, "INBOX", simple("one"))
    v = uidvalidity(r.command(b"s SELECT INBOX"))
    lines = r.command(b"c COPY 1 INBOX")
    assert lines[-1] == b"c OK [COPYUID %d 1 2] COPY completed" % v, lines
    assert b"* 2 EXISTS" in lines
    lines = r.command(b"m UID MOVE 1 INBOX")  # RFC 6851: new UID, old one expunged
    assert lines[0] == b"* OK [COPYUID %d 1 3] UID MOVE completed" % v, lines
    assert b"* 1 EXPUNGE" in lines and lines[-1].startswith(b"m OK"), lines
    assert b"* 2 EXISTS" in lines, lines
    assert r.command(b"f UID FETCH 1:* UID")[:-1] == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)"]
    r.close()


AWKWARD_ADDRESSES = (
    b'From: "Alice Example" <alice@example.test>\r\n'
    b"To: =?utf-8?q?J=C3=B6rg?= <j@x.test>, Bob Smith <b@x.test>\r\n"
    b'Bcc: "Secret Person" <s@x.test>\r\n'
    b"Date: Fri, 02 Jan 2026 23:30:00 -0500\r\n"
    b"Subject: x\r\n\r\nbody\r\n"
)
COMMENT_AND_ROUTE = (
    b"From: alice@example.test (Alice Comment)\r\n"
    b"To: Bob <@route.example,@r2.example:bob@x.test>\r\n"
    b"Subject: y\r\n\r\nbody\r\n"
)


def _search(r: Raw, criteria: bytes) -> bytes:
    lines = r.command(b"s UID SEARCH " + criteria)
    assert lines[-1].startswith(b"s OK"), lines
    return lines[0]


def test_envelope_keeps_the_source_route(srv: MailwingServer) -> None:
    r = login(srv)
    append(r, "INBOX", COMMENT_AND_ROUTE)
    r.command(b"x EXAMINE INBOX")
    lines = r.command(b"f FETCH 1 ENVELOPE")
    assert b'(("Bob" "@route.example,@r2.example" "bob" "x.test"))' in lines[0], lines
    r.close()


def test_search_address_keys_match_the_whole_address_text(srv: MailwingServer) -> None:
    r = login(srv)
    append(r, "INBOX", AWKWARD_ADDRESSES)
    append(r, "INBOX", COMMENT_AND_ROUTE)
    r.command(b"x EXAMINE INBOX")
    assert _search(r, b'FROM "Alice Example"') == b"* SEARCH 1"
    assert _search(r, b"FROM alice@example") == b"* SEARCH 1 2"
    assert _search(r, b'FROM "Alice Comment"') == b"* SEARCH 2"  # a comment names too
    assert _search(r, b'TO "Bob Smith"') == b"* SEARCH 1"
    assert _search(r, b"TO route.example") == b"* SEARCH 2"  # the source route counts
    assert _search(r, b'BCC "Secret Person"') == b"* SEARCH 1"
    r.send(b"s UID SEARCH CHARSET UTF-8 TO {5+}\r\nJ\xc3\xb6rg\r\n")
    assert r.until(b"s")[0] == b"* SEARCH 1"
    r.close()


def test_search_dates_use_the_own_zone_calendar_date(srv: MailwingServer) -> None:
    r = login(srv)
    # Date: 23:30 -0500 on 2 Jan is 3 Jan in UTC; the internal date is 2 Jan in UTC
    for message in (AWKWARD_ADDRESSES, COMMENT_AND_ROUTE):  # the second has no Date:
        r.send(b'ap APPEND INBOX "01-Jan-2026 23:30:00 -0500" {%d+}\r\n' % len(message)
               + message + b"\r\n")
        assert r.until(b"ap")[-1].startswith(b"ap OK")
    r.command(b"x EXAMINE INBOX")
    assert _search(r, b"SENTON 2-Jan-2026") == b"* SEARCH 1 2"  # 2: internal date fallback
    assert _search(r, b"SENTON 3-Jan-2026") == b"* SEARCH"
    assert _search(r, b"SENTBEFORE 3-Jan-2026") == b"* SEARCH 1 2"
    assert _search(r, b"SENTSINCE 3-Jan-2026") == b"* SEARCH"
    assert _search(r, b"SENTSINCE 2-Jan-2026") == b"* SEARCH 1 2"
    assert _search(r, b"ON 2-Jan-2026") == b"* SEARCH 1 2"
    assert _search(r, b"BEFORE 2-Jan-2026") == b"* SEARCH"
    r.close()


def test_deleting_the_mailbox_another_session_selected_ends_that_session(
        srv: MailwingServer) -> None:
    a, b = login(srv), login(srv)
    assert tagged(a.command(b"c CREATE doomed")).startswith(b"OK")
    append(a, "doomed", simple("one"))
    b.command(b"s SELECT doomed")
    assert tagged(a.command(b"d DELETE doomed")).startswith(b"OK")
    b.send(b"n NOOP\r\n")  # a stale numbering: BYE instead of the completion, then close
    assert b.line().startswith(b"* BYE ")
    assert b.line() == b""
    a.close()
    b.close()


def test_recreated_mailbox_never_shows_the_deleted_ones_mail(srv: MailwingServer) -> None:
    r = login(srv)
    assert tagged(r.command(b"c CREATE doomed")).startswith(b"OK")  # the highest id
    append(r, "doomed", simple("old"))
    first = uidvalidity(r.command(b"s SELECT doomed"))  # its listing is cached
    r.command(b"u UNSELECT")
    assert tagged(r.command(b"d DELETE doomed")).startswith(b"OK")
    assert tagged(r.command(b"c2 CREATE doomed")).startswith(b"OK")  # SQLite reuses the id
    lines = r.command(b"s2 SELECT doomed")
    assert b"* 0 EXISTS" in lines and uidvalidity(lines) != first, lines
    r.close()


def test_subscribe_a_name_without_a_mailbox(srv: MailwingServer) -> None:
    """RFC 3501 6.3.6: SUBSCRIBE of a valid name with no mailbox is OK; LSUB lists it with
    \\Noselect (6.3.9), LIST (SUBSCRIBED) with \\NonExistent \\Subscribed (RFC 5258)."""
    r = login(srv)
    assert tagged(r.command(b"s SUBSCRIBE Later/On")).startswith(b"OK")
    assert r.command(b'l LSUB "" "Later/*"')[:-1] == [b'* LSUB (\\Noselect) "/" Later/On']
    assert r.command(b'x LIST (SUBSCRIBED) "" "Later/*"')[:-1] == [
        b'* LIST (\\NonExistent \\Subscribed) "/" Later/On']
    assert r.command(b'p LIST "" "Later*"')[:-1] == []  # no mailbox was made
    r.close()


def test_delete_keeps_the_subscription(srv: MailwingServer) -> None:
    """RFC 3501 6.3.6: the server MUST NOT unilaterally remove a subscribed name when its
    mailbox goes; LSUB shows it \\Noselect (6.3.9)."""
    r = login(srv)
    assert tagged(r.command(b"c CREATE doomed")).startswith(b"OK")
    assert tagged(r.command(b"s SUBSCRIBE doomed")).startswith(b"OK")
    assert r.command(b'l LSUB "" doomed')[:-1] == [b'* LSUB () "/" doomed']
    assert tagged(r.command(b"d DELETE doomed")).startswith(b"OK")
    assert r.command(b'l2 LSUB "" doomed')[:-1] == [b'* LSUB (\\Noselect) "/" doomed']
    assert r.command(b'x LIST (SUBSCRIBED) "" "d*"')[:-1] == [
        b'* LIST (\\NonExistent \\Subscribed) "/" doomed']
    r.close()


def test_unsubscribe_a_name_whose_mailbox_is_gone(srv: MailwingServer) -> None:
    """RFC 3501 6.3.7: UNSUBSCRIBE of a subscribed name without a mailbox is OK."""
    r = login(srv)
    assert tagged(r.command(b"c CREATE doomed")).startswith(b"OK")
    assert tagged(r.command(b"d DELETE doomed")).startswith(b"OK")
    assert tagged(r.command(b"u UNSUBSCRIBE doomed")).startswith(b"OK")
    assert r.command(b'l LSUB "" doomed')[:-1] == []
    assert tagged(r.command(b"s SUBSCRIBE ghost")).startswith(b"OK")
    assert tagged(r.command(b"u2 UNSUBSCRIBE ghost")).startswith(b"OK")
    assert not any(b"ghost" in line for line in r.command(b'l2 LSUB "" "*"'))
    r.close()
