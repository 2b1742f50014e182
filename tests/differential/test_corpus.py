"""A corpus of awkward messages APPENDed to Dovecot and mailwing, then described by both:
ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE, the header and text, and the parts' sections
(``BODY[n]``, ``BODY[n.MIME]``, nested ``n.m``), compared after normalising.

The corpus: this package's ``corpus/*.eml`` (written for these tests: nested multiparts,
parts without Content-Type, digests, groups, routes, comments, encoded words, no Date:), plus
CPython's own email test messages (``test/test_email/data/msg_*.txt`` of the running Python,
when its test package is installed). Messages are sent with CRLF line ends (how they are
stored is not what is compared)."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import pytest

from tests.differential.compare import compare, normalised_run
from tests.differential.conftest import PASSWORD, Target, user_for
from tests.differential.script import CORPUS, Step

pytestmark = pytest.mark.differential

#: sections every message is asked for (a sub-part of a leaf part, "1.1" of a text/plain
#: part 1, is left out: RFC 3501 does not define it; Dovecot answers part 1 again, mailwing
#: the empty string; nested parts are asked for by scripts/fetch.txt)
_SECTIONS = ("1", "1.MIME", "2", "2.MIME", "2.HEADER", "3", "3.MIME")
_MAX_SIZE = 200_000


def corpus_files() -> list[Path]:
    own = sorted(CORPUS.glob("*.eml"))
    data = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    cpython = sorted(data.glob("msg_*.txt")) if data.is_dir() else []
    return own + [p for p in cpython if p.stat().st_size < _MAX_SIZE]


def corpus_steps(files: list[Path]) -> list[Step]:
    steps = [Step(0, "C", "LOGIN {login}")]
    for i, path in enumerate(files, 1):
        data = re.sub(rb"\r?\n", b"\r\n", path.read_bytes())
        payload = b"APPEND INBOX {%d+}\r\n" % len(data) + data
        steps.append(Step(i, "C", f"APPEND INBOX <{path.name}>", payload=payload))
    steps.append(Step(0, "C", "EXAMINE INBOX"))
    for i, path in enumerate(files, 1):
        items = " ".join(f"BODY.PEEK[{s}]" for s in _SECTIONS)
        steps.append(Step(i, "C", f"FETCH {i} (ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE) "
                                  f"<{path.name}>",
                          payload=b"FETCH %d (ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)" % i))
        steps.append(Step(i, "C", f"FETCH {i} (BODY.PEEK[HEADER] BODY.PEEK[TEXT]) "
                                  f"<{path.name}>",
                          payload=b"FETCH %d (BODY.PEEK[HEADER] BODY.PEEK[TEXT])" % i))
        steps.append(Step(i, "C", f"FETCH {i} sections <{path.name}>",
                          payload=f"FETCH {i} ({items})".encode()))
    steps.append(Step(0, "C", "LOGOUT"))
    return steps


_REFERENCE: list[list[str]] = []


def test_corpus(dovecot: Target, mailwing: Target) -> None:
    files = corpus_files()
    steps = corpus_steps(files)
    user = user_for("corpus")
    if not _REFERENCE:
        _REFERENCE.extend(normalised_run(dovecot.port, user, PASSWORD, steps))
    candidate = normalised_run(mailwing.port, user, PASSWORD, steps)
    reference = _REFERENCE
    outcome = compare("corpus", steps, reference, candidate)
    assert not outcome.differences, (
        f"{len(outcome.differences)} of {len(files)} messages described differently:\n"
        + "\n".join(outcome.differences))
