"""Dot-stuffing, CRLF normalisation and TOP cutting, exact for every chunking."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwing.proto.pop3.encode import DotStuffer, TopLimiter


def normalise(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


def encode(data: bytes, cuts: list[int], crlf_clean: bool) -> tuple[bytes, int]:
    s = DotStuffer(crlf_clean=crlf_clean)
    wire = b"".join(s.encode(c) for c in chunked(data, cuts)) + s.finish()
    return wire, s.octets


def decode(wire: bytes) -> bytes:
    """What a client reassembles: strip the terminator, un-stuff every line."""
    assert wire == b".\r\n" or wire.endswith(b"\r\n.\r\n"), wire[-10:]
    lines = wire[:-3].split(b"\r\n")
    for line in lines:
        assert not line.startswith(b".") or line.startswith(b".."), line
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def expected_wire_body(data: bytes) -> bytes:
    norm = normalise(data)
    return norm if norm == b"" or norm.endswith(b"\r\n") else norm + b"\r\n"


msg_bytes = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"\xc3\xa9", b" ", b"\x00"]),
    max_size=60,
).map(b"".join)
cut_lists = st.lists(st.integers(min_value=0, max_value=200), max_size=12)


@settings(max_examples=600, deadline=None)
@given(msg_bytes, cut_lists)
def test_stuffing_round_trips_any_chunking(data: bytes, cuts: list[int]) -> None:
    wire, octets = encode(data, cuts, crlf_clean=False)
    assert decode(wire) == expected_wire_body(data)
    assert octets == len(normalise(data))
    assert wire == encode(data, [], crlf_clean=False)[0]  # independent of the chunking


@settings(max_examples=300, deadline=None)
@given(msg_bytes, cut_lists)
def test_crlf_clean_fast_path(data: bytes, cuts: list[int]) -> None:
    clean = normalise(data.replace(b"\r", b""))
    wire, octets = encode(clean, cuts, crlf_clean=True)
    assert decode(wire) == expected_wire_body(clean)
    assert octets == len(clean)
    assert wire == encode(clean, cuts, crlf_clean=False)[0]


def test_examples() -> None:
    assert encode(b"", [], True)[0] == b".\r\n"
    assert encode(b".", [], True)[0] == b"..\r\n.\r\n"
    assert encode(b"a\r\n.b\r\n", [], True)[0] == b"a\r\n..b\r\n.\r\n"
    assert encode(b"a\n.\nb", [2], False)[0] == b"a\r\n..\r\nb\r\n.\r\n"
    assert encode(b"a\r\n.\r\n", [1, 2, 3, 4], True)[0] == b"a\r\n..\r\n.\r\n"
    # a dot at the very start of a chunk that starts a line
    assert encode(b"x\r\n.y", [3], True)[0] == b"x\r\n..y\r\n.\r\n"
    # CR and LF in different chunks are still one line ending, not CR CR LF
    assert encode(b"x\r\ny", [2], False)[0] == b"x\r\ny\r\n.\r\n"
    # a lone CR is not a line ending: no stuffing after it, and it is kept as is
    assert encode(b"x\r.y\n", [], False)[0] == b"x\r.y\r\n.\r\n"


def test_large_clean_and_unclean_streams_count_exactly() -> None:
    """25 MB through the encoder in 256 KiB chunks (speed is measured in benchmarks/)."""
    line = b"." + b"x" * 70 + b"\r\n"
    chunk = line * (256 * 1024 // len(line))
    total = 25 * 1024 * 1024
    n = total // len(chunk)
    for clean in (True, False):
        s = DotStuffer(crlf_clean=clean)
        out = sum(len(s.encode(chunk)) for _ in range(n)) + len(s.finish())
        assert s.octets == n * len(chunk)
        # every line starts with a dot: one stuffed dot per line, plus ".\r\n"
        assert out == n * len(chunk) + n * (len(chunk) // len(line)) + 3


# -- TOP -----------------------------------------------------------------------------------
def top_reference(data: bytes, k: int) -> bytes:
    # lines end at LF only (a lone CR does not end a line), as in the limiter
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    for i, line in enumerate(lines):
        if line in (b"\n", b"\r\n"):
            return b"".join(lines[: i + 1 + k])
    return data


top_bytes = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"H: v", b"a", b"\r\n\r\n", b"\n\n"]), max_size=40
).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(top_bytes, st.integers(min_value=0, max_value=6), cut_lists)
def test_top_limiter_any_chunking(data: bytes, k: int, cuts: list[int]) -> None:
    lim = TopLimiter(k)
    out = []
    for c in chunked(data, cuts):
        out.append(lim.feed(c))
        if lim.done:
            break
    assert b"".join(out) == top_reference(data, k)


def test_top_examples() -> None:
    msg = b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\nline3\r\n"
    assert TopLimiter(0).feed(msg) == b"Subject: x\r\nFrom: y\r\n\r\n"
    lim = TopLimiter(2)
    assert lim.feed(msg) == b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\n" and lim.done
    lim = TopLimiter(10)
    assert lim.feed(msg) == msg and not lim.done
    assert TopLimiter(1).feed(b"Only: header\r\n") == b"Only: header\r\n"


def test_top_stops_early_on_large_body() -> None:
    lim = TopLimiter(3)
    head = lim.feed(b"A: b\n\n")
    assert head == b"A: b\n\n" and not lim.done
    assert lim.feed(b"1\n2\n3\n4\n" * 1000) == b"1\n2\n3\n"
    assert lim.done
    assert lim.feed(b"more") == b""


def test_a_chunk_without_a_dot_is_passed_through_uncopied() -> None:
    """A chunk with no "." needs no stuffing: it comes back as the very object given (a
    base64 attachment streams without a scan for CRLF "." or a copy), and the line-start
    state it leaves is still right for a dot opening the next chunk."""
    class Chunk(bytes):
        """bytes.replace() returns a plain copy of a subclass even when nothing matches, so
        getting this object back shows that no stuffing pass ran over it."""

    s = DotStuffer(crlf_clean=True)
    chunk = Chunk(b"QUJD" * 1000 + b"\r\n")
    assert s.encode(chunk) is chunk
    assert s.encode(b".x\r\n") == b"..x\r\n"  # after a chunk ending a line: stuffed
    tail = Chunk(b"no line end")
    assert s.encode(tail) is tail
    assert s.encode(b".y\r\n") == b".y\r\n"  # inside a line: not stuffed
    assert s.finish() == b".\r\n"
