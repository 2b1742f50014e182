"""SASL base64 handling and the PLAIN mechanism (RFC 4616)."""

from __future__ import annotations

import base64

import pytest

from mailwing.proto.common.sasl import (
    MECHANISMS,
    PlainCredentials,
    SaslCancelled,
    SaslError,
    decode_response,
    encode_challenge,
    parse_plain,
)


def test_decode_strict() -> None:
    assert decode_response(base64.b64encode(b"\0u\0p")) == b"\0u\0p"
    assert decode_response(" AHUAcA== ") == b"\0u\0p"
    for bad in (b"AHU!cA==", b"AHUAcA=", b"AHU AcA=", "AHUAcA==\u00e9"):
        with pytest.raises(SaslError):
            decode_response(bad)


def test_cancel_and_empty() -> None:
    with pytest.raises(SaslCancelled):
        decode_response(b"*")
    assert decode_response(b"=", initial=True) == b""
    assert decode_response(b"") == b""
    with pytest.raises(SaslError):
        decode_response(b"=")  # "=" only means empty for an initial response


def test_parse_plain() -> None:
    assert parse_plain(b"\0user@x\0pass word") == PlainCredentials("", "user@x", "pass word")
    assert parse_plain("adm\0u\0pässwort".encode()) == PlainCredentials("adm", "u", "pässwort")


@pytest.mark.parametrize("msg", [b"", b"u\0p", b"\0\0p", b"\0u\0", b"a\0b\0c\0d",
                                 b"\0" + b"u" * 256 + b"\0p", b"\0\xff\0p"])
def test_parse_plain_rejects(msg: bytes) -> None:
    with pytest.raises(SaslError):
        parse_plain(msg)


def test_repr_hides_password() -> None:
    assert "secret" not in repr(parse_plain(b"\0u\0secret"))


def test_misc() -> None:
    assert MECHANISMS == ("PLAIN",)
    assert encode_challenge(b"") == "" and encode_challenge(b"hi") == "aGk="
