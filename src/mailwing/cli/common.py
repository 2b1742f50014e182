"""What every ``mailwing`` command shares: exit codes, one-line errors, storage, passwords.

Errors reach the operator as one line, ``mailwing: error: ...``, never as a traceback: each
command raises :class:`CliError` (or lets a known exception through, which
:func:`mailwing.cli.main.main` maps). Passwords are read from a terminal prompt, standard input
or a file, never from the argument list (which other local users can see in ``ps``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailwing.runtime import open_store, run_async

if TYPE_CHECKING:
    from mailwing.config import Settings
    from mailwing.storage.interface import Storage

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Parser",
    "add_password_options",
    "normalize_address",
    "read_password",
    "with_storage",
]

EXIT_OK = 0
EXIT_ERROR = 1  # operational error (not found, database unreachable ...)
EXIT_USAGE = 2  # bad arguments or configuration

T = TypeVar("T")


class CliError(Exception):
    """A command failed; ``str(exc)`` is the one line shown, ``code`` the exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` answers, without importing :mod:`shutil`
    (which brings zlib, bz2 and lzma): argparse asks on every ``add_argument``, so every
    command, ``mailwing deliver`` included (issue #9), would pay for it."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that never echo unrecognised arguments (a password
    typed by mistake on the command line must not be printed back into logs). Option
    abbreviations are off, so ``--password X`` can never be taken for ``--password-stdin``.
    Sub-commands are made with this class too (argparse uses the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            message = (f"unrecognized arguments (see '{self.prog} --help'; passwords are "
                       "read with --password-stdin, --password-file or a prompt)")
        self.exit(EXIT_USAGE, f"mailwing: error: {message}\n")


def normalize_address(address: str) -> str:
    """Lower-case ``local@domain``; a usage error unless it has that shape."""
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local or any(c.isspace() for c in address):
        raise CliError(f"{address!r} is not an address like user@example.org", EXIT_USAGE)
    return address


def read_password(args: argparse.Namespace) -> str:
    """The new password from --password-stdin, --password-file or a prompt asked twice."""
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    elif getattr(args, "password_file", None):
        try:
            password = Path(args.password_file).read_text().splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read a password from {args.password_file}") from exc
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to ask for a password: use --password-stdin or "
                           "--password-file", EXIT_USAGE)
        import getpass  # only for a prompt (it brings termios)

        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CliError("the passwords do not match")
    if not password:
        raise CliError("the password is empty", EXIT_USAGE)
    return password


def with_storage(settings: Settings, work: Callable[[Storage], Awaitable[T]],
                 *, check: bool = True, uvloop: bool = True) -> T:
    """Open storage, check the schema is current (unless ``check`` is false), run ``work``,
    close storage (on uvloop's event loop unless ``uvloop`` is false)."""

    async def main() -> T:
        store = await open_store(settings)
        try:
            if check:
                await store.check_schema()
            return await work(store)
        finally:
            await store.close()

    return run_async(main, uvloop=uvloop)


def add_password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    group.add_argument("--password-file", metavar="FILE",
                       help="read the password from the first line of FILE")
