"""The replies LMTP has beyond SMTP's catalogue (:mod:`mailwing.proto.smtp.replies`).

Why a few more: ``mailwing deliver`` maps the reply of its LMTP delivery to a sysexits code
as its direct path does (67 no such user, 73 no such mailbox, 77 over quota, 65 bad or empty
message, 75 try again), so each outcome of the delivery service needs a reply of its own:

- ``550 5.1.1`` no such user (SMTP's code); ``550 5.2.0`` the user exists but the
  ``XMAILBOX`` mailbox does not (RFC 3463 X.2.0, "other mailbox status");
- ``552 5.2.2`` over quota, at RCPT or after the body (SMTP's code);
- ``554 5.6.0`` an empty message (nothing to deliver; RFC 3463 X.6.0, media error), beside
  SMTP's ``550 5.6.0`` for bare line endings and NUL;
- ``500 5.5.1`` for HELO/EHLO (RFC 2033 section 4.1: LMTP greets with LHLO only) and ``502
  5.5.1`` for STARTTLS and AUTH, which an LMTP listener here does not offer (its UNIX
  socket is protected by file permissions, its TCP port binds loopback only).
"""

from __future__ import annotations

from mailwing.proto.smtp.replies import Reply

__all__ = ["LR"]


class LR:
    """LMTP-only entries; everything else comes from SMTP's ``R``."""

    @staticmethod
    def greeting(hostname: str) -> Reply:
        return Reply(220, None, f"{hostname} LMTP mailwing")

    @staticmethod
    def lhlo(hostname: str, client: str, keywords: tuple[str, ...]) -> Reply:
        return Reply(250, None, f"{hostname} greets {client}", keywords)

    @staticmethod
    def delivered(address: str, uid: int) -> Reply:
        return Reply(250, "2.0.0", f"<{address}> delivered (uid {uid})")

    # The refusals of a delivery carry the delivery service's own one-line reason, so that
    # ``mailwing deliver`` says the same over LMTP as on its direct path.
    @staticmethod
    def unknown_user(reason: str) -> Reply:
        return Reply(550, "5.1.1", reason)

    @staticmethod
    def unknown_mailbox(reason: str) -> Reply:
        return Reply(550, "5.2.0", reason)

    @staticmethod
    def over_quota(reason: str) -> Reply:
        return Reply(552, "5.2.2", reason)

    @staticmethod
    def empty_message(reason: str) -> Reply:
        return Reply(554, "5.6.0", reason)

    USE_LHLO = Reply(500, "5.5.1", "this is LMTP: use LHLO (RFC 2033)")
    NOT_OFFERED = Reply(502, "5.5.1", "not offered over LMTP")
    NEED_LHLO = Reply(503, "5.5.1", "send LHLO first")
    LHLO_ARGS = Reply(501, "5.5.4", "usage: LHLO domain")
