"""Logging set-up for every mailwing process: one line per event, text or JSON, on stderr.

Services write to stderr only and leave storing/rotating logs to systemd, Docker or the
terminal. Session events carry structured fields (``session``, ``listener``, ``peer``,
``user`` and a ``fields`` dict, see :meth:`Connection.log`), which the JSON format emits as
keys and the text format as ``key=value`` pairs. Every line names the process id, so the lines
of several worker processes can be told apart. Passwords are never handed to the logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "TextFormatter", "setup_logging"]

_SESSION_KEYS = ("session", "listener", "peer", "user")


def _structured(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _SESSION_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            out[key] = value
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        out.update({k: v for k, v in fields.items() if v is not None})
    return out


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(ch in text for ch in ' "=\n'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05Z INFO  [1234] mailwing.session event key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in _structured(record).items())
        line = (f"{when} {record.levelname:<7} [{record.process}] {record.name} "
                f"{record.getMessage()}")
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_structured(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send every ``mailwing.*`` logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("asyncio").setLevel(max(logging.WARNING, root.level))
