"""Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN,
AUTHENTICATE (RFC 3501 sections 6.1, 6.2), ID (RFC 2971), NAMESPACE (RFC 2342); ENABLE
is in ``enable.py``.

Login rules: before TLS, unless ``plaintext_allowed``, LOGIN is refused with
``NO [PRIVACYREQUIRED]`` (the capability list says LOGINDISABLED, RFC 3501 section 6.2.3),
and so is AUTHENTICATE PLAIN. Failures answer ``NO [AUTHENTICATIONFAILED]``, a disabled
account ``NO [AUTHORIZATIONFAILED]``, storage trouble ``NO [UNAVAILABLE]`` (RFC 5530); after
``limits.max_auth_failures`` failures the session says ``* BYE`` and closes. AUTHENTICATE
PLAIN takes its response inline (RFC 4959 SASL-IR) or after an empty ``+`` continuation, and
is cancelled by ``*`` (RFC 3501 section 6.2.2). A successful login answers with the new
CAPABILITY list as a response code, so clients need not ask again.
"""

from __future__ import annotations

from mailwing import __version__
from mailwing.proto.common.sasl import SaslCancelled, SaslError, decode_response, parse_plain
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.capabilities import capabilities
from mailwing.proto.imap.responses import Code
from mailwing.server.imap.base import Done, Handler, SessionState
from mailwing.services.auth import AuthOutcome
from mailwing.storage.errors import StorageError

__all__ = ["HANDLERS", "capability_list"]

_FAILURES: dict[AuthOutcome, tuple[str, str]] = {
    AuthOutcome.BAD_CREDENTIALS: ("AUTHENTICATIONFAILED", texts.AUTH_FAILED),
    AuthOutcome.DISABLED: ("AUTHORIZATIONFAILED", texts.AUTH_DISABLED),
    AuthOutcome.THROTTLED: ("AUTHENTICATIONFAILED", texts.AUTH_THROTTLED),
    AuthOutcome.TEMPFAIL: ("UNAVAILABLE", texts.AUTH_TEMPFAIL),
}


def capability_list(s: SessionState) -> list[str]:
    caps = capabilities(tls_active=s.conn.tls_active,
                        plaintext_allowed=s.ctx.settings.plaintext_allowed,
                        authenticated=s.authenticated,
                        append_limit=s.ctx.settings.limits.max_message_size,
                        compressed=s.conn.compressed)
    if s.conn.ssl_context is None:
        caps = [x for x in caps if x != "STARTTLS"]
    return caps


def _plaintext_ok(s: SessionState) -> bool:
    return s.conn.tls_active or s.ctx.settings.plaintext_allowed


async def capability(s: SessionState, cmd: c.Capability) -> Done:
    s.send(responses.capability(capability_list(s)))
    return Done("OK", texts.COMPLETED.format("CAPABILITY"))


async def noop(s: SessionState, cmd: c.Command) -> Done:
    return Done("OK", texts.COMPLETED.format(cmd.name))


async def logout(s: SessionState, cmd: c.Logout) -> Done:
    s.send(responses.bye(texts.BYE_LOGOUT))
    s.logout = True
    return Done("OK", texts.COMPLETED.format("LOGOUT"))


async def starttls(s: SessionState, cmd: c.StartTls) -> Done:
    if s.conn.tls_active:
        return Done("BAD", texts.STARTTLS_ACTIVE)
    if s.conn.ssl_context is None:
        return Done("NO", texts.STARTTLS_UNAVAILABLE)
    s.send(responses.ok(cmd.tag, texts.STARTTLS_BEGIN))
    s.reader.clear()  # commands pipelined after STARTTLS are discarded (RFC 3501 6.2.1)
    await s.conn.start_tls()  # writes the queued OK once reading is paused
    s.conn.log("tls started", cipher=s.conn.tls_cipher)
    return Done(sent=True)


async def _check(s: SessionState, mechanism: str, username: str, password: str) -> Done:
    try:
        result = await s.ctx.auth.authenticate(username, password, peer_ip=s.conn.peer.ip)
    except StorageError as exc:
        s.conn.log("login failed", mechanism=mechanism, reason=f"storage: {exc}")
        return Done("NO", texts.AUTH_TEMPFAIL, "UNAVAILABLE")
    if result.ok and result.user is not None:
        s.user = result.user
        s.conn.user = result.user.address
        s.conn.log("login", mechanism=mechanism, tls=s.conn.tls_active)
        return Done("OK", texts.COMPLETED.format(mechanism),
                    Code.capability(capability_list(s)))
    code, text = _FAILURES.get(result.outcome, ("UNAVAILABLE", texts.AUTH_TEMPFAIL))
    s.conn.log("login failed", mechanism=mechanism, reason=result.outcome.value,
               username=username[:64])
    return _failed(s, code, text)


def _failed(s: SessionState, code: str, text: str) -> Done:
    s.auth_failures += 1
    if s.auth_failures >= s.ctx.settings.limits.max_auth_failures:
        s.closing = True
    return Done("NO", text, code)


async def login(s: SessionState, cmd: c.Login) -> Done:
    if not _plaintext_ok(s):
        return Done("NO", texts.PRIVACY_REQUIRED, "PRIVACYREQUIRED")
    return await _check(s, "LOGIN", cmd.username, cmd.password)


async def authenticate(s: SessionState, cmd: c.Authenticate) -> Done:
    if cmd.mechanism != "PLAIN":
        return Done("NO", texts.AUTH_MECHANISM_UNSUPPORTED, "CANNOT")
    if not _plaintext_ok(s):
        return Done("NO", texts.PRIVACY_REQUIRED, "PRIVACYREQUIRED")
    message = cmd.initial_response
    try:
        if message is None:
            assert s.read_line is not None
            s.send(responses.continuation(texts.CONTINUE_AUTH))
            await s.flush()
            message = decode_response(await s.read_line())
        creds = parse_plain(message)
    except SaslCancelled:
        return Done("BAD", texts.AUTH_CANCELLED)
    except SaslError:
        return _failed(s, "AUTHENTICATIONFAILED", texts.AUTH_FAILED)
    if creds.authzid and creds.authzid.lower() != creds.authcid.lower():
        return _failed(s, "AUTHORIZATIONFAILED", texts.AUTH_FAILED)
    return await _check(s, "AUTHENTICATE", creds.authcid, creds.password)


async def id_(s: SessionState, cmd: c.Id) -> Done:
    s.send(responses.id_response({"name": "mailwing", "version": __version__}))
    return Done("OK", texts.ID_OK)


async def namespace(s: SessionState, cmd: c.Namespace) -> Done:
    s.send(responses.namespace())
    return Done("OK", texts.COMPLETED.format("NAMESPACE"))


HANDLERS: dict[type[c.Command], Handler] = {
    c.Capability: capability, c.Noop: noop, c.Logout: logout, c.StartTls: starttls,
    c.Login: login, c.Authenticate: authenticate, c.Id: id_, c.Namespace: namespace,
}
