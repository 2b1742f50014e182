-- mailwing schema 1 for PostgreSQL. Contents live in the database (content_chunks), so every
-- node of a cluster sees the same store.
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);

-- Global counters (UIDVALIDITY: distinct for every mailbox ever created).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('uidvalidity', 0);

CREATE TABLE domains (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name = lower(name))
);

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address TEXT NOT NULL UNIQUE CHECK (address = lower(address)),
    domain_id BIGINT NOT NULL REFERENCES domains (id),
    password_hash TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    quota_bytes BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_domain ON users (domain_id);

CREATE TABLE mailboxes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL UNIQUE CHECK (uidvalidity BETWEEN 1 AND 4294967295),
    uidnext BIGINT NOT NULL DEFAULT 1,
    highestmodseq BIGINT NOT NULL DEFAULT 1,
    special_use TEXT,
    subscribed BOOLEAN NOT NULL DEFAULT TRUE,
    UNIQUE (user_id, name)
);

CREATE TABLE contents (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    crlf_size BIGINT NOT NULL,
    crlf_clean BOOLEAN NOT NULL,
    message_id TEXT,
    subject TEXT,
    from_addr TEXT,
    to_addr TEXT,
    cc_addr TEXT,
    date TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

-- The bytes, in pieces of about 1 MiB, keyed by digest (or by a "staging:" key while a
-- writer is still streaming). Reading one piece at a time keeps memory bounded.
CREATE TABLE content_chunks (
    sha256 TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, seq)
);

CREATE TABLE mail (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    internal_date TIMESTAMPTZ NOT NULL,
    flags TEXT[] NOT NULL DEFAULT '{}',
    content_sha256 TEXT NOT NULL REFERENCES contents (sha256),
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX mail_content ON mail (content_sha256);
CREATE INDEX mail_modseq ON mail (mailbox_id, modseq);

-- Expunged UIDs with the MODSEQ of their removal, for QRESYNC VANISHED (RFC 7162 3.2.10).
CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
