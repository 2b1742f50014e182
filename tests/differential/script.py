"""Scripts as data, and playing one against a server.

A script (``scripts/*.txt``) is a list of steps, one a line; ``#`` starts a comment:

- ``C: COMMAND ARGS`` sends ``COMMAND ARGS`` with a fresh tag on session ``C`` (sessions
  ``C``, ``C2``, ``C3``, ... are opened on first use, each a connection of the script's own
  user) and reads every response up to the tagged one;
- placeholders: ``{login}`` is ``user password`` (quoted), ``{plain}`` the base64 SASL PLAIN
  response, ``{msg:NAME}`` the message ``corpus/NAME.eml`` as a LITERAL+ literal
  (``{n+}`` CRLF octets);
- ``C: IDLE`` sends IDLE and reads only the continuation; ``C: DONE`` ends it and reads up
  to IDLE's tagged completion (the news a session was told while idling is compared then);
- ``WAIT 0.5`` sleeps (only for IDLE scripts: both servers push news within about a second);
- CONDSTORE/QRESYNC (RFC 7162) values differ between servers, so scripts refer to them:
  ``{uidvalidity}`` is the last ``[UIDVALIDITY n]`` this server sent, ``SET name`` remembers
  the last ``[HIGHESTMODSEQ n]`` it sent (or a STATUS HIGHESTMODSEQ) and ``{modseq:name}``
  puts it into a later command.

Playing a script returns, per step, the raw responses; comparing is the caller's job.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.differential.wire import Client

__all__ = ["CORPUS", "SCRIPTS", "Step", "load_message", "load_script", "play"]

HERE = Path(__file__).parent
SCRIPTS = HERE / "scripts"
CORPUS = HERE / "corpus"
_STEP = re.compile(r"^(C\d*):\s?(.*)$")
_MSG = re.compile(r"\{msg:([\w.-]+)\}")
_MODSEQ_VAR = re.compile(r"\{modseq:(\w+)\}")
_SEEN_MODSEQ = re.compile(rb"\[HIGHESTMODSEQ (\d+)\]|HIGHESTMODSEQ (\d+)\)")
_SEEN_VALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")


@dataclass(frozen=True)
class Step:
    line: int
    session: str  # "C", "C2", ... or "" for WAIT
    text: str
    wait: float = 0.0
    payload: bytes | None = None  # sent instead of the expanded text (generated steps)


def load_message(name: str) -> bytes:
    data = (CORPUS / f"{name}.eml").read_bytes()
    return re.sub(rb"\r?\n", b"\r\n", data)


def load_script(path: Path) -> list[Step]:
    steps: list[Step] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("WAIT "):
            steps.append(Step(number, "", line, float(line.split()[1])))
            continue
        if line.startswith("SET "):
            steps.append(Step(number, "", line))
            continue
        m = _STEP.match(line)
        if m is None:
            raise ValueError(f"{path.name}:{number}: not a step: {raw!r}")
        steps.append(Step(number, m.group(1), m.group(2)))
    return steps


@dataclass
class Player:
    port: int
    user: str
    password: str
    sessions: dict[str, Client] = field(default_factory=dict)
    idling: dict[str, str] = field(default_factory=dict)
    modseq: int = 0  # the last HIGHESTMODSEQ seen
    uidvalidity: int = 0  # the last UIDVALIDITY seen
    saved: dict[str, int] = field(default_factory=dict)

    def note(self, responses: list[bytes]) -> list[bytes]:
        for raw in responses:
            for m in _SEEN_MODSEQ.finditer(raw):
                self.modseq = int(m.group(1) or m.group(2))
            for m in _SEEN_VALIDITY.finditer(raw):
                self.uidvalidity = int(m.group(1))
        return responses

    def expand(self, text: str) -> bytes:
        text = text.replace("{login}", f'"{self.user}" "{self.password}"')
        text = text.replace("{uidvalidity}", str(self.uidvalidity))
        text = _MODSEQ_VAR.sub(lambda m: str(self.saved[m.group(1)]), text)
        plain = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
        text = text.replace("{plain}", plain)
        out = b""
        pos = 0
        for m in _MSG.finditer(text):
            data = load_message(m.group(1))
            out += text[pos:m.start()].encode() + b"{%d+}\r\n" % len(data) + data
            pos = m.end()
        return out + text[pos:].encode()

    def step(self, step: Step) -> list[bytes]:
        if step.wait:
            time.sleep(step.wait)
            return []
        if step.text.startswith("SET "):
            self.saved[step.text.split()[1]] = self.modseq
            return []
        client = self.sessions.get(step.session)
        if client is None:
            client = self.sessions[step.session] = Client.connect(self.port)
            client.tag_prefix = step.session.lower()
        if step.text.upper() == "DONE":
            tag = self.idling.pop(step.session)
            client.send(b"DONE\r\n")
            return self.note(client.until(tag))
        tag = client.next_tag()
        if step.text.upper() == "IDLE":
            client.send(tag.encode() + b" IDLE\r\n")
            first = client.read_response()
            if first.startswith(b"+"):
                self.idling[step.session] = tag
                return [first]
            return [first, *([] if first.startswith(tag.encode()) else client.until(tag))]
        payload = step.payload if step.payload is not None else self.expand(step.text)
        return self.note(client.command(tag, payload))

    def close(self) -> None:
        for client in self.sessions.values():
            client.close()


def play(port: int, user: str, password: str, steps: list[Step]) -> list[list[bytes]]:
    """Run ``steps`` on a server; the raw responses of each step."""
    player = Player(port, user, password)
    try:
        return [player.step(s) for s in steps]
    finally:
        player.close()
