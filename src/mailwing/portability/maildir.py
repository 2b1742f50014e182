"""Maildir and Maildir++ trees: reading them for an import, writing them for an export.

Layouts (as Dovecot writes them, https://doc.dovecot.org/ "Maildir mailbox format"):

* The root is INBOX (``cur/``, ``new/``, ``tmp/``); every other folder is a directory
  ``.Name`` beside them, with ``.`` as the hierarchy separator (``.Archive.2024`` is
  ``Archive/2024``) and each level in IMAP's modified UTF-7. Dovecot's ``LAYOUT=fs``
  (plain nested directories) is read too.
* A message's flags are the letters after ``:2,`` in its file name: ``D`` draft, ``F``
  flagged, ``P`` passed (forwarded), ``R`` replied, ``S`` seen, ``T`` trashed; lower-case
  ``a``-``z`` are keywords, numbered by the folder's ``dovecot-keywords`` file.
* ``dovecot-uidlist`` gives each file its UID: messages are imported in UID order so that
  they keep their relative order, and the export writes one so that Dovecot keeps ours.
* The internal date (IMAP INTERNALDATE) is the file's modification time.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailwing.portability.sources import (
    BadMessage,
    FolderScan,
    MessageRef,
    Problem,
    check_message,
    clean_keywords,
    guess_special_use,
    mailbox_name,
)
from mailwing.proto.imap import utf7_decode, utf7_encode
from mailwing.proto.imap.utf7 import Utf7Error
from mailwing.services.imap_mailboxes import InvalidName

__all__ = ["MaildirSource", "MaildirWriter", "flag_letters", "parse_info"]

_LETTER_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered",
                 "S": "\\Seen", "T": "\\Deleted"}
_FLAG_LETTERS = {flag.lower(): letter for letter, flag in _LETTER_FLAGS.items()}
_MAX_FILE = 256 * 1024 * 1024  # a single message larger than this is refused (bounded memory)
_SUBDIRS = ("cur", "new", "tmp")


def parse_info(filename: str, keywords: dict[int, str]) -> frozenset[str]:
    """The flags a Maildir file name carries (``...:2,FRSa``)."""
    _base, sep, info = filename.rpartition(":2,")
    if not sep:
        return frozenset()
    flags: set[str] = set()
    for ch in info:
        if ch in _LETTER_FLAGS:
            flags.add(_LETTER_FLAGS[ch])
        elif "a" <= ch <= "z" and (ord(ch) - 97) in keywords:
            flags.add(keywords[ord(ch) - 97])
    return clean_keywords(flags)


def flag_letters(flags: frozenset[str], keyword_index: dict[str, int]) -> str:
    """The ``:2,`` letters for ``flags`` (keywords must already have an index)."""
    out = []
    for flag in flags:
        letter = _FLAG_LETTERS.get(flag.lower())
        if letter:
            out.append(letter)
        elif flag in keyword_index:
            out.append(chr(97 + keyword_index[flag]))
    return "".join(sorted(out))


def _read_keywords(folder: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        text = (folder / "dovecot-keywords").read_text("utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        num, _, name = line.strip().partition(" ")
        if num.isdigit() and name and int(num) < 26:
            out[int(num)] = name.strip()
    return out


def _read_uidlist(folder: Path) -> dict[str, int]:
    """basename (the part before ``:``) -> UID, from ``dovecot-uidlist`` (versions 1 and 3)."""
    out: dict[str, int] = {}
    try:
        lines = (folder / "dovecot-uidlist").read_text("utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines[1:]:
        uid, _, rest = line.partition(" ")
        if not uid.isdigit():
            continue
        name = rest.rpartition(":")[2] if ":" in rest else rest.strip()
        out[name.strip()] = int(uid)
    return out


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _decode_level(level: str) -> str:
    try:
        level.encode("utf-8")  # a name that was not UTF-8 on disk (surrogate escapes)
    except UnicodeEncodeError as exc:
        raise InvalidName("the folder name is not valid UTF-8") from exc
    try:
        return utf7_decode(level)
    except Utf7Error as exc:
        raise InvalidName(f"the folder name is not valid modified UTF-7 ({exc})") from exc


class MaildirSource:
    """A Maildir (or Maildir++) tree, read for :func:`mailwing.portability.importer.run`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def close(self) -> None:
        return None

    async def scan(self) -> tuple[list[FolderScan], list[Problem]]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> tuple[list[FolderScan], list[Problem]]:
        if not _is_maildir(self.root) and not self.root.is_dir():
            raise FileNotFoundError(2, "no such Maildir", str(self.root))
        folders: list[FolderScan] = []
        problems: list[Problem] = []
        found: list[tuple[list[str], Path]] = []
        if _is_maildir(self.root):
            found.append((["INBOX"], self.root))
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or entry.name in _SUBDIRS:
                continue
            path = Path(entry.path)
            if entry.name.startswith(".") and entry.name not in (".", ".."):
                if _is_maildir(path):
                    found.append((entry.name[1:].split("."), path))
            elif _is_maildir(path) or any(_is_maildir(p) for p in path.rglob("*")):
                found.extend(self._fs_layout(path, [entry.name]))
        for raw_levels, path in found:
            try:
                levels = raw_levels if raw_levels == ["INBOX"] else [
                    _decode_level(level) for level in raw_levels]
                name = mailbox_name(levels)
            except InvalidName as exc:
                problems.append(Problem(str(path), f"folder skipped: {exc}"))
                continue
            scan = FolderScan(name, guess_special_use(name), label=str(path))
            scan.messages = self._messages(path, problems)
            folders.append(scan)
        folders.sort(key=lambda f: (f.name != "INBOX", f.name))
        return folders, problems

    def _fs_layout(self, path: Path, levels: list[str]) -> list[tuple[list[str], Path]]:
        out = [(levels, path)] if _is_maildir(path) else []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_dir() and entry.name not in _SUBDIRS and not entry.name.startswith("."):
                out.extend(self._fs_layout(Path(entry.path), [*levels, entry.name]))
        return out

    def _messages(self, folder: Path, problems: list[Problem]) -> list[MessageRef]:
        keywords = _read_keywords(folder)
        uids = _read_uidlist(folder)
        refs: list[tuple[tuple[int, float, str], MessageRef]] = []
        for sub in ("cur", "new"):
            try:
                entries = list(os.scandir(folder / sub))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except OSError as exc:
                    problems.append(Problem(entry.path, f"unreadable: {exc.strerror}"))
                    continue
                base = entry.name.partition(":")[0]
                uid = uids.get(base)
                head = base.split(".", 1)[0]
                order = (uid if uid is not None else 1 << 40,
                         float(head) if head.isdigit() else mtime, entry.name)
                refs.append((order, MessageRef(
                    label=entry.path, key=entry.path,
                    flags=parse_info(entry.name, keywords) if sub == "cur" else frozenset(),
                    internal_date=datetime.fromtimestamp(mtime, UTC),
                )))
        refs.sort(key=lambda item: item[0])
        return [ref for _, ref in refs]

    async def load(self, ref: MessageRef) -> bytes:
        return await asyncio.to_thread(_read_file, str(ref.key))


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise BadMessage(f"unreadable: {exc.strerror}") from exc
    if len(data) > _MAX_FILE:
        raise BadMessage(f"larger than {_MAX_FILE} bytes")
    check_message(data)
    return data


