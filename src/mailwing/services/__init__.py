"""Services between protocol sessions and storage: authentication, delivery, policy.

Every front (the protocol sessions in :mod:`mailwing.server`, the command line, the HTTP
admin listener, import/export) goes through these modules, so a rule is written once.

Where IMAP's line runs: ``server/imap/`` holds one handler per command group; a handler
checks arguments, calls services and storage, and queues responses on the session. Anything
with IMAP *semantics* that does not need the socket lives here, as ``services/imap_*``:

- ``imap_selected``: the selected mailbox as one session sees it (sequence numbers, \\Recent,
  pending EXISTS/EXPUNGE/FETCH), RFC 3501 sections 2.3.1.2 and 7.4.1;
- ``imap_fetch``: what each FETCH item needs and how it is computed (cached MIME views);
- ``imap_search``: evaluating a parsed SEARCH program against entries and contents;
- ``imap_mailboxes``: names, hierarchy, LIST/LSUB matching.

The test for which side something belongs on: if it can be unit-tested without a
connection, a session or a writer, it is a service.
"""
