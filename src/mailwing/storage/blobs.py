"""Message contents as files, named by their SHA-256, under ``data_dir/blobs/ab/<sha256>``.

Durability order (the reason this module exists): the bytes go to a temporary file in the
blobs directory, which is fsynced, renamed to its final name, and the directory is fsynced;
only then may a database row that points at it be committed. A crash can therefore leave an
orphan file (harmless; see :meth:`BlobStore.remove_orphans`) but never a row without its
bytes. A content that is already stored is not written twice.

All file work runs in worker threads (``asyncio.to_thread``) so the event loop never blocks on
the disk; a one-shot command without an event loop (``mailwing deliver``, issue #9) passes
:func:`run_here` instead, and this module imports ``asyncio`` only when a thread hop happens.
Cost matters here (every SMTP message comes through): a content of at most
:data:`MEMORY_LIMIT` bytes (nearly all mail) is kept in memory and hashed, written, fsynced and
renamed in *one* thread hop at :meth:`FileContentWriter.finish`; a larger one spills to the
temporary file and streams chunk by chunk, so memory stays bounded whatever the size. Paths are
plain strings, and each fan-out directory is created (and its parent fsynced) once per process.
One level of 256 directories (not two of 65,536): a young store would otherwise create, and
fsync the parent of, a new directory for nearly every message; a million messages still make
only ~4,000 entries per directory.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from mailwing.model import ContentInfo
from mailwing.storage.contentinfo import ContentInfoBuilder
from mailwing.storage.errors import NotFound, StorageError, TemporaryStorageError

__all__ = ["MEMORY_LIMIT", "BlobStore", "FileContentWriter", "Offload", "run_here", "to_thread"]

T = TypeVar("T")

#: How blocking file work is run: ``await offload(func, *args)``.
Offload = Callable[..., Awaitable[Any]]


async def to_thread(func: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread``, imported on first use (see the module docstring)."""
    import asyncio

    return await asyncio.to_thread(func, *args)


async def run_here(func: Callable[..., T], *args: Any) -> T:
    """Run the blocking call in the calling thread: for code without an event loop, whose
    coroutines then complete without ever suspending."""
    return func(*args)

#: Contents up to this size are buffered and written in one go at ``finish()``.
MEMORY_LIMIT = 256 * 1024

