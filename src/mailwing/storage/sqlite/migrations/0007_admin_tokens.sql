-- mailwing schema 7 for SQLite: bearer tokens of the admin HTTP API and console.
-- Only a SHA-256 digest of each token is kept (tokens are 256-bit random strings, so a fast
-- hash is enough); the token itself is shown once by `mailwing admin token create`.
-- Times are UNIX seconds.
CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_used_at REAL
);
