-- mailwing schema 3 for PostgreSQL: the outbound queue (mail for other domains, and DSNs).
-- One row per queued message; the content is the shared contents row (stored once), and each
-- recipient has its own status. Times are UNIX seconds, compared with the worker's clock.
CREATE TABLE queue (
    id TEXT PRIMARY KEY,                      -- the SMTP queue id ("250 ... queued as ID")
    content_sha256 TEXT NOT NULL REFERENCES contents (sha256),
    sender TEXT NOT NULL,                     -- envelope sender; '' is the null sender <>
    created_at DOUBLE PRECISION NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,                         -- the worker holding the message ...
    lease_until DOUBLE PRECISION              -- ... until then (an expired lease is free)
);
CREATE INDEX queue_due ON queue (next_attempt);
CREATE INDEX queue_content ON queue (content_sha256);

CREATE TABLE queue_recipients (
    queue_id TEXT NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'deferred', 'delivered', 'failed')),
    last_reply TEXT NOT NULL DEFAULT '',
    remote_mta TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (queue_id, address)
);

-- A content the queue still needs is never removed by an expunge or a user deletion: their
-- orphan clean-up (DELETE FROM contents ... RETURNING) skips it, and so keeps its bytes too.
CREATE FUNCTION contents_kept_while_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM queue WHERE queue.content_sha256 = OLD.sha256) THEN
        RETURN NULL;
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER contents_kept_while_queued BEFORE DELETE ON contents
FOR EACH ROW EXECUTE FUNCTION contents_kept_while_queued();
