-- mailwing schema 1 for SQLite. Timestamps are fixed-width UTC ISO 8601 text; flags are a
-- sorted, space-separated list of IMAP flag atoms; booleans are 0/1.
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- Global counters (UIDVALIDITY: distinct for every mailbox ever created).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('uidvalidity', 0);

CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name = lower(name))
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE CHECK (address = lower(address)),
    domain_id INTEGER NOT NULL REFERENCES domains (id),
    password_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    quota_bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX users_domain ON users (domain_id);

CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL UNIQUE CHECK (uidvalidity BETWEEN 1 AND 4294967295),
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    special_use TEXT,
    subscribed INTEGER NOT NULL DEFAULT 1,
    UNIQUE (user_id, name)
);

-- One row per distinct message content; the bytes are files under data_dir/blobs.
CREATE TABLE contents (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    crlf_size INTEGER NOT NULL,
    crlf_clean INTEGER NOT NULL,
    message_id TEXT,
    subject TEXT,
    from_addr TEXT,
    to_addr TEXT,
    cc_addr TEXT,
    date TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mail (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    internal_date TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    content_sha256 TEXT NOT NULL REFERENCES contents (sha256),
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX mail_content ON mail (content_sha256);
CREATE INDEX mail_modseq ON mail (mailbox_id, modseq);

-- Expunged UIDs with the MODSEQ of their removal, for QRESYNC VANISHED (RFC 7162 3.2.10).
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
