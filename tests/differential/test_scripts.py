"""Every script of ``scripts/`` played on Dovecot and on mailwing (SQLite and PostgreSQL),
compared response by response after normalising (see the package docstring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.differential.compare import compare, normalised_run
from tests.differential.conftest import PASSWORD, Target, user_for
from tests.differential.script import SCRIPTS, load_script

pytestmark = pytest.mark.differential

_REFERENCE: dict[str, list[list[str]]] = {}  # Dovecot's answers, played once per script


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.txt")), ids=lambda p: p.stem)
def test_script(path: Path, dovecot: Target, mailwing: Target) -> None:
    steps = load_script(path)
    user = user_for(path.stem)
    if path.stem not in _REFERENCE:
        _REFERENCE[path.stem] = normalised_run(dovecot.port, user, PASSWORD, steps)
    reference = _REFERENCE[path.stem]
    candidate = normalised_run(mailwing.port, user, PASSWORD, steps)
    outcome = compare(path.name, steps, reference, candidate)
    assert not outcome.differences, (
        f"{len(outcome.differences)} unexplained difference(s) on {mailwing.name}:\n"
        + "\n".join(outcome.differences))
