-- mailwing schema 5 for SQLite: running usage counters per user (RFC 9208 QUOTA), kept up to
-- date by the same transactions that add or remove mail, so a quota check reads one row
-- instead of summing every message. users.quota_bytes stays the limit (0: unlimited).
ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
    used_messages = (SELECT count(*) FROM mail m JOIN mailboxes b ON b.id = m.mailbox_id
                     WHERE b.user_id = users.id),
    used_bytes = (SELECT coalesce(sum(c.size), 0) FROM mail m
                  JOIN mailboxes b ON b.id = m.mailbox_id
                  JOIN contents c ON c.sha256 = m.content_sha256
                  WHERE b.user_id = users.id);
