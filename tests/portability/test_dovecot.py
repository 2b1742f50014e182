"""Round trips through a real Dovecot (Debian's dovecot-imapd on a loopback port):

* Dovecot writes a Maildir through IMAP APPENDs; mailwing imports it (both backends), and
  the export of that import, served by a second Dovecot, shows an IMAP client the same UIDs,
  flags, keywords, INTERNALDATEs and message bytes as the first, in the same folders.
* The same account imported over IMAP (``imap://``): every folder, special-use attributes
  mapped, flags, keywords and dates kept; a second run downloads nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from mailwing.model import User
from mailwing.portability.exporter import export_mail
from mailwing.portability.imapsource import ImapSource
from mailwing.portability.importer import import_mail
from mailwing.portability.maildir import MaildirSource
from mailwing.storage import Storage
from tests.portability.conftest import message
from tests.portability.dovecot import TestDovecot, append, dovecot, imap_state

ADDRESS = "alice@example.org"
T0 = 1_700_000_000
SEED = {  # folder (IMAP, modified UTF-7) -> [(message, flags, internal date)]
    "INBOX": [(message(1, crlf=True), "\\Seen \\Flagged $Important", T0 + 1),
              (message(2, crlf=True), "", T0 + 2),
              (message(3, crlf=True), "\\Answered \\Seen Work", T0 + 3)],
    "Sent Messages": [(message(10, crlf=True), "\\Seen", T0 + 10)],
    "Archive/2024": [(message(20, crlf=True), "\\Seen", T0 + 20),
                     (message(21, crlf=True), "\\Deleted", T0 + 21)],
    "Entw&APw-rfe": [(message(30, crlf=True), "\\Draft", T0 + 30)],
    "Papierkorb": [(message(40, crlf=True), "\\Seen", T0 + 40)],
}


def seed(server: TestDovecot) -> None:
    client = server.login(ADDRESS)
    for folder, items in SEED.items():
        if folder != "INBOX":
            typ, resp = client.create(f'"{folder}"')
            assert typ == "OK", resp
        for data, flags, when in items:
            append(client, folder, data, flags, when)
    client.logout()


def dovecot_view(server: TestDovecot) -> dict[str, list[tuple[int, frozenset[str], str, str]]]:
    client = server.login(ADDRESS)
    try:
        return {k: v for k, v in imap_state(client).items() if v}
    finally:
        client.logout()


def imap_date(value: datetime) -> str:
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(value.timestamp()))


async def mailwing_view(store: Storage, user: User) -> dict[str, list[tuple[int, frozenset[str],
                                                                            str, str]]]:
    out = {}
    for box in await store.list_mailboxes(user.id):
        entries = await store.list_mail(box.id)
        if entries:
            out[box.name] = [(e.uid, e.flags, imap_date(e.internal_date), e.content.sha256)
                             for e in entries]
    return out


def dovecot_files(server: TestDovecot) -> dict[str, list[str]]:
    """SHA-256 of Dovecot's own Maildir files, per folder, in UID order."""
    home = server.maildir(ADDRESS)
    out = {}
    for folder, path in (("INBOX", home), ("Sent", home / ".Sent Messages"),
                         ("Archive/2024", home / ".Archive.2024"),
                         ("Entwürfe", home / ".Entw&APw-rfe"),
                         ("Papierkorb", home / ".Papierkorb")):
        uids = {}
        for line in (path / "dovecot-uidlist").read_text().splitlines()[1:]:
            uid, _, name = line.partition(" :")
            uids[name] = int(uid.split()[0])
        files = sorted((p for sub in ("cur", "new") for p in (path / sub).iterdir()),
                       key=lambda p: uids[p.name.split(":")[0]])
        out[folder] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    return out


async def test_dovecot_maildir_round_trip(store: Storage, alice: User, tmp_path: Path) -> None:
    with dovecot(tmp_path / "dovecot1") as first:
        seed(first)
        original = dovecot_view(first)
        summary = await import_mail(store, ADDRESS, MaildirSource(first.maildir(ADDRESS)))
        assert summary.imported == 8 and not summary.problems
        files = dovecot_files(first)
    ours = await mailwing_view(store, alice)
    assert sorted(ours) == ["Archive/2024", "Entwürfe", "INBOX", "Papierkorb", "Sent"]
    for folder, shas in files.items():  # the exact bytes of Dovecot's files
        assert [row[3] for row in ours[folder]] == shas, folder
    renamed = {"Sent Messages": "Sent", "Entw&APw-rfe": "Entwürfe"}
    for folder, rows in original.items():  # flags, keywords and dates as Dovecot showed them
        assert [(r[1], r[2]) for r in ours[renamed.get(folder, folder)]] == \
            [(r[1], r[2]) for r in rows], folder

    out = tmp_path / "export"
    await export_mail(store, ADDRESS, out, "maildir")
    with dovecot(tmp_path / "dovecot2") as second:
        home = second.maildir(ADDRESS)
        shutil.rmtree(home)
        shutil.copytree(out, home)
        second.chown_tree(home)
        served = dovecot_view(second)
    expected = {{"Sent Messages": "Sent"}.get(k, k): v for k, v in original.items()}
    assert served == expected


async def test_remote_imap_import(store: Storage, alice: User, tmp_path: Path) -> None:
    with dovecot(tmp_path / "dovecot") as server:
        seed(server)
        original = dovecot_view(server)
        url = f"imap://{ADDRESS}@127.0.0.1:{server.port}"
        fetches: list[str] = []

        class Recording(ImapSource):
            def _command(self, name: str, *args: Any) -> list[Any]:
                if name == "uid":
                    fetches.append(" ".join(args))
                return super()._command(name, *args)

        source = Recording(url, "secret")
        summary = await import_mail(store, ADDRESS, source)
        await source.close()
        assert summary.imported == 8 and not summary.problems
        # Bodies come in one UID FETCH per folder (after one metadata FETCH per folder).
        bodies = [f for f in fetches if "BODY.PEEK[])" in f]
        assert sorted(f.split()[1] for f in bodies) == ["1", "1", "1", "1,2", "1,2,3"]

        class Counting(ImapSource):
            loads = 0

            async def load(self, ref):  # type: ignore[no-untyped-def]
                Counting.loads += 1
                return await super().load(ref)

        again_source = Counting(url, "secret")
        again = await import_mail(store, ADDRESS, again_source)
        await again_source.close()
        assert again.imported == 0 and Counting.loads == 0

        bad = ImapSource(url, "wrong")
        try:
            await import_mail(store, ADDRESS, bad)
        except Exception as exc:
            assert "login refused" in str(exc)
        else:
            raise AssertionError("a wrong password was accepted")
        await bad.close()
    ours = await mailwing_view(store, alice)
    # Special use from LIST: "Papierkorb" is Dovecot's \Trash, so it lands in Trash.
    renamed = {"Sent Messages": "Sent", "Entw&APw-rfe": "Entwürfe", "Papierkorb": "Trash"}
    assert sorted(ours) == sorted(renamed.get(k, k) for k in original)
    for folder, rows in original.items():
        assert [(r[1], r[2], r[3]) for r in ours[renamed.get(folder, folder)]] == \
            [(r[1], r[2], r[3]) for r in rows], folder
