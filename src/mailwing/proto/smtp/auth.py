"""The SMTP AUTH exchange (RFC 4954) for the PLAIN (RFC 4616) and LOGIN mechanisms.

Why separate from the core: the exchange is a tiny state machine of its own (initial
response or not; LOGIN's two prompts) whose only outputs are "send this 334 challenge" or
"here are the credentials". Base64 and PLAIN parsing are shared with POP3 and IMAP through
:mod:`mailwing.proto.common.sasl`.

- ``AUTH PLAIN`` without an initial response gets ``334 `` (an empty challenge, RFC 4954
  section 4); ``=`` as initial response means empty.
- ``AUTH LOGIN`` (draft-murchison-sasl-login): ``334 VXNlcm5hbWU6`` ("Username:") then
  ``334 UGFzc3dvcmQ6`` ("Password:"); an initial response is the user name.
- ``*`` cancels: ``501 5.0.0``; undecodable base64 or a bad PLAIN message: ``501 5.5.2``;
  an authorization identity other than the user: ``535 5.7.8``; an unknown mechanism:
  ``504 5.5.4``. Response lines may be 12288 octets (RFC 4954 section 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.proto.common.sasl import (
    PlainCredentials,
    SaslCancelled,
    SaslError,
    decode_response,
    encode_challenge,
    parse_plain,
)
from mailwing.proto.smtp.events import AuthFailure
from mailwing.proto.smtp.replies import R, Reply, SmtpError

__all__ = ["FAILURE_REPLY", "MECHANISMS", "SASL_LINE_LIMIT", "SaslExchange"]

MECHANISMS = ("PLAIN", "LOGIN")
SASL_LINE_LIMIT = 12288  # RFC 4954 section 4
_MAX_FIELD = 255

#: How a failed credential check is answered, and whether it counts towards the session's
#: ``max_auth_failures`` (a storage outage is not the client's failure).
FAILURE_REPLY: dict[AuthFailure, tuple[Reply, bool]] = {
    AuthFailure.BAD_CREDENTIALS: (R.AUTH_FAILED, True),
    AuthFailure.DISABLED: (R.AUTH_FAILED, True),
    AuthFailure.THROTTLED: (R.AUTH_THROTTLED, True),
    AuthFailure.TEMPFAIL: (R.AUTH_TEMPFAIL, False),
}


@dataclass
class SaslExchange:
    mechanism: str
    username: str | None = None  # LOGIN: given, password next

    @classmethod
    def start(cls, mechanism: str) -> SaslExchange:
        if mechanism not in MECHANISMS:
            raise SmtpError(R.AUTH_UNSUPPORTED)
        return cls(mechanism)

    def step(self, line: bytes | str | None, *, initial: bool = False
             ) -> Reply | PlainCredentials:
        """Feed the client's next response (``None``: no initial response); return the
        next challenge or the credentials. Raises :class:`SmtpError` to end the exchange."""
        if line is None:
            prompt = "VXNlcm5hbWU6" if self.mechanism == "LOGIN" else ""
            return R.challenge(prompt)
        try:
            data = decode_response(line, initial=initial)
        except SaslCancelled:
            raise SmtpError(R.AUTH_CANCELLED) from None
        except SaslError:
            raise SmtpError(R.AUTH_MALFORMED) from None
        if self.mechanism == "PLAIN":
            try:
                creds = parse_plain(data)
            except SaslError:
                raise SmtpError(R.AUTH_MALFORMED) from None
            if creds.authzid and creds.authzid != creds.authcid:
                raise SmtpError(R.AUTHZ_REFUSED)
            return creds
        text = _utf8(data)
        if self.username is None:
            if not text:
                raise SmtpError(R.AUTH_MALFORMED)
            self.username = text
            return R.challenge(encode_challenge(b"Password:"))
        if not text:
            raise SmtpError(R.AUTH_MALFORMED)
        return PlainCredentials("", self.username, text)


def _utf8(data: bytes) -> str:
    if len(data) > _MAX_FIELD or b"\0" in data:
        raise SmtpError(R.AUTH_MALFORMED)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SmtpError(R.AUTH_MALFORMED) from None
