"""``mailwing serve``: run the server in the foreground until SIGTERM/SIGINT.

It never creates accounts or migrates the database; see ``mailwing db upgrade`` and
``mailwing quickstart``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailwing.config import Settings

__all__ = ["register", "run_server"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the mail server")
    p.add_argument("--capture", action="store_true",
                   help="capture mode: accept mail for any address, keep it, send nothing")
    p.set_defaults(func=_serve)


def run_server(settings: Settings) -> int:
    from mailwing import app  # the whole server: only for the commands that serve
    from mailwing.server.logsetup import setup_logging

    setup_logging(settings.server.log_level, settings.server.log_format)
    return app.serve(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.capture:
        settings.capture.enabled = True
    return run_server(settings)
