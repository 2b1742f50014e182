"""The differential tier: mailwing's IMAP answers compared with Dovecot's (issue #8, section 4).

Why: hand-written expectations only find the bugs their author imagined. Here a reference
server answers the same conversation, and every difference is either fixed in mailwing or
recorded, with its RFC section, in :mod:`tests.differential.known`.

How it runs (``pytest -m differential``, or ``make test-differential``; part of ``make test``):

- :mod:`.dovecot` starts a throwaway Dovecot (the benchmarks' launcher,
  ``benchmarks/imap_dovecot.py``) on a free loopback port with its own config, Maildir and
  passwd-file in a temp folder; it needs root and ``dovecot-imapd`` (skipped on a laptop
  without them, a failure in CI where ``MAILWING_REQUIRE_CLIENTS=1``);
- :mod:`.conftest` starts one mailwing per backend (SQLite, PostgreSQL) and gives every
  script its own user on all servers, so scripts never see each other's state;
- :mod:`.script` plays a script (:mod:`.wire` is the raw client), :mod:`.normalise` removes
  what may legitimately differ (UIDVALIDITY values, dates, capability lists, free text after
  the status, server chatter, item order), :mod:`.compare` compares step by step;
- ``test_scripts.py`` runs every ``scripts/*.txt`` (Dovecot once, mailwing on each backend);
  ``test_corpus.py`` APPENDs a corpus of awkward messages (``corpus/*.eml`` and CPython's
  email test messages) and compares ENVELOPE, BODY, BODYSTRUCTURE and sections.

Adding a script (for a new extension, say): write ``scripts/NAME.txt``; nothing else to
register. One step a line, ``#`` comments::

    # What this covers, with the RFC sections.
    C: LOGIN {login}                  # session C; {login} is the script user's credentials
    C: APPEND INBOX (\\Seen) {msg:simple}   # {msg:NAME} = corpus/NAME.eml as a LITERAL+
    C: SELECT INBOX
    C2: LOGIN {login}                 # a second session of the same user
    C2: SELECT INBOX
    C: STORE 1 +FLAGS ($Label)        # one session changes ...
    C2: NOOP                          # ... the other observes
    C2: IDLE                          # reads the continuation only
    WAIT 1.0
    C2: DONE                          # reads up to IDLE's tagged answer

Then ``pytest tests/differential -k NAME``. A failure prints, per step, both servers'
normalised responses. If mailwing is wrong, fix it. If the answers differ and both are
right, or Dovecot departs from the RFC, add a :class:`~.known.Known` entry (the narrowest
``rewrite`` or ``lines`` that forgives only that detail) with the RFC section. If a new kind
of value legitimately differs everywhere (a new response code carrying a server-chosen
number, for example), teach :mod:`.normalise` and say so in its docstring. Dovecot
advertises more than mailwing (CONDSTORE, QRESYNC, ESEARCH, SORT, ...); a script for such an
extension compares once mailwing implements it.
"""
