"""mbox import (mboxrd and mboxo, From_ unquoting, dates from the From_ line, Status flags,
truncated files) and mbox export round trips, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailwing.model import User
from mailwing.portability.exporter import export_mail
from mailwing.portability.importer import import_mail
from mailwing.portability.mbox import MboxSource, parse_from_line, quote, unquote
from mailwing.storage import Storage
from tests.portability.conftest import mailbox_state, message, sha

TRICKY = message(1, extra=b"From here on, a body line\n>From already quoted\n>>From twice\n")


def test_from_line_dates() -> None:
    assert parse_from_line(b"From a@b Mon Jan  1 10:20:30 2024\n") == datetime(
        2024, 1, 1, 10, 20, 30, tzinfo=UTC)
    with_zone = parse_from_line(b"From a@b Mon Jan 1 10:20:30 2024 +0200\n")
    assert with_zone is not None and with_zone.timestamp() == datetime(
        2024, 1, 1, 8, 20, 30, tzinfo=UTC).timestamp()
    assert parse_from_line(b"From a@b sometime\n") is None


def test_mboxrd_quoting_is_reversible() -> None:
    assert unquote(quote(TRICKY), "mboxrd") == TRICKY
    assert quote(b"From x\n>From y\nno\n") == b">From x\n>>From y\nno\n"
    assert unquote(b">From x\n>>From y\n", "mboxo") == b"From x\n>>From y\n"


def mbox_file(path: Path) -> None:
    path.write_bytes(
        b"From a@example.net Mon Jan  1 10:00:00 2024\n" + quote(TRICKY) + b"\n"
        b"From b@example.net Tue Jan  2 11:00:00 2024\n"
        + message(2).replace(b"\n\n", b"\nStatus: RO\nX-Status: AF\n\n", 1) + b"\n"
        b"From c@example.net Wed Jan  3 12:00:00 2024\n" + b"this is not a header\n\n"
        b"From d@example.net Thu Jan  4 13:00:00 2024\n" + message(4) + b"\n"
        b"From e@example.net Fri Jan  5 14:00:00 2024\n" + b"Subject: cut\n\nhalf a li")


async def test_mbox_import(store: Storage, alice: User, tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    mbox_file(path)
    summary = await import_mail(store, alice.address, MboxSource(path, folder="Old/2023"))
    assert summary.imported == 3
    reasons = sorted(p.reason for p in summary.problems)
    assert len(reasons) == 2
    assert reasons[0].startswith("no header") and reasons[1].startswith("truncated")
    state = await mailbox_state(store, alice)
    status_header = message(2).replace(b"\n\n", b"\nStatus: RO\nX-Status: AF\n\n", 1)
    assert [s for s, _, _ in state["Old/2023"]] == [sha(TRICKY), sha(status_header),
                                                    sha(message(4))]
    assert state["Old/2023"][1][1] == {"\\Seen", "\\Answered", "\\Flagged"}
    assert state["Old/2023"][0][2] == int(datetime(2024, 1, 1, 10, tzinfo=UTC).timestamp())
    again = await import_mail(store, alice.address, MboxSource(path, folder="Old/2023"))
    assert again.imported == 0


async def test_mbox_export_round_trip(store: Storage, alice: User, tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    mbox_file(path)
    await import_mail(store, alice.address, MboxSource(path))
    await import_mail(store, alice.address, MboxSource(path, folder="Archive/2023"))
    before = await mailbox_state(store, alice)
    out = tmp_path / "export"
    summary = await export_mail(store, alice.address, out, "mbox")
    assert summary.messages == 6
    assert (out / "INBOX").is_file() and (out / "Archive.sbd" / "2023").is_file()
    bob, _ = await store.add_user("bob@example.org", "x")
    await import_mail(store, bob.address, MboxSource(out))
    after = await mailbox_state(store, bob)
    for folder in ("INBOX", "Archive/2023"):
        # Same bytes and dates; mbox keeps flags only through the Status header fields.
        assert [(s, d) for s, _, d in after[folder]] == [(s, d) for s, _, d in before[folder]]


async def test_mboxo(store: Storage, alice: User, tmp_path: Path) -> None:
    path = tmp_path / "o.mbox"
    body = message(7, extra=b"From the start\n")
    path.write_bytes(b"From x Mon Jan  1 10:00:00 2024\n" + body.replace(b"\nFrom ", b"\n>From ")
                     + b"\n")
    await import_mail(store, alice.address, MboxSource(path, fmt="mboxo"))
    state = await mailbox_state(store, alice)
    assert [s for s, _, _ in state["INBOX"]] == [sha(body)]
