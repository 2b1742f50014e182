"""Known, justified differences between Dovecot and mailwing: the one place they are kept.

Each entry names the scripts (a glob) and commands (a regular expression on the step's
text) it covers and why the difference is right or accepted, with the RFC section. It
accepts a difference in one of two ways:

- ``rewrite``: (pattern, replacement) applied to both servers' normalised lines; the
  difference is accepted when the rewritten answers are equal (so only that detail is
  forgiven, the rest of the answer is still compared);
- ``lines``: the difference is accepted when every line that only one server sent matches
  this regular expression (after the rewrite, when both are given).

A difference that no entry covers fails the test. Keep this list short: fix mailwing when it
is wrong; record an entry only when Dovecot departs from the RFC, or when both answers are
allowed and the difference is a deliberate choice.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KNOWN", "Known", "known_difference"]


@dataclass(frozen=True)
class Known:
    reason: str
    script: str = "*"
    command: str = ""
    rewrite: tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...] = ()
    lines: str | None = None

    def covers(self, script: str, command: str, ref: list[str], got: list[str]) -> bool:
        if not fnmatch.fnmatch(script, self.script):
            return False
        if re.search(self.command, command, re.IGNORECASE) is None:
            return False
        if self.rewrite:  # compared as multisets: a rewrite may change the sort order
            ref, got = _rewritten(ref, self.rewrite), _rewritten(got, self.rewrite)
            if self.lines is None:
                return Counter(ref) == Counter(got)
        if self.lines is not None:
            only = (Counter(ref) - Counter(got)) + (Counter(got) - Counter(ref))
            return all(re.search(self.lines, x) for x in only)
        return True


def _rewritten(lines: list[str],
               rules: tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...]
               ) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in rules:
            line = re.sub(pattern, replacement, line)
        out.append(line)
    return out


def _skip_list(text: str, i: int) -> int:
    """Index after the parenthesised list (or NIL) starting at ``text[i]``."""
    if text.startswith("nil", i):
        return i + 3
    depth, quoted = 0, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


_RFC822 = re.compile(r'"message" "rfc822" \S+ \S+ \S+ "\w+" \d+ ')


def _mask_rfc822(line: str) -> str:
    """Replace the size and line count of every message/rfc822 part of a rendered
    BODY/BODYSTRUCTURE by ``<n>`` (their envelope and body structure are kept)."""
    out, pos = [], 0
    for m in _RFC822.finditer(line):
        if m.start() < pos:
            continue
        head = re.sub(r"\d+ $", "<n> ", m.group(0))
        i = _skip_list(line, _skip_list(line, m.end()) + 1) + 1  # envelope, then body
        j = i
        while j < len(line) and line[j].isdigit():
            j += 1
        out.append(line[pos:m.start()] + head + line[m.end():i] + "<n>")
        pos = j
    out.append(line[pos:])
    return "".join(out)


KNOWN: list[Known] = [
    Known("RFC 2046 section 5.1.1: the CRLF before a boundary belongs to the boundary, so a "
          "nested multipart ends at its close delimiter '--inner--'; Dovecot includes the "
          "CRLF that precedes the outer boundary in the part (and in a message/rfc822 size)",
          rewrite=((r'--(\\r\\n)?"', '--"'), (r".+", lambda m: _mask_rfc822(m.group(0))))),
    Known("RFC 3501 6.4.4: the body of a message includes an attached message/rfc822's "
          "header; Dovecot's BODY search only looks at text parts",
          script="search.txt", command=r'^SEARCH BODY "attached message"$'),
    Known("RFC 5256 section 2.2 (and issue #8): a message without a usable Date: is dated by "
          "its INTERNALDATE for SENT* keys; Dovecot treats it as 1970-01-01",
          script="search.txt", command=r"^SEARCH SENT"),
    Known("RFC 3501 7.1: the BADCHARSET list of supported charsets is optional; mailwing "
          "gives it, Dovecot does not",
          rewrite=((r"\[BADCHARSET.*\]", "[BADCHARSET]"),)),
    Known("RFC 5161 section 4: ENABLED lists what was enabled; mailwing sends an empty "
          "'* ENABLED' when nothing was, Dovecot sends none (the grammar allows both)",
          command=r"^ENABLE ", lines=r"^\* ENABLED$"),
    Known("RFC 5258 section 4: \\HasChildren/\\HasNoChildren MAY be returned without "
          "RETURN (CHILDREN); mailwing always returns them, Dovecot not for extended LIST",
          command=r"^LIST \(|RETURN \(", rewrite=((r" ?\\Has(No)?Children", ""), (r"\( ", "("))),
    Known("RFC 6154 section 3 (CREATE-SPECIAL-USE): Dovecot without a metadata store does "
          "not keep the USE attribute of a created mailbox; mailwing does",
          script="extensions.txt", command=r'^LIST "" "%"$',
          rewrite=((r" \\Junk\) \"/\" MyJunk", ') "/" MyJunk'),)),
    Known("RFC 3501 6.3.11 and RFC 6154: special-use attributes belong to LIST; Dovecot adds "
          "them to LSUB too",
          command=r"^LSUB ", rewrite=((r" ?\\(Archive|Drafts|Junk|Sent|Trash)", ""),)),
    Known("RFC 3501 6.3.3/6.3.6: mailwing subscribes a mailbox when it is created (a server "
          "may keep a default subscription list); Dovecot does not. The subscription "
          "outlives a DELETE (6.3.6), so mailwing's LSUB also has the deleted names, "
          "\\Noselect, and the name without a mailbox it accepted to SUBSCRIBE",
          script="mailboxes.txt", command=r"^LSUB ",
          lines=r"^\* LSUB \((\\Noselect)?\) \"/\" ",
          rewrite=((r" ?\\(Archive|Drafts|Junk|Sent|Trash)", ""),)),
    Known("RFC 3501 6.3.6: a server may refuse SUBSCRIBE of a name with no mailbox; "
          "Dovecot does (NO), mailwing subscribes the name (OK)",
          script="mailboxes.txt", command=r"^SUBSCRIBE ", lines=r"^TAGGED (OK|NO)$"),
    Known("RFC 3501 6.3.6/6.3.9: a subscribed name whose mailbox was deleted stays in LSUB; "
          "mailwing flags it \\Noselect (it cannot be selected), Dovecot gives no "
          "attribute",
          script="lsub.txt", command=r'^LSUB "" "a/\*"$',
          rewrite=((r'^\* LSUB \(\\Noselect\) "/" a/b/c$', '* LSUB () "/" a/b/c'),)),
    Known("RFC 3501 6.3.2/6.4.6 and RFC 6851 section 3.3: a mailbox opened with EXAMINE is "
          "read-only, so STORE and MOVE answer NO [READ-ONLY]; Dovecot accepts them",
          command=r"^(UID )?(STORE|MOVE) ", lines=r"READ-ONLY|^TAGGED OK|COPYUID|FETCH"),
    Known("RFC 3501 7.4.1: a flag change made elsewhere to a message then expunged may be "
          "reported or not before the EXPUNGE; Dovecot reports it, mailwing skips it",
          lines=r"^\* \d+ FETCH \(FLAGS \([^)]*\\Deleted[^)]*\)\)$"),
    Known("RFC 3501 section 9 (select = \"SELECT\" SP mailbox): trailing arguments are a "
          "syntax error (BAD); Dovecot ignores them",
          script="errors.txt", command=r"^SELECT INBOX extra$"),
    Known("RFC 3501 6.3.3: a name with a trailing delimiter declares the intent to create "
          "names below it; Dovecot makes a \\Noselect name, mailwing a mailbox (both allowed)",
          script="mailboxes.txt", command=r'"Trailing', rewrite=((r" ?\\Noselect", ""),)),
    Known("RFC 3501 6.3.2: EXAMINE opens the mailbox read-only, so MOVE and EXPUNGE change "
          "nothing (NO [READ-ONLY]); Dovecot moves and expunges anyway",
          script="readonly.txt"),
    Known("RFC 3501 6.3.5 defines RENAME of INBOX (its messages move to the new name, INBOX "
          "stays, empty); Dovecot refuses it (NO [CANNOT]) for Maildir",
          script="rename.txt", command=r"INBOX|oldinbox|^FETCH 1:\*"),
    Known("RFC 3501 section 9: partial = \"<\" number \".\" nz-number \">\", so <0.0> is a "
          "syntax error (BAD); Dovecot answers an empty string",
          script="fetch_edge.txt", command=r"<0\.0>"),
    Known("RFC 3501 2.3.2 does not say whether keywords match case-insensitively; mailwing "
          "stores and matches them as written, Dovecot folds case",
          script="status_search2.txt", command=r"^SEARCH KEYWORD \$a$"),
    Known("RFC 3501 2.3.2: new mail is \\Recent in one session only; which of two sessions "
          "that have the mailbox selected claims it is a race (both servers)",
          script="idle.txt", command=r"^FETCH ", rewrite=((r" ?\\Recent", ""), (r"\( ", "("))),
    Known("RFC 3501 6.3.5 says nothing of sessions that have a renamed mailbox selected; "
          "Dovecot ends them (BYE), mailwing lets them go on (UIDs and UIDVALIDITY stay)",
          script="multi_expunge.txt", command=r"^(NOOP|FETCH 1:\* UID|LOGOUT)$",
          lines=r"BYE|CLOSED-BY-SERVER|^TAGGED OK$|^\* \d+ FETCH \(UID \d+\)$"),
    # -- the corpus (test_corpus.py): each message named, with why ----------------------
    Known("RFC 5322 section 3.4.1 needs a domain; for an address without one Dovecot invents "
          "the host \"MISSING_DOMAIN\", mailwing gives the empty string (NIL would mean group "
          "syntax, RFC 3501 7.4.2)",
          rewrite=((r'"MISSING_DOMAIN"', '""'),)),
    Known("RFC 3501 section 9 body-fld-lang: one language may be a string or a list of one; "
          "mailwing sends a string, Dovecot a list",
          script="corpus", rewrite=((r'\("([A-Za-z0-9-]+)"\)', r'"\1"'),)),
    Known("RFC 5322 section 2.2.3: unfolding removes the CRLF and keeps the white space; "
          "Dovecot turns the folding TAB into a space",
          script="corpus", command=r"<msg_27\.txt>", rewrite=((r"\\t", " "),)),
    Known("RFC 2045 section 5.2: a syntactically invalid Content-Type means text/plain; "
          "charset=us-ascii; Dovecot answers empty type and subtype",
          script="corpus", command=r"^FETCH \d+ \(ENVELOPE.*<msg_14\.txt>"),
    Known("RFC 2231 section 3: boundary*/charset* are the parameter, encoded; mailwing "
          "decodes them (so msg_33's multipart parses and msg_32's text has its charset), "
          "Dovecot does not",
          script="corpus", command=r"<msg_3[23]\.txt>"),
    Known("RFC 2231 section 4: mailwing re-encodes an extended parameter value to its ASCII "
          "form; Dovecot passes the octets on as they were written",
          script="corpus", command=r"^FETCH \d+ \(ENVELOPE.*<msg_29\.txt>"),
    Known("RFC 5322 section 2.1/3.5: the header ends at the first line that is not a header "
          "field for mailwing (as Python's email package reads it), at the empty line for "
          "Dovecot; these messages start their body without an empty line or start with an "
          "mbox From_ line",
          script="corpus", command=r"<msg_(19|25|35|43|47)\.txt>"),
    Known("RFC 2046 section 5.1.1: a multipart whose boundary never occurs (or that reuses "
          "its parent's boundary, msg_15) has no body parts; mailwing describes it as "
          "text/plain so the text stays readable, Dovecot as the multipart with one empty part",
          script="corpus", command=r"<msg_(15|17|31|41|42)\.txt>"),
    Known("RFC 2046 section 5.1.2: a body part that contains its parent's boundary (msg_38, "
          "msg_39) is ended by it; where the delimiter lines are odd the two parsers split "
          "differently",
          script="corpus", command=r"<msg_(38|39)\.txt>"),
    Known("RFC 3501 6.3.10: STATUS of the selected mailbox is discouraged (Dovecot answers "
          "[CLIENTBUG]); the RECENT count it reports then differs by whose \\Recent it is",
          script="select.txt", command=r"^STATUS INBOX \(RECENT\)$"),
    # -- added with the extensions (imap-search, condstore, imap-append) --------------
    Known('A FETCH that sets \\Seen with QRESYNC on: mailwing puts UID (and MODSEQ) into '
          'the same FETCH response as the body and FLAGS; Dovecot sends them in a second '
          'FETCH response for the message. RFC 3501 section 7.4.2 lets a server split a '
          "message's data items over several FETCH responses or send them in one; RFC "
          '7162 only asks that UID and MODSEQ be reported once QRESYNC is on.',
          script='qresync.txt', command='^FETCH \\d+ \\(BODY\\[TEXT\\]\\)$'),
    Known('RFC 3501 7.3.2/7.4.1: after EXPUNGE Dovecot re-announces RECENT although the '
          'client can derive it; mailwing sends RECENT only with EXISTS. Both are '
          'allowed.',
          script='esearch_searchres.txt', command='^EXPUNGE$'),
    Known('RFC 5258 section 3: a deleted mailbox kept only as the parent of its children '
          'is not a mailbox, so it is \\NonExistent (which implies \\Noselect); Dovecot '
          'keeps its Maildir folder and calls it \\Noselect.',
          script='list_extended.txt', command='^LIST "" "V'),
    Known('Dovecot sends an untagged FETCH carrying only UID before its tagged NO '
          '[UNKNOWN-CTE]; RFC 3516 section 4.3 asks only for the NO [UNKNOWN-CTE], and a '
          'FETCH response without the requested data tells the client nothing.',
          script='binary.txt', command='^FETCH \\d+ BINARY\\S*\\[1\\]$'),
]


def known_difference(script: str, command: str, ref: list[str], got: list[str]
                     ) -> Known | None:
    return next((k for k in KNOWN if k.covers(script, command, ref, got)), None)
