"""Moving mail in and out of mailwing: import, export, database copy, backup and restore.

Why a package of its own: these are operator tools that sit beside the servers, not inside
them. They use the storage interface and the services exactly like the protocol sessions do
(so a rule about folder names or flags is never written twice), and nothing in storage/,
services/ or server/ imports them. The CLI fronts are thin (``mailwing.cli.portability``).

* :mod:`.sources` - what an import reads: folders and message references, bad items as
  :class:`~.sources.Problem` records instead of exceptions;
* :mod:`.maildir`, :mod:`.mbox`, :mod:`.imapsource` - the three kinds of source (and the
  Maildir/mbox writers used by export);
* :mod:`.importer` / :mod:`.exporter` - the two directions, over a mailwing user;
* :mod:`.progress` - a progress bar on a terminal, plain lines otherwise;
* :mod:`.dbcopy` - a table-generic copy between databases (SQLite to PostgreSQL and back),
  with verification by counts, row digests and content hashes;
* :mod:`.backup` - online backup and restore built on the same copy.
"""
