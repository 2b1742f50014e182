"""Sans-IO LMTP server protocol (RFC 2033): the SMTP core with LHLO and one reply per
recipient; see ``core`` for the overview."""

from mailwing.proto.lmtp.core import LmtpCore
from mailwing.proto.lmtp.replies import LR

__all__ = ["LR", "LmtpCore"]
