-- mailwing schema 6 for SQLite: background jobs held by one process at a time (garbage
-- collection), as on PostgreSQL, where several nodes compete for them.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL                       -- UNIX seconds; an expired lease is free
);
