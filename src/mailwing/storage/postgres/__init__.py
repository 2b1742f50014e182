"""PostgreSQL backend (asyncpg): metadata and contents in one database shared by every node."""

from mailwing.storage.postgres.backend import PostgresStorage

__all__ = ["PostgresStorage"]
