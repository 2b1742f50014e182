"""Message authentication: DKIM signing (RFC 6376) and the inbound SPF (RFC 7208), DKIM and
DMARC (RFC 7489) checks, recorded in ``Authentication-Results`` (RFC 8601).

Named ``mailauth`` so it is not confused with :mod:`mailwing.services.auth` (passwords).
Modules: :mod:`.dns` (the one resolver built from ``outbound.dns_resolver``), :mod:`.spf`
with :mod:`.spfmacro`, :mod:`.dkim` (sign/verify) with :mod:`.dkimkeys` (key files),
:mod:`.dmarc`, :mod:`.results` (the header), :mod:`.inbound` (the SMTP session's hook).
"""
