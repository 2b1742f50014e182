"""mbox files: reading them for an import, writing them for an export.

Each message starts with a ``From_`` line (``From sender Www Mmm dd hh:mm:ss yyyy``) at the
start of the file or after an empty line, and is followed by one empty line. Lines of the
body that would look like a ``From_`` line are quoted with ``>``; the two dialects differ in
how (https://www.loc.gov/preservation/digital/formats/fdd/fdd000383.shtml):

* **mboxrd** quotes every line matching ``>*From `` with one more ``>``, so unquoting (one
  ``>`` off every such line) gives back the exact bytes. It is what export writes.
* **mboxo** quotes only ``From `` itself; unquoting ``>From `` cannot tell a quoted line from
  one that was written that way, so an mboxo import is exact except for such lines.

The internal date comes from the ``From_`` line. Flags come from the ``Status:`` (``R`` seen),
``X-Status:`` (``A`` answered, ``F`` flagged, ``T`` draft, ``D`` deleted) and ``X-Keywords:``
header fields that mutt, Dovecot and Thunderbird write; those fields stay in the message (its
bytes are never rewritten). A file that ends in the middle of a line has its last message
reported as truncated and skipped. Scanning keeps only offsets, so a large mbox is never held
in memory.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Literal

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
from mailwing.services.imap_mailboxes import InvalidName

__all__ = ["MboxFormat", "MboxSource", "MboxWriter", "parse_from_line", "quote", "unquote"]

MboxFormat = Literal["mboxrd", "mboxo"]

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_FROM_DATE = re.compile(
    rb"([A-Za-z]{3}) +(\d{1,2}) +(\d{1,2}):(\d\d)(?::(\d\d))?"
    rb"(?: +([+-]\d{4}|[A-Za-z]{3,5}))? +(\d{4})(?: +([+-]\d{4}))?\s*$")
_RD_QUOTED = re.compile(rb"^>+From ", re.M)
_RD_TO_QUOTE = re.compile(rb"^(>*From )", re.M)
_O_QUOTED = re.compile(rb"^>From ", re.M)
_MAX_MESSAGE = 256 * 1024 * 1024
_MAX_LINE = 1024 * 1024
_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}


def parse_from_line(line: bytes) -> datetime | None:
    """The date at the end of a ``From_`` line (UTC unless it names an offset)."""
    m = _FROM_DATE.search(line.rstrip(b"\r\n"))
    if not m:
        return None
    month = _MONTHS.get(m.group(1).decode().lower())
    if month is None:
        return None
    zone = m.group(8) or (m.group(6) if m.group(6) and m.group(6)[:1] in b"+-" else None)
    tz = UTC
    if zone:
        sign = -1 if zone[:1] == b"-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    try:
        return datetime(int(m.group(7)), month, int(m.group(2)), int(m.group(3)),
                        int(m.group(4)), int(m.group(5) or 0), tzinfo=tz)
    except ValueError:
        return None


def unquote(data: bytes, fmt: MboxFormat) -> bytes:
    if fmt == "mboxrd":
        return _RD_QUOTED.sub(lambda m: m.group(0)[1:], data)
    return _O_QUOTED.sub(b"From ", data)


def quote(data: bytes) -> bytes:
    """mboxrd quoting."""
    return _RD_TO_QUOTE.sub(rb">\1", data)


def _header_flags(lines: list[bytes]) -> frozenset[str]:
    flags: set[str] = set()
    for line in lines:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        text = value.decode("latin-1").strip()
        if key == b"status" and "R" in text:
            flags.add("\\Seen")
        elif key == b"x-status":
            flags.update(_X_STATUS[c] for c in text if c in _X_STATUS)
        elif key == b"x-keywords":
            flags.update(w for w in re.split(r"[\s,]+", text) if w)
    return clean_keywords(flags)


class _Scanner:
    """Finds the messages of one mbox file: (offset, end, From_ date, flags) each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, folder: FolderScan, problems: list[Problem]) -> None:
        with open(self.path, "rb") as f:
            first = f.readline()
            if not first.startswith(b"From "):
                problems.append(Problem(str(self.path), "not an mbox file (no From_ line "
                                        "at the start): skipped"))
                return
            self._scan(f, first, folder)

    def _scan(self, f: BinaryIO, first: bytes, folder: FolderScan) -> None:
        pos = len(first)
        starts: list[tuple[int, datetime | None]] = [(pos, parse_from_line(first))]
        ends: list[int] = []
        flags: list[frozenset[str]] = []
        headers: list[bytes] | None = []  # None once past the header block
        previous_blank = False
        while line := f.readline(_MAX_LINE):  # a longer line comes in pieces: memory bounded
            if previous_blank and line.startswith(b"From "):
                if headers is not None:
                    flags.append(_header_flags(headers))
                ends.append(pos)
                starts.append((pos + len(line), parse_from_line(line)))
                headers = []
            elif headers is not None:
                if line in (b"\n", b"\r\n"):
                    flags.append(_header_flags(headers))
                    headers = None
                elif line[:1] in b"SsXx":
                    headers.append(line)
            previous_blank = line in (b"\n", b"\r\n")
            pos += len(line)
        if headers is not None:
            flags.append(_header_flags(headers))
        ends.append(pos)
        f.seek(pos - 1)
        truncated = f.read(1) != b"\n"
        for n, ((start, date), end, fl) in enumerate(zip(starts, ends, flags, strict=True), 1):
            folder.messages.append(MessageRef(
                label=f"{self.path}: message {n}",
                key=(str(self.path), start, end, truncated and n == len(starts)),
                flags=fl, internal_date=date))


