-- mailwing schema 6 for PostgreSQL: what several nodes on one database share besides mail.
-- Background jobs held by one node at a time (garbage collection; the queue has per-message
-- leases of its own).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL           -- UNIX seconds; an expired lease is free
);

-- When a content piece was written or last re-used, so that garbage collection never takes
-- bytes that a delivery in progress is about to link (see storage.postgres.gc).
ALTER TABLE content_chunks
    ADD COLUMN created_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now());

-- Failed logins and live connections per client IP, counted across nodes when no Redis is
-- configured (mailwing.shared.pg_store). UNLOGGED: no WAL; a crash only forgets them.
CREATE UNLOGGED TABLE mw_auth_failures (
    key TEXT NOT NULL,                        -- 'ip:<address>' or 'user:<address>'
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX mw_auth_failures_key ON mw_auth_failures (key, at);

CREATE UNLOGGED TABLE mw_connections (
    holder TEXT NOT NULL,                     -- '<node>/<pid>' of the publishing worker
    ip TEXT NOT NULL,
    n INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (holder, ip)
);
