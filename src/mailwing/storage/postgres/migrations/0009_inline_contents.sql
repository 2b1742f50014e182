-- mailwing schema 9 for PostgreSQL: nothing to change. Schema 9 on SQLite keeps small
-- contents inside the database (table inline_contents) instead of as files; PostgreSQL has
-- always kept every content inside the database (content_chunks), so it has no such table.
-- The version exists so that both backends share one numbering (`mailwing db copy` needs
-- both sides at the same version).
SELECT 1;
