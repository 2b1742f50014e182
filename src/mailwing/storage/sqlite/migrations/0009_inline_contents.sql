-- mailwing schema 9 for SQLite: small message contents (at most INLINE_LIMIT octets, see
-- mailwing.storage.sqlite.inline; nearly all mail) are kept in the database, named by their
-- SHA-256 like the files under data_dir/blobs, so that the transaction linking a message
-- also makes its bytes durable and group commit covers both with one fsync. Larger contents
-- stay files. Contents stored as files before this version stay files and remain readable:
-- nothing is moved. created_at (UNIX seconds) is renewed whenever the same bytes are stored
-- again, so that garbage collection leaves bytes that a delivery is about to link alone.
-- A rowid table (not WITHOUT ROWID): its rows are kilobytes long.
CREATE TABLE inline_contents (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
