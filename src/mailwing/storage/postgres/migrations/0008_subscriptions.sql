-- mailwing schema 8 for PostgreSQL: IMAP subscriptions as names (RFC 3501 6.3.6-6.3.9),
-- apart from the mailboxes: a name can be subscribed without a mailbox, and a subscription
-- outlives the mailbox it named. Filled from the old per-mailbox flag, which is no longer
-- read or written (left in place, as on SQLite).
CREATE TABLE subscriptions (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

INSERT INTO subscriptions (user_id, name)
    SELECT user_id, name FROM mailboxes WHERE subscribed;
