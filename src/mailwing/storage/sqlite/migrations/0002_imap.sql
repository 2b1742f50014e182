-- mailwing schema 2 for SQLite: what the IMAP server needs beyond schema 1.
-- (mail (mailbox_id, modseq) and expunged (mailbox_id, modseq) are indexed since schema 1.)

-- RFC 3501 \Recent: entries with uid >= recent_floor have not been seen by any session yet;
-- a read-write SELECT takes the floor and raises it to uidnext (Storage.claim_recent). Existing
-- mailboxes start at 1, so mail delivered before the upgrade counts as recent once.
ALTER TABLE mailboxes ADD COLUMN recent_floor INTEGER NOT NULL DEFAULT 1;

-- Values derived once per content (IMAP ENVELOPE, BODYSTRUCTURE, ...); they go with the content.
CREATE TABLE content_cache (
    sha256 TEXT NOT NULL REFERENCES contents (sha256) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (sha256, key)
) WITHOUT ROWID;