class MboxSource:
    """An mbox file (one folder), or a folder tree of them (Thunderbird's ``Name.sbd/``
    sub-folders and plain directories), read for an import."""

    def __init__(self, path: Path, *, folder: str = "INBOX", fmt: MboxFormat = "mboxrd") -> None:
        self.path = path
        self.folder = folder
        self.fmt = fmt

    async def close(self) -> None:
        return None

    async def scan(self) -> tuple[list[FolderScan], list[Problem]]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> tuple[list[FolderScan], list[Problem]]:
        problems: list[Problem] = []
        files: list[tuple[list[str], Path]] = []
        if self.path.is_dir():
            for p in sorted(self.path.rglob("*")):
                if p.is_file() and not p.name.startswith(".") and p.suffix != ".msf":
                    rel = p.relative_to(self.path).parts
                    levels = [part.removesuffix(".sbd") for part in rel[:-1]]
                    levels.append(rel[-1].removesuffix(".mbox"))
                    files.append((levels, p))
        elif self.path.is_file():
            files.append((self.folder.split("/"), self.path))
        else:
            raise FileNotFoundError(2, "no such mbox file or folder", str(self.path))
        folders: list[FolderScan] = []
        for levels, path in files:
            try:
                name = mailbox_name(levels)
            except InvalidName as exc:
                problems.append(Problem(str(path), f"folder skipped: {exc}"))
                continue
            scan = FolderScan(name, guess_special_use(name), label=str(path))
            try:
                _Scanner(path).run(scan, problems)
            except OSError as exc:
                problems.append(Problem(str(path), f"unreadable: {exc.strerror}"))
                continue
            folders.append(scan)
        folders.sort(key=lambda f: (f.name != "INBOX", f.name))
        return folders, problems

    async def load(self, ref: MessageRef) -> bytes:
        return await asyncio.to_thread(self._load, ref)

    def _load(self, ref: MessageRef) -> bytes:
        path, start, end, truncated = ref.key
        if truncated:
            raise BadMessage("truncated (the file ends in the middle of a line)")
        if end - start > _MAX_MESSAGE:
            raise BadMessage(f"larger than {_MAX_MESSAGE} bytes")
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
        except OSError as exc:
            raise BadMessage(f"unreadable: {exc.strerror}") from exc
        # The empty line before the next From_ line (or at the end) is the separator.
        if data.endswith(b"\r\n\r\n") or data.endswith(b"\n\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n\n"):
            data = data[:-1]
        data = unquote(data, self.fmt)
        check_message(data)
        return data


class MboxWriter:
    """Writes one mboxrd file per folder: ``INBOX``, ``Archive``, ``Archive.sbd/2024``..."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, BinaryIO] = {}

    def folder_path(self, name: str) -> Path:
        levels = name.split("/")
        return self.root.joinpath(*(lv + ".sbd" for lv in levels[:-1]), levels[-1])

    def open_folder(self, name: str, uidvalidity: int, uidnext: int) -> None:
        path = self.folder_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._files[name] = open(path, "wb")  # noqa: SIM115 - closed in finish()

    def add(self, folder: str, uid: int, data: bytes, flags: frozenset[str],
            internal_date: datetime) -> str | None:
        stamp = internal_date.astimezone(UTC).strftime("%a %b %e %H:%M:%S %Y")
        f = self._files[folder]
        f.write(f"From MAILER-DAEMON {stamp}\n".encode())
        f.write(quote(data))
        note = None
        if not data.endswith(b"\n"):
            f.write(b"\n")
            note = "a line end was added after the last line (mbox needs one)"
        f.write(b"\n")
        return note

    def finish(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
