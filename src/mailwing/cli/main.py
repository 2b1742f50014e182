"""The ``mailwing`` command: argument parsing and dispatch to one module per command group.

Imports are lazy (issue #9): parsing the arguments imports only the command modules, which
import what a command needs when it runs, so ``mailwing deliver`` (run by an MTA for every
message) never loads the server, the password hasher or the crypto libraries.

All errors end here as one line on stderr (``mailwing: error: ...``) with a meaningful exit
status (0 ok, 1 operational error, 2 usage or configuration error; ``deliver`` uses sysexits),
never as a traceback. The configuration file comes from ``--config`` (accepted before or after
the command) or ``$MAILWING_CONFIG``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mailwing import __version__
from mailwing.cli import deliver
from mailwing.cli.common import EXIT_ERROR, EXIT_USAGE, CliError, Parser
from mailwing.config import ConfigError, config_path, load_settings
from mailwing.storage.errors import SchemaOutdated, StorageError

__all__ = ["build_parser", "main"]

#: The command modules (``mailwing.cli.<name>``), each with ``register(sub, common)``.
_GROUPS = ("serve", "db", "user", "domain", "deliver", "queue", "quickstart", "dkim", "admin",
           "portability", "backup")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` the one command module of that name: its
    sub-command parses and helps exactly as in the whole parser (see :func:`_lone_command`)."""
    # --config is accepted at every level; SUPPRESS keeps a later level from erasing it.
    common = Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML configuration file (default: $MAILWING_CONFIG)")
    parser = Parser(prog="mailwing", description="mailwing mail server")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML configuration file (default: $MAILWING_CONFIG)")
    parser.add_argument("--version", action="version", version=f"mailwing {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (only,) if only else _GROUPS:
        importlib.import_module(f"mailwing.cli.{name}").register(sub, common)
    return parser


def _lone_command(argv: Sequence[str]) -> str | None:
    """``"deliver"`` when that is the command named by ``argv``, else None.

    An MTA runs ``mailwing deliver`` once per message (issue #9), so it gets a parser with
    only its own sub-command: building all of them, and importing every command module,
    costs more than its delivery's database work. Anything else (``--help``, ``--version``,
    another or a mistyped command) gets the whole parser and its messages."""
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--config":
            rest = rest[1:]
        elif not arg.startswith("--config="):
            return "deliver" if arg == "deliver" else None
    return None


def _fail(message: str, code: int) -> int:
    print(f"mailwing: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(_lone_command(argv)).parse_args(argv)
    is_deliver = args.command == "deliver"
    try:
        settings = load_settings(config_path(args.config))
    except ConfigError as exc:
        return _fail(str(exc), deliver.EX_CONFIG if is_deliver else EXIT_USAGE)
    try:
        return int(args.func(args, settings))
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except SchemaOutdated as exc:
        return _fail(str(exc), EXIT_ERROR)
    except StorageError as exc:
        return _fail(f"storage: {exc}", EXIT_ERROR)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
                     EXIT_ERROR)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _is_startup_error(exc):
            return _fail(str(exc), EXIT_ERROR)
        raise


def _is_startup_error(exc: Exception) -> bool:
    """``mailwing.app.StartupError``, without importing the server for every command: only a
    command that imported :mod:`mailwing.app` can raise it."""
    app = sys.modules.get("mailwing.app")
    return app is not None and isinstance(exc, app.StartupError)