@dataclass(slots=True)
class _Folder:
    path: Path
    uidvalidity: int
    uidnext: int
    keywords: dict[str, int] = field(default_factory=dict)
    uidlist: list[str] = field(default_factory=list)


class MaildirWriter:
    """Writes a Maildir++ tree (Dovecot's layout) for ``mailwing export --format maildir``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[str, _Folder] = {}
        self._seq = 0

    def folder_path(self, name: str) -> Path:
        """Where folder ``name`` goes; :class:`InvalidName` if Maildir++ cannot hold it."""
        if name == "INBOX":
            return self.root
        levels = name.split("/")
        if any("." in level for level in levels):
            raise InvalidName("Maildir++ cannot hold a '.' in a folder name")
        return self.root / ("." + ".".join(utf7_encode(level) for level in levels))

    def open_folder(self, name: str, uidvalidity: int, uidnext: int) -> None:
        path = self.folder_path(name)
        for sub in _SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        if name != "INBOX":
            (path / "maildirfolder").touch()
        self._folders[name] = _Folder(path, uidvalidity, uidnext)

    def add(self, folder: str, uid: int, data: bytes, flags: frozenset[str],
            internal_date: datetime) -> str | None:
        """Write one message; returns a note when a keyword could not be kept."""
        box = self._folders[folder]
        note = None
        for flag in sorted(flags):
            if flag.startswith("\\") or flag.lower() in _FLAG_LETTERS:
                continue
            if flag not in box.keywords:
                if len(box.keywords) >= 26:
                    note = f"keyword {flag} dropped: Maildir holds 26 keywords per folder"
                    continue
                box.keywords[flag] = len(box.keywords)
        self._seq += 1
        stamp = int(internal_date.timestamp())
        crlf = len(data) + data.count(b"\n") - data.count(b"\r\n")
        base = f"{stamp}.M{self._seq}P{os.getpid()}.mailwing,S={len(data)},W={crlf}"
        name = f"{base}:2,{flag_letters(flags, box.keywords)}"
        tmp = box.path / "tmp" / base
        tmp.write_bytes(data)
        os.utime(tmp, (stamp, internal_date.timestamp()))
        os.replace(tmp, box.path / "cur" / name)
        box.uidlist.append(f"{uid} :{base}")
        return note

    def finish(self) -> None:
        """Write each folder's ``dovecot-keywords`` and ``dovecot-uidlist``."""
        for box in self._folders.values():
            if box.keywords:
                lines = [f"{i} {kw}" for kw, i in sorted(box.keywords.items(), key=lambda x: x[1])]
                (box.path / "dovecot-keywords").write_text("\n".join(lines) + "\n")
            header = f"3 V{box.uidvalidity} N{box.uidnext}"
            (box.path / "dovecot-uidlist").write_text("\n".join([header, *box.uidlist]) + "\n")
