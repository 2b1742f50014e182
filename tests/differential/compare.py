"""Play a script on Dovecot and on mailwing and compare normalised responses step by step."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.differential.known import Known, known_difference
from tests.differential.normalise import Normaliser
from tests.differential.script import Step, play

__all__ = ["Outcome", "compare", "normalised_run"]


def normalised_run(port: int, user: str, password: str, steps: list[Step]) -> list[list[str]]:
    norm = Normaliser()
    return [norm.responses(raw, step.text)
            for step, raw in zip(steps, play(port, user, password, steps), strict=True)]


@dataclass
class Outcome:
    differences: list[str] = field(default_factory=list)
    accepted: list[tuple[Step, Known]] = field(default_factory=list)


def _same(ref: list[str], got: list[str]) -> bool:
    """Equal, where a NO or BAD from Dovecot without a response code matches mailwing's
    with one (RFC 5530 codes are optional extra information)."""
    if len(ref) != len(got):
        return False
    for a, b in zip(ref, got, strict=True):
        if a != b and not (a in ("TAGGED NO", "TAGGED BAD") and b.startswith(a + " [")):
            return False
    return True


def compare(script: str, steps: list[Step], reference: list[list[str]],
            candidate: list[list[str]]) -> Outcome:
    out = Outcome()
    for step, ref, got in zip(steps, reference, candidate, strict=True):
        if _same(ref, got):
            continue
        known = known_difference(script, step.text, ref, got)
        if known is not None:
            out.accepted.append((step, known))
            continue
        out.differences.append(
            f"{script}:{step.line} {step.session}: {step.text}\n"
            + "".join(f"    dovecot  | {x}\n" for x in ref)
            + "".join(f"    mailwing | {x}\n" for x in got))
    return out
