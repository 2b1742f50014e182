-- mailwing schema 4 for PostgreSQL: how far back the expunged table is complete (RFC 7162 QRESYNC).
-- Expunged UIDs are kept for VANISHED responses up to a configurable count per mailbox
-- (limits.expunged_retention); rows with modseq <= vanished_floor may have been pruned, so a
-- client resynchronising from an older mod-sequence gets the fallback answer of RFC 7162
-- section 3.2.5.2 (every known UID that no longer exists) instead of an incomplete list.
ALTER TABLE mailboxes ADD COLUMN vanished_floor BIGINT NOT NULL DEFAULT 0;
