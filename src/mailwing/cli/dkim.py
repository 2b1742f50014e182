"""``mailwing dkim keygen|list``: DKIM signing keys for the local domains (RFC 6376, RFC 8463).

``keygen DOMAIN [--selector S] [--algorithm rsa|ed25519]`` writes a new private key under
``<data_dir>/dkim/<domain>/`` (mode 0600; see :mod:`mailwing.mailauth.dkimkeys`), makes it
the one mail from DOMAIN is signed with, and prints the TXT record to publish. ``list``
shows every key with its algorithm and whether it is active.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mailwing.cli.common import EXIT_USAGE, CliError
from mailwing.config import Settings

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("dkim", parents=[common], help="manage DKIM signing keys")
    cmds = group.add_subparsers(dest="dkim_command", required=True, metavar="COMMAND")
    keygen = cmds.add_parser("keygen", parents=[common],
                             help="make a signing key for a domain and print its DNS record")
    keygen.add_argument("domain")
    keygen.add_argument("--selector", default=None,
                        help="DKIM selector (default: mw<YYYYMM>, e.g. mw202611)")
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa",
                        help="rsa (2048 bits, default) or ed25519 (RFC 8463)")
    keygen.set_defaults(func=_keygen)
    lst = cmds.add_parser("list", parents=[common], help="list the signing keys")
    lst.set_defaults(func=_list)


def _keygen(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.mailauth.dkimkeys import DkimKeyError, dns_record, generate_key

    selector = args.selector or time.strftime("mw%Y%m")
    try:
        key = generate_key(settings.server.data_dir, args.domain, selector, args.algorithm)
    except DkimKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(f"; DKIM key {key.path} ({key.algorithm}); publish this record:")
    print(dns_record(key))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.mailauth.dkimkeys import list_keys

    for key, active in list_keys(settings.server.data_dir):
        mark = "active" if active else "-"
        print(f"{key.domain}\t{key.selector}\t{key.algorithm}\t{mark}\t{key.path}")
    return 0
