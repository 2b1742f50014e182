"""Maildir import and export on both backends: Dovecot's layout (Maildir++ folders,
dovecot-uidlist order, dovecot-keywords letters), special-use mapping, bad items skipped,
nothing imported twice, and export reproducing bytes, flags, dates and folder tree."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.portability.exporter import export_mail
from mailwing.portability.importer import import_mail
from mailwing.portability.maildir import MaildirSource, parse_info
from mailwing.storage import Storage
from tests.portability.conftest import mailbox_state, message, sha, write_maildir_file

T0 = 1_700_000_000


def dovecot_tree(root: Path) -> dict[str, list[bytes]]:
    """A Maildir as Dovecot leaves it; returns the expected messages per mailwing folder."""
    # INBOX: three messages whose file names sort differently from their UIDs.
    write_maildir_file(root, "1700000300.M3P1.host,S=10:2,S", message(3), T0 + 300)
    write_maildir_file(root, "1700000100.M1P1.host,S=10:2,FSa", message(1), T0 + 100)
    write_maildir_file(root, "1700000200.M2P1.host,S=10", message(2, crlf=True), T0 + 200,
                       sub="new")
    (root / "dovecot-uidlist").write_text(
        "3 V1700000000 N10 Gabc\n"
        "7 :1700000300.M3P1.host,S=10\n"
        "5 W123 :1700000100.M1P1.host,S=10\n"
        "6 :1700000200.M2P1.host,S=10\n")
    (root / "dovecot-keywords").write_text("0 $Important\n1 Unused\n")
    # "Sent Items" is Outlook's name: it must land in the user's \Sent mailbox.
    write_maildir_file(root / ".Sent Items", "1.M1P1.h:2,RS", message(10), T0 + 10)
    write_maildir_file(root / ".Archive.2024", "1.M1P1.h:2,S", message(20), T0 + 20)
    write_maildir_file(root / ".Archive.2024", "2.M1P1.h:2,T", message(21), T0 + 21)
    # Modified UTF-7 folder name: "Entwürfe alt" is a plain folder (not top-level Drafts).
    write_maildir_file(root / ".Entw&APw-rfe alt", "1.M1P1.h:2,", message(30), T0 + 30)
    # Bad items: a file without a header, an empty file, a folder name that is not mUTF-7.
    write_maildir_file(root / ".Archive.2024", "3.M1P1.h:2,", b"just text\nno header\n", T0)
    write_maildir_file(root, "1700000400.M4P1.host:2,", b"", T0)
    write_maildir_file(root / ".Bad&Name", "1.M1P1.h:2,", message(40), T0)
    return {
        "INBOX": [message(1), message(2, crlf=True), message(3)],
        "Sent": [message(10)],
        "Archive/2024": [message(20), message(21)],
        "Entwürfe alt": [message(30)],
    }


def test_parse_info_letters_and_keywords() -> None:
    kw = {0: "$Important", 2: "Work"}
    assert parse_info("x:2,DFPRSTac", kw) == {
        "\\Draft", "\\Flagged", "$Forwarded", "\\Answered", "\\Seen", "\\Deleted",
        "$Important", "Work"}
    assert parse_info("x", kw) == frozenset()
    assert parse_info("x:2,b", kw) == frozenset()  # letter without a keyword: ignored


async def test_dovecot_maildir_import(store: Storage, alice: User, tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    expected = dovecot_tree(root)
    summary = await import_mail(store, alice.address, MaildirSource(root))
    state = await mailbox_state(store, alice)
    for folder, messages in expected.items():
        assert [s for s, _, _ in state[folder]] == [sha(m) for m in messages], folder
    inbox = state["INBOX"]
    # dovecot-uidlist order (UID 5, 6, 7), flags from the name, keywords from the file,
    # internal date from the file time; new/ has no flags.
    assert [f for _, f, _ in inbox] == [{"\\Flagged", "\\Seen", "$Important"}, set(),
                                        {"\\Seen"}]
    assert [d for _, _, d in inbox] == [T0 + 100, T0 + 200, T0 + 300]
    assert state["Sent"][0][1] == {"\\Answered", "\\Seen"}
    assert "Sent Items" not in state
    assert state["Archive/2024"][1][1] == {"\\Deleted"}
    assert summary.imported == 7
    assert summary.created == ["Archive/2024", "Entwürfe alt"]
    reasons = {p.reason for p in summary.problems}
    assert any("no header" in r for r in reasons)
    assert "empty message" in reasons
    assert any("modified UTF-7" in r for r in reasons)
    assert len(summary.problems) == 3

    again = await import_mail(store, alice.address, MaildirSource(root))
    assert again.imported == 0 and again.skipped["already in the mailbox"] == 7
    assert await mailbox_state(store, alice) == state


async def test_export_round_trip(store: Storage, alice: User, tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    dovecot_tree(root)
    await import_mail(store, alice.address, MaildirSource(root))
    before = await mailbox_state(store, alice)
    out = tmp_path / "export"
    summary = await export_mail(store, alice.address, out, "maildir")
    assert summary.messages == 7 and not summary.problems
    assert (out / ".Archive.2024" / "cur").is_dir()
    assert (out / ".Entw&APw-rfe alt" / "cur").is_dir()
    assert "0 $Important" in (out / "dovecot-keywords").read_text()
    # Every exported file holds the stored bytes and carries the date as its time.
    files = sorted((out / "cur").iterdir())
    assert len(files) == 3
    for path in files:
        assert sha(path.read_bytes()) in {s for s, _, _ in before["INBOX"]}
    uidlist = (out / "dovecot-uidlist").read_text().splitlines()
    assert uidlist[0].startswith("3 V") and [ln.split()[0] for ln in uidlist[1:]] == ["1", "2",
                                                                                      "3"]
    # Importing the export into another user gives the same bytes, flags, dates, tree.
    bob, _ = await store.add_user("bob@example.org", "x")
    await import_mail(store, bob.address, MaildirSource(out))
    assert await mailbox_state(store, bob) == before


async def test_interrupted_import_resumes(store: Storage, alice: User, tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for n in range(40):
        write_maildir_file(root, f"{T0 + n}.M{n}P1.h:2,S", message(n), T0 + n)

    class Crash(Exception):
        pass

    # The importer appends a batch when the next message is not read yet; how far the
    # reads ahead get before that depends on the machine's load. Holding the reads after the
    # tenth until the first append makes "some imported, then the crash" certain.
    appended = asyncio.Event()
    real_append_many = store.append_many

    async def append_many(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await real_append_many(*args, **kwargs)
        finally:
            appended.set()

    store.append_many = append_many  # type: ignore[method-assign]

    class Failing(MaildirSource):
        loaded = 0

        async def load(self, ref):  # type: ignore[no-untyped-def]
            Failing.loaded += 1
            if Failing.loaded > 10:
                await appended.wait()
            if Failing.loaded > 25:
                raise Crash("power cut")
            return await super().load(ref)

    with pytest.raises(Crash):
        await import_mail(store, alice.address, Failing(root))
    del store.append_many  # type: ignore[method-assign]
    box = await store.get_mailbox(alice.id, "INBOX")
    assert box is not None
    partial = await store.list_mail(box.id)
    assert 0 < len(partial) < 40
    summary = await import_mail(store, alice.address, MaildirSource(root))
    assert summary.imported == 40 - len(partial)
    entries = await store.list_mail(box.id)
    assert [e.content.sha256 for e in entries] == [sha(message(n)) for n in range(40)]


async def test_export_refuses_a_non_empty_target(store: Storage, alice: User,
                                                 tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("")
    try:
        await export_mail(store, alice.address, tmp_path / "x", "maildir")
    except FileExistsError:
        pass
    else:
        raise AssertionError("export wrote into a non-empty folder")
    assert os.listdir(tmp_path / "x") == ["file"]


async def test_export_reports_a_folder_maildir_cannot_hold(store: Storage, alice: User,
                                                           tmp_path: Path) -> None:
    await store.create_mailbox(alice.id, "v1.2 notes")
    summary = await export_mail(store, alice.address, tmp_path / "out", "maildir")
    assert [(p.item, p.reason.split(":")[0]) for p in summary.problems] == [
        ("v1.2 notes", "folder skipped")]
    assert "INBOX" in summary.folders
