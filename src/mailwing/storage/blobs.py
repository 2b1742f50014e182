"""Message contents as files, named by their SHA-256, under ``data_dir/blobs/ab/cd/<sha256>``.

Durability order (the reason this module exists): the bytes go to a temporary file in the
blobs directory, which is fsynced, renamed to its final name, and the directory is fsynced;
only then may a database row that points at it be committed. A crash can therefore leave an
orphan file (harmless; see :meth:`BlobStore.remove_orphans`) but never a row without its
bytes. A content that is already stored is not written twice: the temporary file is dropped.

All file work runs in worker threads (``asyncio.to_thread``) so the event loop never blocks on
the disk; chunks are written and read one at a time, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from mailwing.model import ContentInfo
from mailwing.storage.contentinfo import ContentInfoBuilder
from mailwing.storage.errors import NotFound, StorageError, TemporaryStorageError

__all__ = ["BlobStore", "FileContentWriter"]

T = TypeVar("T")

_TEMP_PREFIX = ".incoming-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The ``blobs`` directory. Methods are blocking; call them from a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise NotFound(f"not a content digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def new_temp(self) -> tuple[BinaryIO, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        return os.fdopen(fd, "wb"), Path(name)

    def _make_dirs(self, target: Path) -> None:
        """Create ab/ and ab/cd/ as needed, fsyncing the parent of each new directory."""
        for directory in (target.parent.parent, target.parent):
            if not directory.is_dir():
                directory.mkdir(exist_ok=True)
                _fsync_dir(directory.parent)

    def commit(self, temp: Path, sha256: str) -> None:
        """Move a fsynced, closed temporary file to its final name (or drop it: dedupe)."""
        target = self.path(sha256)
        self._make_dirs(target)
        if target.is_file():
            temp.unlink(missing_ok=True)
            os.utime(target)  # fresh again: garbage collection leaves it to the coming append
            return
        os.replace(temp, target)
        _fsync_dir(target.parent)

    def remove(self, sha256s: Iterable[str]) -> None:
        for sha in sha256s:
            with contextlib.suppress(FileNotFoundError):
                self.path(sha).unlink()

    def remove_orphans(self, known: set[str], min_age: float) -> int:
        """Unlink files older than ``min_age`` seconds whose digest is not in ``known`` (and
        stale temporary files); return how many. Call it under the database write lock."""
        deadline = time.time() - min_age
        removed = 0
        candidates = [*self.root.glob("??/??/*"), *self.root.glob(_TEMP_PREFIX + "*")]
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                if path.name not in known and path.stat().st_mtime < deadline:
                    path.unlink()
                    removed += 1
        return removed

    async def read(self, sha256: str, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the file in chunks. Opening and the first read share one thread hop, and a
        short first chunk means end of file, so a typical small message costs one hop (this
        is on the hot path of every POP3 RETR and IMAP body FETCH)."""
        path = self.path(sha256)

        def open_and_read() -> tuple[BinaryIO, bytes]:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
            try:
                return handle, handle.read(chunk_size)
            except BaseException:
                handle.close()
                raise

        try:
            handle, chunk = await asyncio.to_thread(open_and_read)
        except FileNotFoundError:
            raise NotFound(f"content {sha256} is not stored") from None
        except OSError as exc:
            raise TemporaryStorageError(f"cannot open content {sha256}: {exc}") from exc
        try:
            while chunk:
                yield chunk
                if len(chunk) < chunk_size:
                    break
                chunk = await asyncio.to_thread(handle.read, chunk_size)
        except OSError as exc:
            raise TemporaryStorageError(f"cannot read content {sha256}: {exc}") from exc
        finally:
            handle.close()


class FileContentWriter:
    """A :class:`~mailwing.storage.interface.ContentWriter` into a :class:`BlobStore`."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._info = ContentInfoBuilder()
        self._file: BinaryIO | None = None
        self._temp: Path | None = None
        self._result: ContentInfo | None = None

    async def write(self, data: bytes) -> None:
        if self._result is not None:
            raise StorageError("content writer already finished")
        await self._in_thread(self._write, bytes(data))

    async def finish(self) -> ContentInfo:
        if self._result is None:
            self._result = await self._in_thread(self._finish)
        return self._result

    async def abort(self) -> None:
        await asyncio.to_thread(self._discard)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(func, *args)
        except OSError as exc:
            await asyncio.to_thread(self._discard)
            raise TemporaryStorageError(f"cannot store content: {exc}") from exc

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._file, self._temp = self._blobs.new_temp()
        self._info.update(data)
        self._file.write(data)

    def _finish(self) -> ContentInfo:
        if self._file is None:
            self._file, self._temp = self._blobs.new_temp()
        info = self._info.result()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        assert self._temp is not None
        self._blobs.commit(self._temp, info.sha256)
        self._file = self._temp = None
        return info

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None
