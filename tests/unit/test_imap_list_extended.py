"""Extended LIST selection without sockets (RFC 5258 section 3, RFC 9051 6.3.9.2 table):
\\NonExistent names, RECURSIVEMATCH and CHILDINFO, several patterns."""

from __future__ import annotations

from mailwing.model import Mailbox
from mailwing.services.imap_list import ExtendedItem, extended_list


def box(i: int, name: str, *, sub: bool = False, use: str | None = None) -> Mailbox:
    return Mailbox(i, 1, name, i, 1, 1, use, sub)


BOXES = [box(1, "INBOX", sub=True), box(2, "a/b", sub=True), box(3, "a/c"),
         box(4, "Sent", use="\\Sent"), box(5, "x", sub=True), box(6, "x/y", sub=True)]


def view(items: list[ExtendedItem]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(i.name, i.attributes, i.childinfo) for i in items]


def test_implied_parent_is_nonexistent() -> None:
    got = view(extended_list(BOXES, "", ["%"], [], ["CHILDREN", "SPECIAL-USE"]))
    assert ("a", ("\\NonExistent", "\\HasChildren"), ()) in got
    assert ("Sent", ("\\HasNoChildren", "\\Sent"), ()) in got
    # unasked, child and special-use attributes are left out (RFC 5258 4, RFC 6154 2)
    bare = view(extended_list(BOXES, "", ["%"], [], []))
    assert ("a", ("\\NonExistent",), ()) in bare and ("Sent", (), ()) in bare


def test_subscribed_with_recursivematch() -> None:
    plain = view(extended_list(BOXES, "", ["%"], ["SUBSCRIBED"], []))
    assert [n for n, _, _ in plain] == ["INBOX", "x"]
    rec = view(extended_list(BOXES, "", ["%"], ["SUBSCRIBED", "RECURSIVEMATCH"],
                             ["CHILDREN"]))
    assert rec == [
        ("INBOX", ("\\HasNoChildren", "\\Subscribed"), ()),
        ("a", ("\\NonExistent", "\\HasChildren"), ("SUBSCRIBED",)),
        ("x", ("\\HasChildren", "\\Subscribed"), ("SUBSCRIBED",)),
    ]


def test_multiple_patterns_each_name_once() -> None:
    got = extended_list(BOXES, "", ["x*", "x/%", "Sent"], [], ["SUBSCRIBED"])
    assert [i.name for i in got] == ["x", "x/y", "Sent"]
    assert got[0].attributes[-1] == "\\Subscribed" and got[0].mailbox is BOXES[4]
    special = extended_list(BOXES, "", ["*"], ["SPECIAL-USE"], [])
    assert [i.name for i in special] == ["Sent"]


def test_list_grammar() -> None:
    from mailwing.proto.imap import commands as c
    from tests.unit.test_imap_proto_commands import cmd, err

    got = cmd('a LIST (subscribed RECURSIVEMATCH) "" ("a" b%) RETURN (CHILDREN '
              "STATUS (MESSAGES SIZE MAILBOXID) SPECIAL-USE)")
    assert isinstance(got, c.List) and got.extended
    assert got.select_options == ("SUBSCRIBED", "RECURSIVEMATCH")
    assert got.patterns == ("a", "b%")
    assert got.return_options == ("CHILDREN", "STATUS", "SPECIAL-USE")
    assert got.status_items == ("MESSAGES", "SIZE", "MAILBOXID")
    assert cmd('a LIST "" "*" RETURN ()').return_options == ()  # type: ignore[attr-defined]
    for bad in ('a LIST (RECURSIVEMATCH) "" *', 'a LIST (FOO) "" *',
                'a LIST "" * RETURN (STATUS ())', 'a LIST "" * RETURN (STATUS (FOO))',
                'a LIST "" * RETURN (CHILDREN CHILDREN)', 'a LIST "" * RETURN (FOO)'):
        assert err(bad).response().startswith(b"a BAD"), bad
