"""COMPRESS=DEFLATE (RFC 4978): raw DEFLATE in both directions after the tagged OK.

Rules (section 3): only the ``DEFLATE`` mechanism (``NO`` otherwise, ``BAD`` is for syntax);
once per connection (``NO [COMPRESSIONACTIVE]`` the second time, RFC 5530); not over a TLS
layer that compresses already (the server's TLS context disables TLS compression, so this
only guards a context configured otherwise). The OK is written uncompressed, then
:meth:`Connection.start_compression` switches both directions; everything after it,
including untagged updates, is compressed. Over STARTTLS or IMAPS the deflate layer runs
inside TLS. A client must not pipeline anything after COMPRESS before the OK (section 3);
bytes that arrive that way would be read as compressed data.
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.server.imap.base import Done, Handler, SessionState

__all__ = ["HANDLERS"]


def _tls_compresses(s: SessionState) -> bool:
    obj = s.conn.writer.get_extra_info("ssl_object")
    return obj is not None and obj.compression() is not None


async def compress(s: SessionState, cmd: c.Compress) -> Done:
    if cmd.mechanism != "DEFLATE":
        return Done("NO", texts.COMPRESS_UNSUPPORTED, "CANNOT")
    if s.conn.compressed or _tls_compresses(s):
        return Done("NO", texts.COMPRESS_ACTIVE, "COMPRESSIONACTIVE")
    s.send(responses.ok(cmd.tag, texts.COMPRESS_BEGIN))
    await s.flush()
    s.conn.start_compression()
    s.conn.log("compression started", mechanism="DEFLATE")
    return Done(sent=True)


HANDLERS: dict[type[c.Command], Handler] = {c.Compress: compress}
