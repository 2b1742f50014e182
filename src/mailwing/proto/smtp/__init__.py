"""Sans-IO SMTP server protocol (RFC 5321 and extensions): see ``core`` for the overview."""

from mailwing.proto.smtp.core import SmtpCore, SmtpUsageError
from mailwing.proto.smtp.replies import R, Reply, SmtpError

__all__ = ["R", "Reply", "SmtpCore", "SmtpError", "SmtpUsageError"]
