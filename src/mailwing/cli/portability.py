"""``mailwing import`` / ``mailwing export``: move a user's mail in from Maildir, mbox or a
remote IMAP account, and out to Maildir or mbox.

Exit status follows sysexits, as mail tools do: 0 everything imported (or already there),
65 some items were skipped as bad (listed in the summary; the rest is imported), 66 the
source does not exist, 67 no such mailwing user, 69 the remote server cannot be reached,
77 the remote server refused the login.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailwing.cli.common import EXIT_USAGE, CliError, normalize_address, with_storage

if TYPE_CHECKING:  # imported when a command runs (lazy CLI imports, issue #9)
    from mailwing.config import Settings
    from mailwing.portability.importer import ImportSummary
    from mailwing.portability.sources import Source
    from mailwing.storage.interface import Storage

__all__ = ["register"]

EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_NOPERM = 77


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    imp = sub.add_parser(
        "import", parents=[common], help="import mail from Maildir, mbox or an IMAP account",
        description="Import every folder of SOURCE into a mailwing user. SOURCE is a Maildir "
        "(Maildir++ or Dovecot) folder, an mbox file or a folder of mbox files, or "
        "imap://user@host[:port] / imaps://user@host[:port]. Running it again imports only "
        "what is new.")
    imp.add_argument("address", metavar="USER")
    imp.add_argument("source", metavar="SOURCE")
    imp.add_argument("--format", choices=("auto", "maildir", "mbox", "mboxrd", "mboxo", "imap"),
                     default="auto", help="kind of source (default: guessed)")
    imp.add_argument("--folder", default="INBOX",
                     help="target folder for a single mbox file (default: INBOX)")
    imp.add_argument("--password-file", metavar="FILE",
                     help="IMAP: read the remote password from the first line of FILE")
    tls = imp.add_mutually_exclusive_group()
    tls.add_argument("--ca-file", metavar="FILE",
                     help="imaps: trust the certificates in FILE (PEM) instead of the system's")
    tls.add_argument("--insecure", action="store_true",
                     help="imaps: do not verify the server's certificate")
    imp.add_argument("--quiet", action="store_true", help="no progress output")
    imp.set_defaults(func=_import)

    exp = sub.add_parser("export", parents=[common], help="export a user's mail",
                         description="Write every mailbox of USER to TARGET (an empty or "
                         "new folder) as a Maildir++ tree or as mbox files.")
    exp.add_argument("address", metavar="USER")
    exp.add_argument("target", metavar="TARGET")
    exp.add_argument("--format", choices=("maildir", "mbox"), default="maildir")
    exp.add_argument("--quiet", action="store_true", help="no progress output")
    exp.set_defaults(func=_export)


def _remote_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text().splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read a password from {args.password_file}") from exc
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the remote password: use --password-file",
                       EXIT_USAGE)
    import getpass  # only for a prompt: every command imports this module (issue #9)

    return getpass.getpass("Remote IMAP password: ")


def make_source(args: argparse.Namespace) -> Source:
    fmt = args.format
    text = args.source
    if fmt == "imap" or (fmt == "auto" and text.startswith(("imap://", "imaps://"))):
        import ssl  # here, not at the top: every command imports this module (issue #9)

        from mailwing.portability.imapsource import ImapSource

        context = None
        if args.ca_file:
            try:
                context = ssl.create_default_context(cafile=args.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise CliError(f"cannot read certificates from {args.ca_file}: {exc}",
                               EX_NOINPUT) from exc
        elif args.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            return ImapSource(text, _remote_password(args), ssl_context=context)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    path = Path(text)
    if not path.exists():
        raise CliError(f"no such file or folder: {text}", EX_NOINPUT)
    if fmt == "auto":
        fmt = "maildir" if path.is_dir() and _looks_like_maildir(path) else "mbox"
    if fmt == "maildir":
        from mailwing.portability.maildir import MaildirSource

        return MaildirSource(path)
    from mailwing.portability.mbox import MboxSource

    return MboxSource(path, folder=args.folder, fmt="mboxo" if fmt == "mboxo" else "mboxrd")


def _looks_like_maildir(path: Path) -> bool:
    if (path / "cur").is_dir() or (path / "new").is_dir():
        return True
    return any(p.name.startswith(".") and (p / "cur").is_dir() for p in path.iterdir())


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.portability.imapsource import ImapSourceError
    from mailwing.portability.importer import import_mail
    from mailwing.portability.progress import Progress
    from mailwing.storage.errors import NotFound

    address = normalize_address(args.address)
    source = make_source(args)
    progress = Progress(quiet=args.quiet)

    async def work(store: Storage) -> ImportSummary:
        try:
            return await import_mail(store, address, source, progress)
        finally:
            await source.close()

    try:
        summary = with_storage(settings, work)
    except NotFound as exc:
        raise CliError(str(exc), EX_NOUSER) from exc
    except ImapSourceError as exc:
        raise CliError(str(exc), EX_NOPERM if "login" in str(exc) else EX_UNAVAILABLE) from exc
    except OSError as exc:
        if args.source.startswith(("imap://", "imaps://")):
            raise CliError(f"cannot reach {args.source}: {exc}", EX_UNAVAILABLE) from exc
        raise
    for line in summary.lines():
        print(line)
    return EX_DATAERR if summary.problems else 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.portability.exporter import export_mail
    from mailwing.portability.progress import Progress
    from mailwing.storage.errors import NotFound

    address = normalize_address(args.address)
    progress = Progress(quiet=args.quiet)

    async def work(store: Storage) -> Any:
        return await export_mail(store, address, Path(args.target), args.format, progress)

    try:
        summary = with_storage(settings, work)
    except NotFound as exc:
        raise CliError(str(exc), EX_NOUSER) from exc
    except FileExistsError as exc:
        raise CliError(f"{exc.filename}: not empty; export into a new folder", EXIT_USAGE) \
            from exc
    for line in summary.lines():
        print(line)
    return EX_DATAERR if summary.problems else 0
