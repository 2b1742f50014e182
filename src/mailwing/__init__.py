"""mailwing: a mail server (SMTP, POP3, IMAP) in Python over SQLite or PostgreSQL."""

__version__ = "0.1.0"
__all__ = ["__version__"]
