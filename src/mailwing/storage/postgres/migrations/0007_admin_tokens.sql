-- mailwing schema 7 for PostgreSQL: bearer tokens of the admin HTTP API and console.
-- Only a SHA-256 digest of each token is kept (tokens are 256-bit random strings, so a fast
-- hash is enough); the token itself is shown once by `mailwing admin token create`.
-- Times are UNIX seconds.
CREATE TABLE admin_tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION
);
