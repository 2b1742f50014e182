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


def compare(script: str, steps: list[Step], reference: list[list[str]],
            candidate: list[list[str]]) -> Outcome:
    out = Outcome()
    for step, ref, got in zip(steps, reference, candidate, strict=True):
        if ref == got:
            continue
        known = known_difference(script, step.text)
        if known is not None:
            out.accepted.append((step, known))
            continue
        out.differences.append(
            f"{script}:{step.line} {step.session}: {step.text}\n"
            + "".join(f"    dovecot  | {x}\n" for x in ref)
            + "".join(f"    mailwing | {x}\n" for x in got))
    return out
