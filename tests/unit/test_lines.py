"""The bounded line reader: terminators, limits, discarding, chunk splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwing.proto.common.lines import LINE_TOO_LONG, LineReader, LineTooLong


def lines_of(reader: LineReader, limit: int | None = None) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    while (line := reader.next_line(limit)) is not None:
        out.append(line)
    return out


def test_crlf_and_bare_lf() -> None:
    r = LineReader(255)
    r.feed(b"ONE\r\nTWO\nTHREE\r")
    assert lines_of(r) == [b"ONE", b"TWO"]
    r.feed(b"\n")
    assert lines_of(r) == [b"THREE"]
    assert r.buffered == 0


def test_limit_counts_crlf() -> None:
    r = LineReader(10)
    r.feed(b"12345678\r\n123456789\r\n12345678\n123456789\n")
    assert lines_of(r) == [b"12345678", LINE_TOO_LONG, b"12345678", LINE_TOO_LONG]


def test_long_line_discarded_without_buffering() -> None:
    r = LineReader(10)
    for _ in range(100):
        r.feed(b"x" * 1000)
        assert lines_of(r) == []
        assert r.buffered <= 1000
    r.feed(b"yyy\r\nok\r\n")
    assert lines_of(r) == [LINE_TOO_LONG, b"ok"]


def test_per_call_limit() -> None:
    r = LineReader(10)
    r.feed(b"a" * 50 + b"\r\n")
    assert lines_of(r, 100) == [b"a" * 50]


def test_clear() -> None:
    r = LineReader(10)
    r.feed(b"abc\r\ndef")
    r.clear()
    assert r.buffered == 0 and lines_of(r) == []


def test_singleton_marker() -> None:
    assert LineTooLong() is LINE_TOO_LONG and repr(LINE_TOO_LONG) == "LINE_TOO_LONG"


def test_many_pipelined_lines_compacts() -> None:
    r = LineReader(255)
    r.feed(b"NOOP\r\n" * 20000)
    assert lines_of(r) == [b"NOOP"] * 20000


def reference(data: bytes, limit: int) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    for raw in data.split(b"\n")[:-1]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        out.append(LINE_TOO_LONG if len(line) + 2 > limit else line)
    return out


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"bb", b"\r", b"\n", b"\r\n", b"x" * 7]), max_size=50),
    st.lists(st.integers(min_value=1, max_value=9), max_size=30),
)
def test_any_chunking_matches_reference(parts: list[bytes], sizes: list[int]) -> None:
    data = b"".join(parts)
    r = LineReader(8)
    got: list[bytes | LineTooLong] = []
    pos = 0
    for size in [*sizes, len(data)]:
        r.feed(data[pos:pos + size])
        pos += size
        got += lines_of(r)
    assert got == reference(data, 8)
