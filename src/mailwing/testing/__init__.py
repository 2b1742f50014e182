"""pytest fixtures for tests that need a real mail server (see :mod:`mailwing.testing.plugin`).

Registered through the ``pytest11`` entry point, so installing mailwing is enough: the
fixtures ``mailwing_server``, ``mailwing_session_server``, ``mailwing_user`` and
``mailwing_capture`` are there in every test suite.
"""
