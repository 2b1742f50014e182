"""State shared beyond one worker process: the node's login cache and the cluster's limits.

* :mod:`.memory`: an anonymous shared memory region made by ``mailwing serve`` before it
  forks its workers, so every worker of a node sees the same verified-password cache (and,
  on SQLite, the same failure and connection counts) without a server process of its own.
* :mod:`.limits`: failed-login throttling and per-IP connection counts, counted across
  workers and nodes through Redis (``server.redis_url``), PostgreSQL, or :mod:`.memory`.
"""
