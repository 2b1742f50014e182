"""DKIM (RFC 6376): signing outbound mail and verifying every signature on inbound mail.

The cryptography and canonicalisation are dkimpy's; this module decides what to sign and
maps dkimpy's outcomes to the RFC 8601 result words.

Signing (RFC 6376 section 5): ``relaxed/relaxed`` canonicalisation (section 3.4; survives
re-folding and whitespace changes by relays), ``d=`` the domain whose key is active
(:mod:`.dkimkeys`), ``h=`` the names of ``dkim.headers`` present in the message (From is
required, section 5.4; absent names are not listed, so a relay may still add e.g. Cc).

Verification (section 6): each ``DKIM-Signature`` up to :data:`MAX_SIGNATURES` (section
6.1 lets a verifier limit the work) is checked with the key fetched through our resolver
(:func:`mailwing.mailauth.dns.txt_lookup_sync`). dkimpy is synchronous, so the work runs in
a thread. Results: ``pass``; ``fail`` (bad signature or body hash); ``permerror`` (a
malformed signature or no key record, sections 6.1.1-6.1.2); ``temperror`` (the key lookup
failed, section 6.1.2); no signature at all is ``none``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING

from mailwing.config import Settings
from mailwing.mailauth.dkimkeys import active_key
from mailwing.mailauth.dns import DnsTempError, txt_lookup_sync

if TYPE_CHECKING:
    import dkim  # type: ignore[import-untyped]

__all__ = ["MAX_SIGNATURES", "DkimResult", "from_domain", "sign", "sign_outbound",
           "unsigned", "verify_message"]

MAX_SIGNATURES = 5

_quiet = logging.getLogger("mailwing.mailauth.dkimpy")  # dkimpy logs every failure as ERROR
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str  # pass, fail, permerror, temperror (none: an empty list)
    domain: str  # d=
    selector: str  # s=
    reason: str = ""


def from_domain(header_block: bytes) -> str | None:
    """The domain of the single From: address (RFC 7489 section 6.6.1), lower-case; None when
    there is no From:, several, or one without a domain."""
    headers = BytesHeaderParser().parsebytes(header_block + b"\r\n")
    values = headers.get_all("From", [])
    addresses = getaddresses([str(v) for v in values])
    if len(values) != 1 or len(addresses) != 1:
        return None
    domain = addresses[0][1].rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def _present(message: bytes, wanted: list[str]) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0]
    names = {line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
             for line in head.split(b"\r\n") if line and line[:1] not in b" \t"}
    return [h for h in wanted if h.lower() in names]


def sign(message: bytes, domain: str, data_dir: Path, settings: Settings) -> bytes:
    """The ``DKIM-Signature`` field (CRLF-terminated, folded) to prepend to ``message``, or
    ``b""`` when ``domain`` has no active key, signing is off, or the message has no From:.
    CPU-bound (an RSA signature): call it in a thread from the event loop."""
    if not settings.dkim.sign:
        return b""
    key = active_key(data_dir, domain)
    if key is None:
        return b""
    include = _present(message, settings.dkim.headers)
    if "from" not in (h.lower() for h in include):
        return b""
    import dkim  # dkimpy on first use: a process that never signs never loads it

    signer = dkim.DKIM(message, logger=_quiet, signature_algorithm=key.signature_algorithm)
    header = signer.sign(key.selector.encode(), key.domain.encode(), key.dkimpy_private(),
                         canonicalize=(b"relaxed", b"relaxed"),
                         include_headers=[h.encode() for h in include])
    return bytes(header)


def sign_outbound(message: bytes, sender: str, settings: Settings) -> bytes:
    """Sign as the From: domain when it has a key, else as the envelope sender's domain
    (the DMARC-aligned choice first); ``b""`` when neither has one."""
    head = message.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    candidates = [from_domain(head), sender.rpartition("@")[2].lower() if sender else None]
    for domain in dict.fromkeys(d for d in candidates if d):
        header = sign(message, domain, settings.server.data_dir, settings)
        if header:
            return header
    return b""


def _verify_sync(message: bytes, settings: Settings) -> list[DkimResult]:
    import dkim  # dkimpy on first use (the embedded server and the CLI never need it)

    try:
        verifier = dkim.DKIM(message, logger=_quiet, minkey=1024)
    except dkim.DKIMException as exc:
        return [DkimResult("permerror", "", "", f"unparsable message: {exc}")]
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for idx in range(min(count, MAX_SIGNATURES)):
        looked_up: list[bytes | None] = []

        def dnsfunc(name: bytes, timeout: float = 5,
                    _seen: list[bytes | None] = looked_up) -> bytes | None:
            record = txt_lookup_sync(settings, name)
            _seen.append(record)
            return record

        verifier.signature_fields = {}
        try:  # the signature's own syntax (section 6.1.1): permerror
            prep = verifier.verify_headerprep(idx)
        except dkim.DKIMException as exc:
            results.append(DkimResult("permerror", *_ids(verifier), str(exc)))
            continue
        if not prep:
            break
        sig, include, sig_headers = prep
        domain, selector = _ids(verifier)
        try:
            ok = verifier.verify_sig(sig, include, sig_headers[idx], dnsfunc)
        except DnsTempError as exc:
            results.append(DkimResult("temperror", domain, selector, str(exc)))
            continue
        except dkim.ValidationError as exc:  # body hash mismatch
            results.append(DkimResult("fail", domain, selector, str(exc)))
            continue
        except dkim.DKIMException as exc:
            results.append(DkimResult("permerror", domain, selector, str(exc)))
            continue
        if ok:
            results.append(DkimResult("pass", domain, selector))
        elif looked_up and looked_up[-1] is None:
            results.append(DkimResult("permerror", domain, selector, "no key record"))
        else:
            results.append(DkimResult("fail", domain, selector, "signature did not verify"))
    return results


def _ids(verifier: dkim.DKIM) -> tuple[str, str]:
    fields = verifier.signature_fields or {}
    return (fields.get(b"d", b"").decode("ascii", "replace").lower(),
            fields.get(b"s", b"").decode("ascii", "replace"))


def unsigned(message: bytes) -> bool:
    """No ``DKIM-Signature`` field in the header block (RFC 6376 section 3.5): nothing to
    verify, the result list is empty (callers use it to skip the task and the thread)."""
    end = message.find(b"\r\n\r\n")
    head = message[:end] if end >= 0 else message
    return b"dkim-signature" not in head.lower()


async def verify_message(message: bytes, settings: Settings) -> list[DkimResult]:
    """Every signature's result (an empty list: the message is unsigned). An unsigned
    message is answered at once, without the worker thread and dkimpy's parse (most MX
    traffic in a benchmark, and ``dkim=none`` is what RFC 8601 section 2.7.1 says of it)."""
    if unsigned(message):
        return []
    return await asyncio.to_thread(_verify_sync, message, settings)