_TEMP_PREFIX = ".incoming-"
_HEX = "0123456789abcdef"
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class BlobStore:
    """The ``blobs`` directory. Methods are blocking; call them from a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.fspath(root)
        #: Directories known to exist (and whose entry is durable): made once per process.
        self._made: set[str] = set()

    def path(self, sha256: str) -> str:
        if len(sha256) != 64 or sha256.strip(_HEX):
            raise NotFound(f"not a content digest: {sha256!r}")
        return f"{self._root}/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return os.path.isfile(self.path(sha256))

    def new_temp(self) -> tuple[int, str]:
        """A new, empty temporary file in the blobs directory: ``(fd, path)``."""
        self._ensure_dir(self._root, root=True)
        name = f"{self._root}/{_TEMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"
        try:
            return os.open(name, _TEMP_FLAGS, 0o600), name
        except FileNotFoundError:  # the directory was removed behind our back
            self._made.clear()
            self._ensure_dir(self._root, root=True)
            return os.open(name, _TEMP_FLAGS, 0o600), name

    def _ensure_dir(self, path: str, *, root: bool = False) -> None:
        """Create ``path`` if needed, fsyncing its parent when it is new; remembered."""
        if path in self._made:
            return
        if root:
            os.makedirs(path, exist_ok=True)
        else:
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            else:
                _fsync_dir(os.path.dirname(path))
        self._made.add(path)

    def _make_dirs(self, target: str) -> None:
        """Create the fan-out directory ab/ as needed."""
        leaf = os.path.dirname(target)
        if leaf not in self._made:
            self._ensure_dir(self._root, root=True)
            self._ensure_dir(leaf)

    def _refresh(self, target: str) -> bool:
        """True if ``target`` is stored; its time is renewed so that garbage collection
        leaves it to the coming append. Its directory is fsynced: the writer that renamed it
        there may not have done so yet, and our caller is about to commit a row."""
        try:
            os.utime(target)
        except FileNotFoundError:
            return False
        _fsync_dir(os.path.dirname(target))
        return True

    def commit(self, temp: str, sha256: str) -> None:
        """Move a fsynced, closed temporary file to its final name (or drop it: dedupe)."""
        target = self.path(sha256)
        if self._refresh(target):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            return
        self._place(target, lambda: os.replace(temp, target))

    def store(self, data: bytes, sha256: str) -> None:
        """Store a whole content held in memory (its digest already known): write, fsync,
        rename and fsync the directory, all in this one call."""
        target = self.path(sha256)
        if self._refresh(target):
            return

        def write_and_rename() -> None:
            fd, temp = self.new_temp()
            try:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise

        self._place(target, write_and_rename)

    def _place(self, target: str, move: Callable[[], None]) -> None:
        self._make_dirs(target)
        try:
            move()
        except FileNotFoundError:  # a remembered directory was removed behind our back
            self._made.clear()
            self._make_dirs(target)
            move()
        _fsync_dir(os.path.dirname(target))

    def remove(self, sha256s: Iterable[str]) -> None:
        for sha in sha256s:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(sha))

    def remove_orphans(self, known: set[str], min_age: float) -> int:
        """Unlink files older than ``min_age`` seconds whose digest is not in ``known`` (and
        stale temporary files); return how many. Call it under the database write lock."""
        deadline = time.time() - min_age
        removed = 0
        candidates = [*self.root.glob("??/*"), *self.root.glob(_TEMP_PREFIX + "*")]
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                if path.name not in known and path.stat().st_mtime < deadline:
                    path.unlink()
                    removed += 1
        return removed

    def read_many(self, sha256s: Iterable[str]) -> dict[str, bytes]:
        """Whole files, blocking (one thread hop for a batch of small contents); a file that
        does not exist is left out, other errors raise ``OSError``."""
        found: dict[str, bytes] = {}
        for sha256 in sha256s:
            try:
                with open(self.path(sha256), "rb") as handle:
                    found[sha256] = handle.read()
            except (FileNotFoundError, NotFound):
                continue
        return found

    async def read(self, sha256: str, chunk_size: int, *,
                   offload: Offload = to_thread) -> AsyncIterator[bytes]:
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
            handle, chunk = await offload(open_and_read)
        except FileNotFoundError:
            raise NotFound(f"content {sha256} is not stored") from None
        except OSError as exc:
            raise TemporaryStorageError(f"cannot open content {sha256}: {exc}") from exc
        try:
            while chunk:
                yield chunk
                if len(chunk) < chunk_size:
                    break
                chunk = await offload(handle.read, chunk_size)
        except OSError as exc:
            raise TemporaryStorageError(f"cannot read content {sha256}: {exc}") from exc
        finally:
            handle.close()


class FileContentWriter:
    """A :class:`~mailwing.storage.interface.ContentWriter` into a :class:`BlobStore`.

    Chunks are only collected until :data:`MEMORY_LIMIT` is passed (no thread hop, no
    hashing on the event loop); then they go to a temporary file as they come. File work
    goes through ``offload`` (a worker thread by default)."""

    def __init__(self, blobs: BlobStore, *, offload: Offload = to_thread) -> None:
        self._blobs = blobs
        self._offload = offload
        self._info = ContentInfoBuilder()
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._fd: int | None = None
        self._temp: str | None = None
        self._result: ContentInfo | None = None

    async def write(self, data: bytes) -> None:
        if self._result is not None:
            raise StorageError("content writer already finished")
        data = bytes(data)  # the caller may reuse its buffer
        if self._fd is None and self._buffered + len(data) <= MEMORY_LIMIT:
            if data:
                self._chunks.append(data)
                self._buffered += len(data)
            return
        await self._in_thread(self._write, data)

    async def finish(self) -> ContentInfo:
        if self._result is None:
            work = self._finish_small if self._fd is None else self._finish_big
            self._result = await self._in_thread(work)
        return self._result

    async def abort(self) -> None:
        self._chunks.clear()
        self._buffered = 0
        if self._fd is not None or self._temp is not None:
            await self._offload(self._discard)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        try:
            result: T = await self._offload(func, *args)
        except OSError as exc:
            await self.abort()
            raise TemporaryStorageError(f"cannot store content: {exc}") from exc
        return result

    def _write(self, data: bytes) -> None:
        if self._fd is None:  # spill what was buffered, then stream from now on
            self._fd, self._temp = self._blobs.new_temp()
            pending, self._chunks, self._buffered = self._chunks, [], 0
            for chunk in pending:
                self._info.update(chunk)
                _write_all(self._fd, chunk)
        self._info.update(data)
        _write_all(self._fd, data)

    def _finish_small(self) -> ContentInfo:
        data = b"".join(self._chunks)
        self._info.update(data)
        info = self._info.result()
        self._blobs.store(data, info.sha256)
        self._chunks, self._buffered = [], 0
        return info

    def _finish_big(self) -> ContentInfo:
        assert self._fd is not None and self._temp is not None
        info = self._info.result()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self._blobs.commit(self._temp, info.sha256)
        self._temp = None
        return info

    def _discard(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
            self._temp = None
